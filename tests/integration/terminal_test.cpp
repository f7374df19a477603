// SPDX-License-Identifier: MIT
// User terminal sockets end to end: real server, real agent, real shells (PROTOCOL §4).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <regex>

#include "online_agent.h"

using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

struct Setup : rx::test::OnlineAgent {
  Setup() : OnlineAgent({}) {}
};

// Types a command and waits for a marker that only the command's output contains (the echo of
// the typed line has the marker split by quotes, so it cannot match early).
bool run_in(TestSocket& s, const std::string& command, const std::string& marker) {
  s.send_json({{"type", "input"}, {"data", command + "\n"}});
  return s.wait_output(marker, 10s);
}

}  // namespace

TEST_CASE("echo round trip on main, v1 and v2", "[integration][pg]") {
  Setup s;
  for (const std::string proto : {"rexec.v1", "rexec.v2"}) {
    DYNAMIC_SECTION(proto) {
      TestSocket user(s.sys.loop());
      REQUIRE(user.open(s.terminal_url("c-" + proto.substr(6)), s.token, proto));
      CHECK(user.subprotocol() == proto);
      REQUIRE(user.wait_type("shell_started"));
      const bool ok = run_in(user, "echo round-'trip'-ok", "round-trip-ok");
      if (!ok) s.sys.dump_logs();
      CHECK(ok);
      if (proto == "rexec.v2") {
        bool saw_binary = false;
        for (const auto& f : user.frames()) saw_binary = saw_binary || f.binary;
        CHECK(saw_binary);
      }
    }
  }
}

TEST_CASE("two viewers of main see the same output", "[integration][pg]") {
  Setup s;
  TestSocket a(s.sys.loop());
  TestSocket b(s.sys.loop());
  REQUIRE(a.open(s.terminal_url("viewer-a"), s.token));
  REQUIRE(a.wait_type("shell_started"));
  REQUIRE(b.open(s.terminal_url("viewer-b"), s.token, "rexec.v2"));
  REQUIRE(b.wait_type("shell_started"));
  a.send_json({{"type", "input"}, {"data", "echo shared-'by'-both\n"}});
  CHECK(a.wait_output("shared-by-both"));
  CHECK(b.wait_output("shared-by-both"));
}

TEST_CASE("a split has its own shell and closing it stops only it", "[integration][pg]") {
  Setup s;
  TestSocket main(s.sys.loop());
  TestSocket split(s.sys.loop());
  REQUIRE(main.open(s.terminal_url("m1"), s.token));
  REQUIRE(main.wait_type("shell_started"));
  REQUIRE(split.open(s.terminal_url("s1", "&newSession=true"), s.token));
  auto started = split.wait_type("shell_started");
  REQUIRE(started);
  CHECK((*started)["data"].value("session_id", "") == "split-s1");

  REQUIRE(run_in(main, "echo pid-$$-tty-$(tty)-'end'", "-end"));
  REQUIRE(run_in(split, "echo pid-$$-tty-$(tty)-'end'", "-end"));
  const std::regex re(R"(pid-(\d+)-tty-(\S+)-end)");
  std::smatch mm;
  std::smatch ms;
  const std::string main_out = main.output();
  const std::string split_out = split.output();
  REQUIRE(std::regex_search(main_out, mm, re));
  REQUIRE(std::regex_search(split_out, ms, re));
  CHECK(mm[1].str() != ms[1].str());
  CHECK(mm[2].str() != ms[2].str());
  // main must not have seen the split's output.
  CHECK(main_out.find(ms[0].str()) == std::string::npos);

  split.close();
  REQUIRE(split.wait_closed());
  // The split's shell goes away; main keeps working.
  const std::string split_pid = ms[1].str();
  CHECK(rx::test::wait_until([&] { return ::access(("/proc/" + split_pid).c_str(), F_OK) != 0; },
                             10s));
  CHECK(run_in(main, "echo still-'alive'", "still-alive"));
}

TEST_CASE("resize is visible through stty size", "[integration][pg]") {
  Setup s;
  TestSocket user(s.sys.loop());
  REQUIRE(user.open(s.terminal_url("rz"), s.token));
  REQUIRE(user.wait_type("shell_started"));
  user.send_json({{"type", "resize"}, {"cols", 132}, {"rows", 43}});
  CHECK(run_in(user, "echo size-$(stty size)-'done'", "size-43 132-done"));
}

TEST_CASE("shell exit gives shell_stopped with the exit code", "[integration][pg]") {
  Setup s;
  TestSocket user(s.sys.loop());
  REQUIRE(user.open(s.terminal_url("ex", "&newSession=true"), s.token));
  REQUIRE(user.wait_type("shell_started"));
  user.send_json({{"type", "input"}, {"data", "exit 7\n"}});
  auto stopped = user.wait_type("shell_stopped");
  REQUIRE(stopped);
  CHECK((*stopped)["data"].value("exit_code", -1) == 7);
}

TEST_CASE("binary input frames reach the shell", "[integration][pg]") {
  Setup s;
  TestSocket user(s.sys.loop());
  REQUIRE(user.open(s.terminal_url("bin"), s.token, "rexec.v2"));
  REQUIRE(user.wait_type("shell_started"));
  user.send_binary("echo binary-'input'-ok\n");
  CHECK(user.wait_output("binary-input-ok"));
}

TEST_CASE("exec runs a command without a PTY", "[integration][pg]") {
  Setup s;
  TestSocket user(s.sys.loop());
  REQUIRE(user.open(s.terminal_url("exec"), s.token));
  user.send_json({{"type", "exec"}, {"data", {{"command", "echo exec-ok; exit 3"}}}});
  auto result = user.wait_type("exec_result");
  REQUIRE(result);
  const auto& d = (*result)["data"];
  CHECK(d.value("output", "").find("exec-ok") != std::string::npos);
  CHECK(d.value("exit_code", -1) == 3);
  CHECK(d.value("success", true) == false);
}
