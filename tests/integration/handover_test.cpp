// SPDX-License-Identifier: MIT
// Shell handover (docs/architecture.md, "Shell handover"): with `run --handover N` the shells
// are the keeper's children and outlive the agent. A restart, an upgrade to another binary and
// a SIGKILL of the agent each leave the same shell running, and a viewer gets every line the
// shell printed exactly once. Without an agent the keeper ends its shells after N seconds.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "fixture.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

// The first number after `prefix` in `text` (a PID the shell echoed, a pid in a log line).
long number_after(const std::string& text, const std::string& prefix) {
  std::smatch m;
  const std::regex re(prefix + "([0-9]+)");
  if (!std::regex_search(text, m, re)) return -1;
  return std::stol(m[1].str());
}

long last_number_after(const std::string& text, const std::string& prefix) {
  long last = -1;
  const std::regex re(prefix + "([0-9]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it) {
    last = std::stol((*it)[1].str());
  }
  return last;
}

long parent_of(long pid) {
  const std::string stat = rx::test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');  // comm may hold spaces; the fields after it do not
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string state;
  long ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// Asks the shell for its PID: the newest "<tag>-<n>-" in the output (the echoed command line
// shows "$$", not digits).
long shell_pid(System& sys, TestSocket& v, const std::string& tag) {
  v.send_json({{"type", "input"}, {"data", "echo " + tag + "-$$-\n"}});
  long pid = -1;
  sys.loop().run_until(
      [&] {
        pid = last_number_after(v.output(), tag + "-");
        return pid > 0;
      },
      10s);
  return pid;
}

}  // namespace

TEST_CASE(
    "handover: a restart, an upgrade and a SIGKILL keep the shell, and output arrives exactly once",
    "[integration]") {
  rx::test::ServerOptions o;
  o.agent_grace = 30s;  // the viewer waits for the agent to come back
  System sys(o);
  const std::string token = sys.add_user("hana");
  const std::vector<std::string> env = {"REXEC_HANDOVER_S=30"};
  auto agent = sys.start_agent(token, "handover-agent", env);
  REQUIRE(sys.wait_online(token, agent.id));

  TestSocket v(sys.loop());
  REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=ho-v"), token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  const long pid = shell_pid(sys, v, "FIRSTPID");
  REQUIRE(pid > 0);
  const long keeper = number_after(agent.process->log(), "shell keeper started pid=");
  REQUIRE(keeper > 0);
  CHECK(parent_of(pid) == keeper);

  v.send_json({{"type", "input"},
               {"data", "for i in $(seq 1 300); do echo H$i; sleep 0.04; done; echo ho-'fin'\n"}});
  REQUIRE(v.wait_output("H10"));

  // 1. An orderly restart of the same binary, as `systemctl restart` does it.
  agent.process->signal(SIGTERM);
  const auto rc = agent.process->wait(15s);
  REQUIRE(rc);
  CHECK(*rc == 0);
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  sys.restart_agent(agent, env);
  REQUIRE(v.wait_type("agent_connected", 20s));
  REQUIRE(v.wait_output("H80", 20s));

  // 2. An upgrade: a different file (a copy with bytes after the ELF image, so a different
  // binary to the kernel and to sha256sum), started while the old keeper keeps the shell.
  const std::string upgraded = sys.dir() + "/rexec-agent-upgraded";
  {
    std::ifstream in(rx::test::agent_binary(), std::ios::binary);
    std::ofstream out(upgraded, std::ios::binary);
    out << in.rdbuf() << "rexec-upgrade-marker";
  }
  REQUIRE(::chmod(upgraded.c_str(), 0755) == 0);
  agent.process->signal(SIGTERM);
  REQUIRE(agent.process->wait(15s));
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  sys.restart_agent(agent, env, upgraded);
  REQUIRE(v.wait_output("H160", 20s));

  // 3. A crash: SIGKILL, no clean-up at all. The keeper still holds the PTY and the ring.
  agent.process->kill();
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  sys.restart_agent(agent, env, upgraded);

  const bool done = v.wait_output("ho-fin", 40s);
  if (!done) sys.dump_logs();
  REQUIRE(done);
  CHECK(rx::test::lines_matching(v.output(), "H[0-9]+") == rx::test::numbered("H", 1, 300));
  CHECK(v.messages("gap").empty());
  CHECK(v.messages("agent_connected").size() >= 3);

  // The same shell, with the same state, throughout.
  CHECK(shell_pid(sys, v, "LASTPID") == pid);
  CHECK(parent_of(pid) == keeper);
  const std::string log = agent.process->log();
  CHECK(log.find("session taken over sid=main pid=" + std::to_string(pid)) != std::string::npos);

  // Stopping the keeper ends its shells.
  REQUIRE(::kill(static_cast<pid_t>(keeper), SIGTERM) == 0);
  CHECK(sys.loop().run_until(
      [&] { return !rx::test::process_alive(pid) && !rx::test::process_alive(keeper); }, 15s));
}

TEST_CASE("handover: with no agent back within the grace, the keeper ends its shells",
          "[integration]") {
  System sys;
  const std::string token = sys.add_user("ines");
  auto agent = sys.start_agent(token, "handover-short", {"REXEC_HANDOVER_S=1"});
  REQUIRE(sys.wait_online(token, agent.id));
  TestSocket v(sys.loop());
  REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=ho-s"), token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  const long pid = shell_pid(sys, v, "PID");
  REQUIRE(pid > 0);
  const long keeper = number_after(agent.process->log(), "shell keeper started pid=");
  REQUIRE(keeper > 0);

  agent.process->signal(SIGTERM);
  REQUIRE(agent.process->wait(15s));
  // Still there just after the agent left: the keeper waits its second.
  CHECK(rx::test::process_alive(pid));
  // Then SIGHUP; an interactive shell exits on it, and the keeper after its last shell.
  CHECK(sys.loop().run_until(
      [&] { return !rx::test::process_alive(pid) && !rx::test::process_alive(keeper); }, 10s));
}
