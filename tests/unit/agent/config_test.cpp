// SPDX-License-Identifier: MIT
#include "rexec/agent/config.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

using rx::agent::AgentConfig;

namespace {

struct TempDir {
  std::string path;

  TempDir() {
    char tmpl[] = "/tmp/rexec-cfg-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }

  ~TempDir() { std::filesystem::remove_all(path); }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
};

mode_t mode_of(const std::string& p) {
  struct stat st {};

  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("config saves with 0600 in a 0700 directory and loads back", "[agent]") {
  TempDir t;
  const std::string path = t.path + "/nested/rexec/agent.json";
  AgentConfig c;
  c.server = "http://127.0.0.1:8080";
  c.agent_id = "0b1c";
  c.token = "rexec_" + std::string(64, 'f');
  c.name = "box";
  c.tags = {"a", "b"};
  c.region = "eu";
  REQUIRE(rx::agent::save_config(path, c));
  CHECK(mode_of(path) == 0600);
  CHECK(mode_of(t.path + "/nested/rexec") == 0700);
  auto back = rx::agent::load_config(path);
  REQUIRE(back);
  CHECK(back->server == c.server);
  CHECK(back->agent_id == c.agent_id);
  CHECK(back->token == c.token);
  CHECK(back->tags == c.tags);
  CHECK(back->region == "eu");
  // Saving again replaces the file atomically and leaves no temp file behind.
  c.name = "renamed";
  REQUIRE(rx::agent::save_config(path, c));
  CHECK(rx::agent::load_config(path)->name == "renamed");
  int files = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(t.path + "/nested/rexec")) {
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("config load reports missing, malformed and mistyped files", "[agent]") {
  TempDir t;
  CHECK(rx::agent::load_config(t.path + "/none.json").error().code == rx::Errc::kNotFound);
  std::ofstream(t.path + "/bad.json") << "{not json";
  CHECK(rx::agent::load_config(t.path + "/bad.json").error().code == rx::Errc::kConfig);
  std::ofstream(t.path + "/typed.json") << R"({"server": 5})";
  auto typed = rx::agent::load_config(t.path + "/typed.json");
  REQUIRE_FALSE(typed);
  CHECK(typed.error().code == rx::Errc::kConfig);
  CHECK(typed.error().message.find("server") != std::string::npos);
}

TEST_CASE("unwritable config directory gives a clear error", "[agent]") {
  if (::geteuid() == 0) {
    // root may write anywhere; use a path under a regular file instead.
    TempDir t;
    std::ofstream(t.path + "/file") << "x";
    auto s = rx::agent::save_config(t.path + "/file/agent.json", AgentConfig{});
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find(t.path + "/file") != std::string::npos);
    return;
  }
  auto s = rx::agent::save_config("/proc/rexec/agent.json", AgentConfig{});
  REQUIRE_FALSE(s);
}

TEST_CASE("environment overlays the file, and empty values do not erase", "[agent]") {
  AgentConfig c;
  c.server = "http://file";
  c.token = "from-file";
  std::map<std::string, std::string> env = {
      {"REXEC_SERVER", "http://env"}, {"REXEC_TOKEN", ""}, {"REXEC_REGION", "us-east"}};
  rx::agent::apply_environment(c, [&](const char* k) -> std::optional<std::string> {
    auto it = env.find(k);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
  CHECK(c.server == "http://env");
  CHECK(c.token == "from-file");
  CHECK(c.region == "us-east");
}

TEST_CASE("server URLs are validated and normalized", "[agent]") {
  CHECK(*rx::agent::normalized_server("http://h:8080/") == "http://h:8080");
  CHECK_FALSE(rx::agent::normalized_server(""));
  CHECK_FALSE(rx::agent::normalized_server("ws://h"));
  CHECK_FALSE(rx::agent::normalized_server("http://h/api"));
  CHECK_FALSE(rx::agent::normalized_server("h:8080"));
}
