// SPDX-License-Identifier: MIT
// One command without a terminal (docs/protocol.md "Exec over HTTP"): `rexec exec` prints exactly
// what the command printed, even where the user's shell greets every terminal with a banner and
// a prompt, and propagates its exit code; POST /api/agents/:id/exec answers each request with its
// own result, and refuses as the terminal socket does.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <map>

#include "fixture.h"

using nlohmann::json;
using rx::test::ServerOptions;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

// A server, a user, and a real agent named "box" whose bash prints a banner from its profile and
// rc files and a prompt, as many real machines do (Debian's root prompt, motd-like banners).
struct Setup {
  System sys;
  std::string token;
  std::string home;
  System::Agent agent;

  explicit Setup(ServerOptions options = {})
      : sys(std::move(options)), token(sys.add_user("alice")), home(make_home(sys.dir())) {
    agent = sys.start_agent(token, "box", {"HOME=" + home, "REXEC_SHELL=/bin/bash"});
    const bool online = sys.wait_online(token, agent.id);
    if (!online) sys.dump_logs();
    REQUIRE(online);
  }

  static std::string make_home(const std::string& dir) {
    const std::string home = dir + "/home";
    ::mkdir(home.c_str(), 0700);
    std::ofstream(home + "/.bash_profile") << "echo BANNER-FROM-PROFILE\n. ~/.bashrc\n";
    std::ofstream(home + "/.bashrc") << "echo BANNER-FROM-RC\nPS1='PROMPT> '\n";
    return home;
  }

  [[nodiscard]] std::string exec_url() const {
    return sys.http_url("/api/agents/" + agent.id + "/exec");
  }

  rx::test::HttpResult exec(const std::string& body) {
    return rx::test::http(sys.loop(), "POST", exec_url(), token, body);
  }
};

// `rexec` with its own config file, logged in to `s`.
struct Client {
  std::vector<std::string> env;
  std::string log;

  explicit Client(Setup& s)
      : env({"REXEC_CLIENT_CONFIG=" + s.sys.dir() + "/client.json"}),
        log(s.sys.dir() + "/client.log") {
    auto login = rx::test::run_program(
        {rx::test::client_binary(), "login", "--server", s.sys.http_url(), "--token", s.token}, log,
        30s, env);
    REQUIRE(login.exit_code == 0);
  }

  // Runs `rexec ARGS...`; its stderr is then all that the log holds.
  rx::test::RunResult run(std::vector<std::string> args) {
    std::ofstream(log, std::ios::trunc).close();
    args.insert(args.begin(), rx::test::client_binary());
    return rx::test::run_program(args, log, 60s, env);
  }
};

}  // namespace

TEST_CASE("rexec exec prints exactly the command's output and exits with its code",
          "[integration][exec]") {
  Setup s;
  // The shell does greet a terminal: banner, profile, prompt.
  {
    TestSocket term(s.sys.loop());
    REQUIRE(term.open(s.sys.ws_url("/ws/agent/" + s.agent.id + "/terminal?id=t1"), s.token,
                      "rexec.v2"));
    CHECK(term.wait_output("BANNER-FROM-PROFILE"));
    CHECK(term.wait_output("BANNER-FROM-RC"));
    CHECK(term.wait_output("PROMPT> "));
  }
  Client c(s);
  auto r = c.run(
      {"exec", "box", "--", "echo hi; echo to-stderr >&2; printf 'no newline\\x01\\t'; exit 3"});
  CHECK(r.out == "hi\nto-stderr\nno newline\x01\t");
  CHECK(r.exit_code == 3);
  CHECK(rx::test::read_file(c.log).empty());  // nothing of ours on stderr either

  auto ok = c.run({"exec", s.agent.id, "--", "pwd >/dev/null && echo \"$0\""});
  CHECK(ok.out == "/bin/bash\n");
  CHECK(ok.exit_code == 0);

  // No terminal was opened for either: the only shell the agent started is the one above.
  const std::string agent_log = s.agent.process->log();
  CHECK(agent_log.find("session opened sid=main") != std::string::npos);
  CHECK(agent_log.find("session opened sid=split-") == std::string::npos);
  CHECK(agent_log.find("exec finished exit=3") != std::string::npos);
}

TEST_CASE("rexec exec: a timeout, an unknown agent, a stopped agent", "[integration][exec]") {
  Setup s;
  Client c(s);
  auto slow = c.run({"exec", "box", "--timeout", "1", "--", "echo started; sleep 30"});
  CHECK(slow.out == "started\n");
  CHECK(slow.exit_code == 137);  // killed by the agent: 128 + SIGKILL
  CHECK(rx::test::read_file(c.log) == "rexec: timed out after 1 s\n");

  // Its own failures are 255, whatever the command would have returned.
  auto unknown = c.run({"exec", "no-such-box", "--", "true"});
  CHECK(unknown.exit_code == 255);
  CHECK(rx::test::read_file(c.log).find("no agent named no-such-box") != std::string::npos);
  s.agent.process->kill();
  REQUIRE(s.sys.loop().run_until(
      [&] {
        auto a = rx::test::http(s.sys.loop(), "GET", s.sys.http_url("/api/agents/" + s.agent.id),
                                s.token);
        return a.body.value("status", "") == "offline";
      },
      10s));
  auto offline = c.run({"exec", "box", "--", "true"});
  CHECK(offline.exit_code == 255);
  CHECK(rx::test::read_file(c.log).find("rexec: agent not online") != std::string::npos);
}

TEST_CASE("POST /api/agents/:id/exec: answers, refusals, concurrent commands",
          "[integration][exec]") {
  Setup s;
  auto& loop = s.sys.loop();
  auto hi = s.exec(R"({"command":"echo http-ok"})");
  CHECK(hi.status == 200);
  CHECK(hi.raw ==
        R"({"command":"echo http-ok","output":"http-ok\n","success":true,"exit_code":0})");

  CHECK(rx::test::http(loop, "GET", s.exec_url(), s.token).status == 405);
  auto empty = s.exec(R"({"command":""})");
  CHECK(empty.status == 400);
  CHECK(empty.body == json{{"error", "command is required"}});
  CHECK(s.exec(R"({"command":"x","timeout_s":0})").status == 400);
  CHECK(s.exec(json{{"command", std::string(300 * 1024, 'x')}}.dump()).status == 413);
  const std::string other = s.sys.add_user("olive");
  CHECK(rx::test::http(loop, "POST", s.exec_url(), other, R"({"command":"id"})").body ==
        json{{"error", "agent not found"}});

  // Commands run side by side; each answer is its own command's, whichever ends first.
  rx::net::HttpClient client(loop.lws());
  std::map<std::string, rx::test::HttpResult> answers;
  for (const std::string cmd : {"sleep 1; echo slow", "echo fast"}) {
    rx::test::http_start(client, "POST", s.exec_url(), s.token, json{{"command", cmd}}.dump(), 20s,
                         [&answers, cmd](rx::test::HttpResult r) { answers[cmd] = r; });
  }
  REQUIRE(loop.run_until([&] { return answers.size() == 2; }, 10s));
  CHECK(answers["sleep 1; echo slow"].body["output"] == "slow\n");
  CHECK(answers["echo fast"].body["output"] == "fast\n");

  // Recorded like a terminal's exec, sizes only.
  auto audit = rx::test::http(loop, "GET", s.sys.http_url("/api/audit?type=exec_run"), s.token);
  REQUIRE(audit.status == 200);
  REQUIRE_FALSE(audit.body["events"].empty());
  const json& e = audit.body["events"][0];
  CHECK(e["details"]["via"] == "http");
  CHECK(e["session_id"].is_null());
  CHECK(audit.raw.find("echo fast") == std::string::npos);

  // The agent's link goes while a command runs: 502, and then it is not online.
  std::optional<rx::test::HttpResult> cut;
  rx::test::http_start(client, "POST", s.exec_url(), s.token, R"({"command":"sleep 3"})", 20s,
                       [&cut](rx::test::HttpResult r) { cut = r; });
  loop.run_for(500ms);
  s.agent.process->signal(SIGKILL);
  REQUIRE(loop.run_until([&] { return cut.has_value(); }, 10s));
  CHECK(cut->status == 502);
  CHECK(cut->body == json{{"error", "agent disconnected"}});
  auto gone = s.exec(R"({"command":"true"})");
  CHECK(gone.status == 404);
  CHECK(gone.body == json{{"error", "agent not online"}});
}

TEST_CASE("POST /api/agents/:id/exec: the session limit and the MFA lock", "[integration][exec]") {
  ServerOptions o;
  o.extra_args = {"--max-sessions-per-agent", "1"};
  Setup s(o);
  auto& loop = s.sys.loop();
  rx::net::HttpClient client(loop.lws());
  std::optional<rx::test::HttpResult> first;
  rx::test::http_start(client, "POST", s.exec_url(), s.token, R"({"command":"sleep 2"})", 20s,
                       [&first](rx::test::HttpResult r) { first = r; });
  loop.run_for(500ms);
  auto second = s.exec(R"({"command":"true"})");
  CHECK(second.status == 403);
  CHECK(second.body == json{{"error", "session limit reached for this agent"},
                            {"code", "session_limit_reached"},
                            {"limit", 1}});
  REQUIRE(loop.run_until([&] { return first.has_value(); }, 10s));
  CHECK(first->status == 200);
  CHECK(s.exec(R"({"command":"true"})").status == 200);  // its place is free again

  // The lock needs TOTP; the MFA suite covers enabling it. Here it is set in the database.
  if (s.sys.on_postgres()) return;
  auto r =
      rx::test::run_program({"/usr/bin/sqlite3", s.sys.db_path(),
                             "UPDATE agents SET mfa_locked = 1 WHERE id = '" + s.agent.id + "';"},
                            s.sys.dir() + "/sqlite.log");
  REQUIRE(r.exit_code == 0);
  auto locked = s.exec(R"({"command":"true"})");
  CHECK(locked.status == 423);
  CHECK(locked.body == json{{"error", "terminal is MFA protected"}});
}
