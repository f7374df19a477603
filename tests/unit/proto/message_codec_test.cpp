// SPDX-License-Identifier: MIT
// Every message round-trips; golden JSON pins the exact wire shapes of PROTOCOL §3–§4.
#include "rexec/proto/message_codec.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

using namespace rx::proto;
using nlohmann::json;

namespace {

std::vector<AgentMessage> all_agent_messages() {
  SystemInfo info;
  info.hostname = "box";
  info.num_cpu = 8;
  info.memory = {16ULL << 30U, 8ULL << 30U, 4ULL << 30U};
  info.disk = {100ULL << 30U, 50ULL << 30U, 55ULL << 30U};
  info.region = "eu";
  info.os = "linux";
  info.arch = "amd64";
  info.distro = "Debian GNU/Linux 12 (bookworm)";
  info.kernel = "6.1.0";
  info.agent_version = "0.1.0";
  info.shell = "/bin/bash";
  Stats stats{12.5, 1ULL << 30U, 2ULL << 30U, 3ULL << 30U, 4ULL << 30U, 0.5, 0.25, 0.125, 3600, 2};
  return {
      ShellStart{"main", false, std::nullopt, std::nullopt, std::nullopt},
      ShellStart{"split-abc", true, 120, 40, 4096},
      ShellInput{"main", std::string("ls -la\n\x00\xff", 9)},
      ShellResize{"main", 80, 24},
      ShellStopSession{"split-abc"},
      ShellStop{},
      Exec{"uname -a", std::nullopt},
      Exec{"sleep 1", 30},
      Ping{},
      Pong{},
      info,
      stats,
      ShellStarting{"main"},
      ShellStarted{"main"},
      ShellOutput{"main", "\x1b[32mok\x1b[0m\r\n", std::nullopt},
      ShellOutput{"split-1", std::string("\xe2\x82", 2), 123456789},
      ShellStopped{"main", 0, std::nullopt},
      ShellStopped{"split-1", std::nullopt, 9},
      ShellError{"main", "shell not found: /bin/nope"},
      ExecResult{"false", "", false, 1, std::nullopt},
      ExecResult{"x", "out", false, -1, std::string("timed out")},
      FileGet{"t1", "/etc/hostname"},
      FilePut{"t2", "/tmp/x", 42, 0644},
      FileData{"t2", 7, std::string("\x00\x01\x02", 3)},
      FileEnd{"t2", std::string(64, 'a')},
      FileError{"t2", "no space left on device"},
  };
}

std::vector<UserMessage> all_user_messages() {
  return {Input{"echo hi\r"},
          Resize{132, 43},
          Exec{"id", std::nullopt},
          Ping{},
          Pong{},
          Output{"h\xc3\xa9llo", std::nullopt},
          Output{"x", 99},
          OffsetMsg{1024},
          Gap{10, 20},
          AgentDisconnected{"a-1"},
          AgentConnected{"a-1"},
          Stats{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
          ShellStarting{"main"},
          ShellStarted{"split-x"},
          ShellStopped{"main", 130, std::nullopt},
          ShellError{"main", "boom"},
          ExecResult{"id", "uid=0", true, 0, std::nullopt}};
}

}  // namespace

TEST_CASE("every agent-socket message round-trips", "[proto]") {
  for (const auto& m : all_agent_messages()) {
    const std::string text = encode(m);
    auto back = decode_agent_message(text);
    INFO(text);
    REQUIRE(back);
    CHECK(*back == m);
    CHECK(encode(*back) == text);  // encode → decode → encode is stable
  }
}

TEST_CASE("every user-socket message round-trips", "[proto]") {
  for (const auto& m : all_user_messages()) {
    const std::string text = encode(m);
    auto back = decode_user_message(text);
    INFO(text);
    REQUIRE(back);
    CHECK(*back == m);
    CHECK(encode(*back) == text);
  }
}

TEST_CASE("golden: shell_output and shell_input carry padded base64", "[proto]") {
  CHECK(json::parse(encode(AgentMessage(ShellOutput{"main", "hi", std::nullopt}))) ==
        json::parse(R"({"type":"shell_output","data":{"session_id":"main","data":"aGk="}})"));
  CHECK(json::parse(encode(AgentMessage(ShellOutput{"main", "hi", 5}))) ==
        json::parse(
            R"({"type":"shell_output","data":{"session_id":"main","offset":5,"data":"aGk="}})"));
  auto in = decode_agent_message(
      R"({"type":"shell_input","data":{"session_id":"main","data":"bHMK"},"extra":1})");
  REQUIRE(in);
  CHECK(std::get<ShellInput>(*in).data == "ls\n");
}

TEST_CASE("golden: user resize is top level, pong has no data, agent pong has null", "[proto]") {
  CHECK(json::parse(encode(UserMessage(Resize{100, 30}))) ==
        json::parse(R"({"type":"resize","cols":100,"rows":30})"));
  CHECK(encode(UserMessage(Pong{})) == R"({"type":"pong"})");
  CHECK(encode(AgentMessage(Pong{})) == R"({"data":null,"type":"pong"})");
  CHECK(json::parse(encode(UserMessage(OffsetMsg{7}))) ==
        json::parse(R"({"type":"offset","data":7})"));
  auto r = decode_user_message(R"({"type":"resize","cols":80,"rows":24})");
  REQUIRE(r);
  CHECK(std::get<Resize>(*r) == Resize{80, 24});
}

TEST_CASE("golden: shell_start without new_session means main", "[proto]") {
  auto r = decode_agent_message(R"({"type":"shell_start","data":{"session_id":"main"}})");
  REQUIRE(r);
  CHECK_FALSE(std::get<ShellStart>(*r).new_session);
  CHECK_FALSE(std::get<ShellStart>(*r).cols.has_value());
}

TEST_CASE("output text with invalid UTF-8 encodes as U+FFFD, never throws", "[proto]") {
  const std::string text = encode(UserMessage(Output{std::string("a\xff\xfe", 3), std::nullopt}));
  auto j = json::parse(text);
  CHECK(j["data"].get<std::string>() == "a\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("system_info field names are exact", "[proto]") {
  const auto msgs = all_agent_messages();
  const json j = json::parse(encode(msgs[10]));
  CHECK(j["type"] == "system_info");
  for (const char* key : {"hostname", "num_cpu", "memory", "disk", "region", "os", "arch", "distro",
                          "kernel", "agent_version", "shell"}) {
    CHECK(j["data"].contains(key));
  }
  for (const char* key : {"total", "available", "free"}) CHECK(j["data"]["memory"].contains(key));
  const json s = json::parse(encode(msgs[11]));
  for (const char* key : {"cpu_percent", "memory", "memory_limit", "disk_usage", "disk_limit",
                          "load1", "load5", "load15", "uptime_s", "sessions"}) {
    CHECK(s["data"].contains(key));
  }
}
