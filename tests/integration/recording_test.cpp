// SPDX-License-Identifier: MIT
// Session recordings (docs/protocol.md, "Session recordings"): the per-agent policy, asciicast v2
// files that replay to exactly the bytes the viewer saw, the owner-only list and download,
// retention, and the fail-closed mode: a terminal that cannot be recorded is refused, and one
// whose recording fails mid-way (a full disk) is closed before anyone sees unrecorded output.
#include <catch2/catch.hpp>

#include <sys/mount.h>

#include <filesystem>

#include "asciicast.h"
#include "online_agent.h"

using rx::test::TestSocket;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Setup : rx::test::OnlineAgent {
  explicit Setup(rx::test::ServerOptions o = {}) : OnlineAgent(std::move(o), "rita", "rec") {}

  rx::test::HttpResult api(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& as = "") {
    return rx::test::http(sys.loop(), method, sys.http_url("/api/agents/" + agent.id + path),
                          as.empty() ? token : as, body);
  }

  [[nodiscard]] std::string url(const std::string& conn, bool split = false) const {
    return terminal_url(conn, split ? "&newSession=true" : "");
  }
};

}  // namespace

TEST_CASE(
    "recording: a session replays to the bytes the viewer saw, with list, download and retention",
    "[integration]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--recordings-keep", "2"};
  Setup s(o);
  CHECK(s.api("GET", "/recording").body == json{{"mode", "off"}, {"available", true}, {"keep", 2}});
  CHECK(s.api("PUT", "/recording", R"({"mode":"sometimes"})").status == 400);
  REQUIRE(s.api("PUT", "/recording", R"({"mode":"on"})").status == 200);

  TestSocket v(s.sys.loop());
  REQUIRE(v.open(s.url("rec-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"},
               {"data",
                "seq 1 2000 | sed 's/^/R/'; printf 'h\\303\\251llo \\342\\234\\223\\n'; "
                "echo rec-'done'\n"}});
  if (!v.wait_output("rec-done", 20s)) {
    s.sys.dump_logs();
    FAIL_CHECK("viewer output: " << v.output());
  }
  REQUIRE(v.output().find("rec-done") != std::string::npos);
  // A resize while recording: an "r" event, and the shell sees it.
  v.send_json({{"type", "resize"}, {"cols", 100}, {"rows", 30}});
  s.sys.loop().run_for(300ms);
  v.send_json({{"type", "input"}, {"data", "echo cols-$(tput cols)-'x'\n"}});
  REQUIRE(v.wait_output("cols-100-x"));
  s.sys.loop().run_for(500ms);  // the prompt after it, too

  auto list = s.api("GET", "/recordings");
  REQUIRE(list.status == 200);
  REQUIRE(list.body["recordings"].size() == 1);
  const json first = list.body["recordings"][0];
  CHECK(first["session_id"] == "main");
  CHECK(first["bytes"].get<std::uint64_t>() > 2000 * 5);
  const std::string name = first["name"].get<std::string>();

  auto cast = s.api("GET", "/recordings/" + name);
  REQUIRE(cast.status == 200);
  int resizes = 0;
  const std::string played = rx::test::replay_asciicast(cast.raw, &resizes);
  // Exactly what the viewer was shown, byte for byte (UTF-8 included), and the resize.
  CHECK(played == v.output());
  CHECK(played.find("h\xc3\xa9llo \xe2\x9c\x93") != std::string::npos);
  CHECK(resizes == 1);

  // Owner only; names are checked.
  const std::string other = s.sys.add_user("sam");
  CHECK(s.api("GET", "/recordings", "", other).status == 404);
  CHECK(s.api("GET", "/recordings/" + name, "", other).status == 404);
  CHECK(s.api("GET", "/recordings/not-a-recording.txt").status == 400);
  CHECK(s.api("GET", "/recordings/main-20260101T000000Z-00000000.cast").status == 404);

  // Retention: two kept per agent, the oldest go.
  for (const std::string id : {"ret1", "ret2"}) {
    TestSocket t(s.sys.loop());
    REQUIRE(t.open(s.url(id, true), s.token, "rexec.v2"));
    REQUIRE(t.wait_type("shell_started"));
    t.send_json({{"type", "input"}, {"data", "echo " + id + "-'out'\n"}});
    REQUIRE(t.wait_output(id + "-out"));
  }
  list = s.api("GET", "/recordings");
  REQUIRE(list.body["recordings"].size() == 2);
  for (const auto& r : list.body["recordings"]) CHECK(r["name"] != name);
}

TEST_CASE("recording: required, and it cannot be written: the terminal is refused",
          "[integration]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--recordings-dir", "/dev/null/recordings"};  // never creatable
  Setup s(o);
  REQUIRE(s.api("PUT", "/recording", R"({"mode":"required"})").status == 200);
  auto refused = rx::test::http(
      s.sys.loop(), "GET", s.sys.http_url("/ws/agent/" + s.agent.id + "/terminal?id=x"), s.token);
  CHECK(refused.status == 503);
  CHECK(refused.body.value("code", "") == "recording_unavailable");
  CHECK(refused.body.value("error", "")
            .rfind("recording is required for this agent and cannot be written: cannot create "
                   "/dev/null/recordings/",
                   0) == 0);
  TestSocket v(s.sys.loop());
  CHECK_FALSE(v.open(s.url("x"), s.token, "rexec.v2"));
  CHECK(v.close_info().http_status == 503);
  // Only recording was in the way: with the policy off, the terminal opens.
  REQUIRE(s.api("PUT", "/recording", R"({"mode":"off"})").status == 200);
  TestSocket w(s.sys.loop());
  REQUIRE(w.open(s.url("y"), s.token, "rexec.v2"));
  CHECK(w.wait_type("shell_started"));
}

TEST_CASE("recording: required, and the disk fills mid-session: the viewer is closed",
          "[integration]") {
  const std::string disk = "/tmp/rexec-rec-disk-" + std::to_string(::getpid());
  std::filesystem::create_directories(disk);
  // 20 MiB: room enough to start (16 MiB free are required), not for 30 MB of output.
  if (::mount("tmpfs", disk.c_str(), "tmpfs", 0, "size=20m,mode=0700") != 0) {
    WARN("SKIPPED: cannot mount a tmpfs here (needs root and mount rights)");
    std::filesystem::remove(disk);
    return;
  }
  {
    rx::test::ServerOptions o;
    o.extra_args = {"--recordings-dir", disk};
    Setup s(o);
    REQUIRE(s.api("PUT", "/recording", R"({"mode":"required"})").status == 200);
    TestSocket v(s.sys.loop());
    REQUIRE(v.open(s.url("full"), s.token, "rexec.v2"));
    REQUIRE(v.wait_type("shell_started"));
    v.send_json({{"type", "input"},
                 {"data", "head -c 30000000 /dev/zero | tr '\\0' x; echo; echo full-'done'\n"}});
    const auto err = v.wait_type("shell_error", 60s);
    REQUIRE(err);
    CHECK((*err)["data"]
              .value("error", "")
              .find("recording is required for this agent and failed: ") == 0);
    CHECK((*err)["data"].value("error", "").find("No space left on device") != std::string::npos);
    CHECK(v.wait_closed(10s));
    CHECK(v.close_info().close_code == 1011);
    // The viewer saw no more than what was recorded.
    auto list = s.api("GET", "/recordings");
    REQUIRE(list.body["recordings"].size() == 1);
    CHECK(v.output().find("full-done") == std::string::npos);
    CHECK(v.output().size() <= 20U * 1024U * 1024U);
  }
  ::umount2(disk.c_str(), MNT_DETACH);
  std::filesystem::remove(disk);
}
