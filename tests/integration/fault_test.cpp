// SPDX-License-Identifier: MIT
// Faults with real processes (Resilience): the agent's network link cut for 10 s in a network
// namespace of the test's own, the server killed with SIGKILL and restarted, the agent killed
// and restarted. Every wait is bounded.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <sstream>

#include "fixture.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string ip_binary() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// A network namespace joined to ours by a veth pair: host side 10.231.N.1/30, namespace side
// .2/30. Removed (with the pair) on destruction.
struct NetNs {
  std::string name;
  std::string host_if;
  std::string host_ip;
  std::string ip;
  std::string log;
  bool ok = false;

  NetNs() : ip(ip_binary()) {
    const int n = static_cast<int>(::getpid() % 250) + 1;
    name = "rxfault" + std::to_string(::getpid());
    host_if = "rxh" + std::to_string(::getpid() % 1000000);
    const std::string ns_if = "rxa" + std::to_string(::getpid() % 1000000);
    host_ip = "10.231." + std::to_string(n) + ".1";
    const std::string ns_ip = "10.231." + std::to_string(n) + ".2";
    if (ip.empty() || ::geteuid() != 0) return;
    log = "/tmp/" + name + ".log";
    const std::string script = "set -e\n" + ip + " netns add " + name + "\n" + ip + " link add " +
                               host_if + " type veth peer name " + ns_if + "\n" + ip +
                               " link set " + ns_if + " netns " + name + "\n" + ip + " addr add " +
                               host_ip + "/30 dev " + host_if + "\n" + ip + " link set " + host_if +
                               " up\n" + ip + " -n " + name + " addr add " + ns_ip + "/30 dev " +
                               ns_if + "\n" + ip + " -n " + name + " link set " + ns_if + " up\n" +
                               ip + " -n " + name + " link set lo up\n";
    ok = rx::test::run_program({"/bin/sh", "-c", script}, log).exit_code == 0;
  }

  ~NetNs() {
    if (ip.empty() || log.empty()) return;
    (void)rx::test::run_program({"/bin/sh", "-c",
                                 ip + " link del " + host_if + " 2>/dev/null; " + ip +
                                     " netns del " + name + " 2>/dev/null; true"},
                                log);
    std::remove(log.c_str());
  }

  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  NetNs(NetNs&&) = delete;
  NetNs& operator=(NetNs&&) = delete;

  bool link(bool up) const {
    return rx::test::run_program({ip, "link", "set", host_if, up ? "up" : "down"}, log).exit_code ==
           0;
  }
};

}  // namespace

TEST_CASE("fault: the agent's link is cut for 10 s and the viewer gets every line once",
          "[integration][fault]") {
  NetNs ns;
  if (!ns.ok) {
    WARN(
        "SKIPPED: cannot create a network namespace and veth pair here (needs root and "
        "CAP_NET_ADMIN; see " +
        ns.log + ")");
    return;
  }
  rx::test::ServerOptions o;
  o.listen_host = ns.host_ip;
  o.agent_grace = 60s;
  System sys(o);
  const std::string token = sys.add_user("dave");
  auto agent = sys.start_agent(token, "netns-agent",
                               {"REXEC_PING_INTERVAL_MS=1000", "REXEC_IDLE_TIMEOUT_MS=3000",
                                "REXEC_HANDSHAKE_TIMEOUT_MS=3000"},
                               {ns.ip, "netns", "exec", ns.name});
  REQUIRE(sys.wait_online(token, agent.id, 15s));

  TestSocket v(sys.loop());
  REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=cut"), token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"},
               {"data", "for i in $(seq 1 250); do echo C$i; sleep 0.1; done; echo cut-'fin'\n"}});
  REQUIRE(v.wait_output("C20"));

  const auto cut = Clock::now();
  REQUIRE(ns.link(false));
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  const auto noticed = Clock::now();
  // Half-open from the agent's side too: it hears nothing and gives up on the link by itself.
  REQUIRE(rx::test::wait_until(
      [&] { return agent.process->log().find("server silent") != std::string::npos; }, 10s));
  const auto agent_noticed = Clock::now();
  sys.loop().run_until([] { return false; }, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 10s - (Clock::now() - cut)));
  REQUIRE(ns.link(true));
  const auto restored = Clock::now();
  const bool back = v.wait_type("agent_connected", 40s).has_value();
  const auto reconnected = Clock::now();
  if (!back) sys.dump_logs();
  REQUIRE(back);
  const bool done = v.wait_output("cut-fin", 40s);
  if (!done) sys.dump_logs();
  REQUIRE(done);
  const auto lines = rx::test::lines_matching(v.output(), "C[0-9]+");
  CHECK(lines == rx::test::numbered("C", 1, 250));
  CHECK_FALSE(!v.messages("gap").empty());
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  std::printf(
      "link cut: server noticed after %lld ms, agent after %lld ms; reconnected %lld ms "
      "after the link came back; %zu of 250 lines, each once\n",
      static_cast<long long>(duration_cast<milliseconds>(noticed - cut).count()),
      static_cast<long long>(duration_cast<milliseconds>(agent_noticed - cut).count()),
      static_cast<long long>(duration_cast<milliseconds>(reconnected - restored).count()),
      lines.size());
}

TEST_CASE("fault: the server is killed (SIGKILL) mid-output and restarted and nothing is lost",
          "[integration][fault]") {
  System sys;
  const std::string token = sys.add_user("erin");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id, 10s));
  TestSocket v(sys.loop());
  REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=k1"), token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json(
      {{"type", "input"},
       {"data", "for i in $(seq 1 120); do echo K$i; sleep 0.05; done; echo kill-'fin'\n"}});
  REQUIRE(v.wait_output("K10"));
  sys.restart_server({}, /*hard=*/true);
  REQUIRE(v.wait_closed(10s));
  const std::uint64_t shown = v.output_end_offset();
  // The agent finds the new server by itself; the record and its token survived in the DB.
  REQUIRE(sys.wait_online(token, agent.id, 20s));
  TestSocket w(sys.loop());
  REQUIRE(w.open(
      sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=k2&offset=" + std::to_string(shown)),
      token, "rexec.v2"));
  const bool done = w.wait_output("kill-fin", 20s);
  if (!done) sys.dump_logs();
  REQUIRE(done);
  CHECK(rx::test::lines_matching(v.output() + w.output(), "K[0-9]+") ==
        rx::test::numbered("K", 1, 120));
  CHECK_FALSE(!w.messages("gap").empty());
}

TEST_CASE(
    "fault: the agent is killed and restarted: the viewer sees shell_stopped, then a new "
    "shell",
    "[integration][fault]") {
  rx::test::ServerOptions o;
  o.agent_grace = 30s;
  System sys(o);
  const std::string token = sys.add_user("frank");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id, 10s));
  TestSocket v(sys.loop());
  REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=ak"), token, "rexec.v1"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"}, {"data", "echo before-'kill'\n"}});
  REQUIRE(v.wait_output("before-kill"));
  agent.process->kill();
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  sys.restart_agent(agent);
  REQUIRE(v.wait_type("agent_connected", 20s));
  const bool stopped = v.wait_type("shell_stopped", 10s).has_value();
  if (!stopped) sys.dump_logs();
  CHECK(stopped);
  // A new shell on the same socket, working.
  const auto started = [&] {
    int n = 0;
    for (const auto& f : v.frames()) {
      if (auto j = f.json(); j.is_object() && j.value("type", "") == "shell_started") ++n;
    }
    return n;
  };
  REQUIRE(sys.loop().run_until([&] { return started() >= 2; }, 10s));
  v.send_json({{"type", "input"}, {"data", "echo after-'restart'\n"}});
  CHECK(v.wait_output("after-restart"));
}

namespace {

// A plain HTTP server on 127.0.0.1 that answers every request with `status`; returns its port.
struct StatusServer {
  std::unique_ptr<rx::test::Process> process;
  int port = 0;

  StatusServer(int status, const std::string& log) {
    const std::string code = std::to_string(status);
    const std::string py =
        "import http.server,sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "  def do_GET(self):\n"
        "    self.send_response(" +
        code +
        ")\n"
        "    self.send_header('Content-Type','application/json')\n"
        "    self.end_headers()\n"
        "    self.wfile.write(b'{\"error\":\"status " +
        code +
        "\"}')\n"
        "  def log_message(self,*a): pass\n"
        "s=http.server.HTTPServer(('127.0.0.1',0),H)\n"
        "print('port',s.server_address[1],flush=True)\n"
        "s.serve_forever()\n";
    process = std::make_unique<rx::test::Process>(
        rx::test::Process::start({"/usr/bin/python3", "-c", py}, log));
    rx::test::wait_until(
        [&] {
          const std::string text = rx::test::read_file(log);
          const auto at = text.find("port ");
          if (at == std::string::npos) return false;
          port = std::atoi(text.c_str() + at + 5);
          return port > 0;
        },
        10s);
  }
};

}  // namespace

TEST_CASE(
    "fault: the agent keeps retrying a server that is down or answers 5xx and only "
    "401/403/404 stop it",
    "[integration][fault]") {
  System sys;  // a place for files and logs; the agents below talk to other servers
  const std::string cfg = sys.dir() + "/retry.json";
  const auto write_config = [&](int port) {
    std::FILE* f = std::fopen(cfg.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fprintf(f, R"({"server":"http://127.0.0.1:%d","agent_id":"a1","token":"rexec_%064d"})",
                 port, 0);
    std::fclose(f);
  };
  const std::vector<std::string> env = {"REXEC_BACKOFF_BASE_MS=50", "REXEC_BACKOFF_CAP_MS=200",
                                        "REXEC_LOG_LEVEL=debug"};

  SECTION("refused connections and 500/503 answers: still running after many attempts") {
    for (int status : {0, 500, 503}) {
      INFO("status " << status);
      std::unique_ptr<StatusServer> web;
      int port = 1;  // nothing listens on port 1 of 127.0.0.1
      if (status != 0) {
        web = std::make_unique<StatusServer>(status, sys.dir() + "/web" + std::to_string(status));
        REQUIRE(web->port > 0);
        port = web->port;
      }
      write_config(port);
      const std::string log = sys.dir() + "/retry-" + std::to_string(status) + ".log";
      rx::test::Process agent =
          rx::test::Process::start({rx::test::agent_binary(), "run", "--config", cfg}, log, env);
      // With a 50–200 ms backoff window, 3 s is a good number of attempts.
      const bool exited = rx::test::wait_until([&] { return !agent.running(); }, 3s);
      INFO(agent.log());
      CHECK_FALSE(exited);
      CHECK(agent.log().find("reconnecting in_ms=") != std::string::npos);
      agent.signal(SIGTERM);
      const auto rc = agent.wait(10s);
      REQUIRE(rc);
      CHECK(WIFEXITED(*rc));
      CHECK(WEXITSTATUS(*rc) == 0);
    }
  }

  SECTION("401, 403 and 404 are permanent: exit status 78") {
    for (int status : {401, 403, 404}) {
      INFO("status " << status);
      StatusServer web(status, sys.dir() + "/web" + std::to_string(status));
      REQUIRE(web.port > 0);
      write_config(web.port);
      rx::test::Process agent =
          rx::test::Process::start({rx::test::agent_binary(), "run", "--config", cfg},
                                   sys.dir() + "/perm-" + std::to_string(status) + ".log", env);
      const auto rc = agent.wait(10s);
      INFO(agent.log());
      REQUIRE(rc);
      CHECK(WIFEXITED(*rc));
      CHECK(WEXITSTATUS(*rc) == 78);
    }
  }
}
