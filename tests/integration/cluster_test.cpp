// SPDX-License-Identifier: MIT
// Several rexec-server instances (PROTOCOL §9): real PostgreSQL, real Redis, real agents and
// shells. The agent is on instance B; users are on A and C and must get what a user on B gets.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>

#include "asciicast.h"
#include "cluster_fixture.h"

using rx::test::ClusterSystem;
using rx::test::TestSocket;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int kA = 0;
constexpr int kB = 1;
constexpr int kC = 2;

struct Setup {
  ClusterSystem sys;
  std::string token;
  ClusterSystem::Agent agent;

  // The agent on B (directly, or through a balancer over `instances`). `extra_args` go to every
  // instance.
  explicit Setup(const std::vector<int>& instances = {kB}, std::vector<std::string> extra_args = {})
      : sys(3, "debug", std::move(extra_args)),
        token(sys.add_user("alice")),
        agent(sys.start_agent(token, instances)) {
    const bool online = sys.wait_online(token, agent.id, kA);
    if (!online) sys.dump_logs();
    REQUIRE(online);
  }

  std::string url(int instance, const std::string& conn_id, const std::string& extra = "") const {
    return sys.ws_url(instance, "/ws/agent/" + agent.id + "/terminal?id=" + conn_id + extra);
  }
};

// Every instance answers /readyz 200 (its database and Redis answer) within `timeout`.
bool all_ready(ClusterSystem& sys, std::chrono::milliseconds timeout) {
  return sys.loop().run_until(
      [&] {
        for (int i : {kA, kB, kC}) {
          if (rx::test::http(sys.loop(), "GET", sys.http_url(i, "/readyz")).status != 200) {
            return false;
          }
        }
        return true;
      },
      timeout);
}

// The one number a query answers, straight from the database the instances share.
long long db_count(const std::string& url, const std::string& query) {
  return std::stoll(rx::test::pg_query(url, query));
}

bool run_in(TestSocket& s, const std::string& command, const std::string& marker,
            std::chrono::milliseconds timeout = 10s) {
  s.send_json({{"type", "input"}, {"data", command + "\n"}});
  return s.wait_output(marker, timeout);
}

}  // namespace

TEST_CASE("cluster: users on A and C use a terminal on B's agent, v1 and v2", "[cluster]") {
  Setup s;
  auto& loop = s.sys.loop();
  // Where is the agent: every instance agrees, and lists it online.
  for (int i : {kA, kB, kC}) {
    auto list = rx::test::http(loop, "GET", s.sys.http_url(i, "/api/agents"), s.token);
    REQUIRE(list.status == 200);
    REQUIRE(list.body.size() == 1);
    CHECK(list.body[0]["status"] == "online");
  }
  TestSocket v1(loop);
  REQUIRE(v1.open(s.url(kA, "x-v1"), s.token, "rexec.v1"));
  CHECK(v1.subprotocol() == "rexec.v1");
  TestSocket v2(loop);
  REQUIRE(v2.open(s.url(kC, "x-v2"), s.token, "rexec.v2"));
  REQUIRE(v1.wait_type("shell_started"));
  REQUIRE(v2.wait_type("shell_started"));
  // Two viewers of main on two instances: what one types, both see.
  const bool ok = run_in(v1, "echo cross-'v1'-ok", "cross-v1-ok");
  if (!ok) s.sys.dump_logs();
  REQUIRE(ok);
  CHECK(v2.wait_output("cross-v1-ok"));
  CHECK(run_in(v2, "echo cross-'v2'-ok", "cross-v2-ok"));
  CHECK(v1.wait_output("cross-v2-ok"));
  bool binary = false;
  for (const auto& f : v2.frames()) binary = binary || f.binary;
  CHECK(binary);  // v2 users get binary output
  for (const auto& f : v1.frames()) CHECK_FALSE(f.binary);
  // Binary input from a v2 user reaches the shell.
  v2.send_binary("echo bin-'input'-ok\n");
  CHECK(v2.wait_output("bin-input-ok"));

  // Resize from A, seen by stty on B's agent.
  v1.send_json({{"type", "resize"}, {"cols", 101}, {"rows", 33}});
  CHECK(run_in(v1, "stty size | sed 's/^/SZ=/'", "SZ=33 101"));

  // A split from C: its own shell, and its exit code arrives on C.
  TestSocket split(loop);
  REQUIRE(split.open(s.url(kC, "x-split", "&newSession=true"), s.token, "rexec.v2"));
  REQUIRE(split.wait_type("shell_started"));
  split.send_json({{"type", "input"}, {"data", "exit 7\n"}});
  auto stopped = split.wait_type("shell_stopped");
  REQUIRE(stopped);
  CHECK((*stopped)["data"]["exit_code"] == 7);

  // exec through A.
  TestSocket ex(loop);
  REQUIRE(ex.open(s.url(kA, "x-exec"), s.token, "rexec.v2"));
  REQUIRE(ex.wait_type("shell_started"));
  ex.send_json({{"type", "exec"}, {"data", {{"command", "echo exec-$((6*7))"}}}});
  auto result = ex.wait_type("exec_result");
  REQUIRE(result);
  CHECK((*result)["data"]["output"].get<std::string>().find("exec-42") != std::string::npos);
  // A command over HTTP (`rexec exec`), relayed from A and from C to B's agent.
  for (int i : {kA, kC}) {
    auto r = rx::test::http(loop, "POST", s.sys.http_url(i, "/api/agents/" + s.agent.id + "/exec"),
                            s.token, R"({"command":"echo http-$((6*7)); exit 4"})");
    CHECK(r.status == 200);
    CHECK(r.raw == R"({"command":"echo http-$((6*7)); exit 4","output":"http-42\n",)"
                   R"("success":false,"exit_code":4})");
  }
  // The public CLI's list, from an instance the agent is not on.
  auto listed = rx::test::http(loop, "GET", s.sys.http_url(kC, "/api/containers"), s.token);
  REQUIRE(listed.body["count"] == 1);
  CHECK(listed.body["containers"][0]["status"] == "running");

  // The events hub on C carries the stats of B's agent.
  TestSocket events(loop);
  REQUIRE(events.open(s.sys.ws_url(kC, "/api/events"), s.token));
  auto stats = events.wait_type("agent_stats", 15s);
  REQUIRE(stats);
  CHECK((*stats)["data"]["agent_id"] == s.agent.id);

  // Metrics: B has the remote viewers, A and C the relays.
  auto mb = rx::test::http(loop, "GET", s.sys.http_url(kB, "/metrics"));
  CHECK(std::regex_search(mb.raw, std::regex("rexec_cluster_remote_viewers [1-9]")));
  auto ma = rx::test::http(loop, "GET", s.sys.http_url(kA, "/metrics"));
  CHECK(std::regex_search(ma.raw, std::regex("rexec_cluster_relays [1-9]")));
  CHECK(ma.raw.find("rexec_redis_errors_total 0\n") != std::string::npos);
}

TEST_CASE("cluster: a viewer resumes on another instance with &offset, every line once",
          "[cluster]") {
  Setup s;
  auto& loop = s.sys.loop();
  TestSocket a(loop);
  REQUIRE(a.open(s.url(kA, "r-a"), s.token, "rexec.v2"));
  REQUIRE(a.wait_type("shell_started"));
  REQUIRE(run_in(a, "seq 1 300 | sed 's/^/L/'; echo first-'done'", "first-done"));
  a.send_json(
      {{"type", "input"}, {"data", "sleep 0.5; seq 301 900 | sed 's/^/L/'; echo second-'done'\n"}});
  loop.run_for(100ms);
  const std::uint64_t shown = a.output_end_offset();
  const std::string first = a.output();
  a.close();
  REQUIRE(a.wait_closed());
  loop.run_for(800ms);
  TestSocket c(loop);
  REQUIRE(c.open(s.url(kC, "r-c", "&offset=" + std::to_string(shown)), s.token, "rexec.v2"));
  REQUIRE(c.wait_output("second-done"));
  CHECK(c.messages("offset").front()["data"].get<std::uint64_t>() == shown);
  CHECK(c.messages("gap").empty());
  CHECK(rx::test::lines_matching(first + c.output(), "L[0-9]+") == rx::test::numbered("L", 1, 900));
}

TEST_CASE("cluster: instance B dies, the agent moves to C, and A's viewer follows it",
          "[cluster]") {
  Setup s({kB, kC});  // the agent's balancer tries B, then C
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  REQUIRE(v.open(s.url(kA, "m-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  REQUIRE(run_in(v, "echo on-'b'", "on-b"));
  v.send_json(
      {{"type", "input"},
       {"data", "for i in $(seq 1 80); do echo M$i; sleep 0.05; done; echo moved-'fin'\n"}});
  REQUIRE(v.wait_output("M5"));
  s.sys.kill_instance(kB);
  // The agent reconnects through the balancer to C; A's viewer attaches there at the position
  // it had shown, and C's hub replays what the shell wrote meanwhile.
  const bool done = v.wait_output("moved-fin", 30s);
  if (!done) s.sys.dump_logs();
  REQUIRE(done);
  CHECK(rx::test::lines_matching(v.output(), "M[0-9]+") == rx::test::numbered("M", 1, 80));
  CHECK(v.messages("gap").empty());
  CHECK(run_in(v, "echo on-'c'", "on-c"));
  CHECK(s.sys.wait_online(s.token, s.agent.id, kA));
  CHECK(s.sys.instance(kC).log().find("agent connected agent=" + s.agent.id) != std::string::npos);
}

TEST_CASE("cluster: B restarts, the agent comes back to it, and A's viewer gets every line",
          "[cluster]") {
  Setup s;  // the agent dials B alone, so it comes back to B: the same id, a new incarnation
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  REQUIRE(v.open(s.url(kA, "rb-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"},
               {"data", "for i in $(seq 1 80); do echo R$i; sleep 0.05; done; echo back-'fin'\n"}});
  REQUIRE(v.wait_output("R5"));
  s.sys.restart_instance(kB, {});
  // The restarted B holds no attachment for A's viewer: the agent's agent_connected makes A
  // attach it again, at the position it had shown, and B's hub replays what the shell wrote.
  const bool done = v.wait_output("back-fin", 30s);
  if (!done) s.sys.dump_logs();
  REQUIRE(done);
  CHECK(rx::test::lines_matching(v.output(), "R[0-9]+") == rx::test::numbered("R", 1, 80));
  CHECK(v.messages("gap").empty());
}

TEST_CASE("cluster: Redis restarts mid-session, and routing resumes", "[cluster]") {
  Setup s;
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  REQUIRE(v.open(s.url(kA, "redis-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  REQUIRE(run_in(v, "echo before-'restart'", "before-restart"));
  s.sys.kill_redis();
  bool not_ready = loop.run_until(
      [&] { return rx::test::http(loop, "GET", s.sys.http_url(kA, "/readyz")).status == 503; }, 5s);
  CHECK(not_ready);
  // A terminal opened now cannot be routed: a clear refusal, not a hang.
  TestSocket refused(loop);
  CHECK_FALSE(refused.open(s.url(kC, "redis-refused"), s.token, "rexec.v2"));
  CHECK(refused.close_info().http_status == 503);
  s.sys.start_redis();
  REQUIRE(all_ready(s.sys, 15s));
  // The open terminal works again: the instances put the location back and re-attached.
  const bool ok = run_in(v, "echo after-'restart'", "after-restart", 15s);
  if (!ok) s.sys.dump_logs();
  CHECK(ok);
  TestSocket fresh(loop);
  REQUIRE(fresh.open(s.url(kC, "redis-fresh"), s.token, "rexec.v2"));
  REQUIRE(fresh.wait_type("shell_started"));
  CHECK(run_in(fresh, "echo fresh-'ok'", "fresh-ok"));
}

TEST_CASE("cluster: a token revoked on A is refused on C at once, a deleted agent leaves B",
          "[cluster]") {
  Setup s;
  auto& loop = s.sys.loop();
  auto made = rx::test::http(loop, "POST", s.sys.http_url(kA, "/api/tokens"), s.token,
                             R"({"name":"second"})");
  REQUIRE(made.status == 201);
  const std::string second = made.body["token"];
  // C validates it once and caches the answer (for up to 5 minutes).
  CHECK(rx::test::http(loop, "GET", s.sys.http_url(kC, "/api/agents"), second).status == 200);
  auto revoked = rx::test::http(
      loop, "DELETE", s.sys.http_url(kA, "/api/tokens/" + made.body["id"].get<std::string>()),
      s.token);
  REQUIRE(revoked.status == 200);
  const bool refused = loop.run_until(
      [&] {
        return rx::test::http(loop, "GET", s.sys.http_url(kC, "/api/agents"), second).status == 401;
      },
      3s);
  CHECK(refused);

  // Deleted through A, the agent loses its socket on B.
  REQUIRE(rx::test::http(loop, "DELETE", s.sys.http_url(kA, "/api/agents/" + s.agent.id), s.token)
              .status == 200);
  const bool gone = loop.run_until(
      [&] {
        auto m = rx::test::http(loop, "GET", s.sys.http_url(kB, "/metrics"));
        return m.raw.find("rexec_agents_connected 0\n") != std::string::npos;
      },
      5s);
  if (!gone) s.sys.dump_logs();
  CHECK(gone);
}

TEST_CASE("cluster: the plan's terminal limit counts terminals on every instance", "[cluster]") {
  ClusterSystem sys(3, "debug", {"--plan-limit", "free=2"});
  auto& loop = sys.loop();
  const std::string token = sys.add_user("alice");
  auto x = sys.start_agent(token, {kB}, "x");
  auto y = sys.start_agent(token, {kC}, "y");
  REQUIRE(sys.wait_online(token, x.id, kA));
  REQUIRE(sys.wait_online(token, y.id, kA));
  // The plan shrinks to 1 on A: one agent with terminals, counted over all instances.
  sys.restart_instance(kA, {"--plan-limit", "free=1"});
  auto term = [&](int instance, const std::string& agent, const std::string& id) {
    return sys.ws_url(instance, "/ws/agent/" + agent + "/terminal?id=" + id);
  };
  auto on_c = std::make_unique<TestSocket>(loop);
  REQUIRE(on_c->open(term(kC, x.id, "lim-c"), token, "rexec.v2"));
  REQUIRE(on_c->wait_type("shell_started"));
  // A terminal on x through A is fine (x already has one); on y it is one agent too many.
  TestSocket same(loop);
  CHECK(same.open(term(kA, x.id, "lim-a1"), token, "rexec.v2"));
  same.close();
  REQUIRE(same.wait_closed());
  TestSocket over(loop);
  CHECK_FALSE(over.open(term(kA, y.id, "lim-a2"), token, "rexec.v2"));
  CHECK(over.close_info().http_status == 403);
  // Once the terminal on C is closed, y is allowed.
  on_c->close();
  REQUIRE(on_c->wait_closed());
  bool allowed = loop.run_until(
      [&] {
        TestSocket t(loop);
        return t.open(term(kA, y.id, "lim-a3"), token, "rexec.v2");
      },
      5s);
  if (!allowed) sys.dump_logs();
  CHECK(allowed);
}

TEST_CASE("cluster: a Redis that stops answering is noticed, and routing resumes after it",
          "[cluster]") {
  Setup s;
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  REQUIRE(v.open(s.url(kA, "freeze-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  REQUIRE(run_in(v, "echo before-'freeze'", "before-freeze"));
  // Frozen, Redis keeps its sockets open: no connection sees an end, only silence, which the
  // instances' watchdogs must notice on their own.
  // A watchdog tick sends a PING (up to 1 s after the freeze) and gives up on it 3 s later, at
  // a tick: about 5 s, and later on a loaded machine. The bound leaves room for that.
  s.sys.redis().signal(SIGSTOP);
  auto noticed = [&](int i) {
    return s.sys.instance(i).log().find("silent; reconnecting") != std::string::npos;
  };
  loop.run_until([&] { return noticed(kA) && noticed(kB); }, 12s);
  s.sys.redis().signal(SIGCONT);
  for (int i : {kA, kB}) {
    INFO("instance " << i);
    CHECK(noticed(i));
  }
  REQUIRE(all_ready(s.sys, 15s));
  const bool ok = run_in(v, "echo after-'freeze'", "after-freeze", 15s);
  if (!ok) s.sys.dump_logs();
  CHECK(ok);
}

TEST_CASE("cluster: files go up through A and come back through C from B's agent", "[cluster]") {
  Setup s;
  const std::string dir = s.sys.dir() + "/cluster-files";
  std::filesystem::create_directories(dir + "/landing");
  const std::string src = dir + "/src.bin";
  {
    std::ofstream out(src, std::ios::binary);
    std::string chunk(1U << 20U, '\0');
    for (int i = 0; i < 24; ++i) {  // 24 MiB + 7: many windows, an odd tail
      for (std::size_t j = 0; j < chunk.size(); ++j) {
        chunk[j] = static_cast<char>((j * 131U + static_cast<std::size_t>(i) * 7U) & 0xFFU);
      }
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
    out.write("tail-7b", 7);
  }
  auto curl = [&](int instance, const std::vector<std::string>& args, const std::string& path,
                  const std::string& route = "files") {
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "120",
                                     "-w",
                                     "%{http_code}",
                                     "-H",
                                     "Authorization: Bearer " + s.token};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(
        s.sys.http_url(instance, "/api/agents/" + s.agent.id + "/" + route + "?path=" + path));
    auto code = rx::test::run_program(argv, dir + "/curl.log", 180s).out;
    if (code.size() != 3 || code[0] < '2') {  // no final answer: the connection failed
      std::fprintf(stderr, "curl: %s\n", rx::test::read_file(dir + "/curl.log").c_str());
      s.sys.dump_logs();
    }
    return code;
  };
  // Compared whole, but a failure must not print 24 MiB of bytes.
  const auto same_bytes = [](const std::string& a, const std::string& b) {
    return rx::test::read_file(a) == rx::test::read_file(b);
  };
  // Up through A, slowed so that B's window pauses A's reading more than once.
  const std::string landed = dir + "/landing/up.bin";
  CHECK(curl(kA, {"--limit-rate", "16M", "-T", src, "-o", dir + "/up.json"}, landed) == "200");
  const auto up = json::parse(rx::test::read_file(dir + "/up.json"), nullptr, false);
  CHECK(up.value("size", 0) == (24 << 20) + 7);
  CHECK(same_bytes(landed, src));
  // Down through C, slowed too: the acknowledgements cross Redis back to B's agent.
  CHECK(curl(kC, {"--limit-rate", "16M", "-o", dir + "/down.bin"}, landed) == "200");
  CHECK(same_bytes(dir + "/down.bin", src));
  // A listing and an error, each from B's agent, through A.
  CHECK(curl(kA, {"-o", dir + "/list.json"}, dir + "/landing", "files/list") == "200");
  const auto list = json::parse(rx::test::read_file(dir + "/list.json"), nullptr, false);
  REQUIRE(list["entries"].size() == 1);
  CHECK(list["entries"][0]["name"] == "up.bin");
  CHECK(curl(kA, {"-o", dir + "/err.json"}, dir + "/nothing") == "404");
  CHECK(json::parse(rx::test::read_file(dir + "/err.json"), nullptr, false)["error"] ==
        dir + "/nothing: no such file or directory");
  CHECK(s.sys.instance(kA).log().find("file transfer relayed") != std::string::npos);
  CHECK(s.sys.instance(kC).log().find("file transfer relayed") != std::string::npos);
}

TEST_CASE("cluster: B's recordings are listed, played and streamed through A and C, and pruned",
          "[cluster]") {
  Setup s({kB}, {"--recordings-keep", "2"});
  auto& loop = s.sys.loop();
  const std::string base = "/api/agents/" + s.agent.id;
  auto get = [&](int instance, const std::string& path) {
    return rx::test::http(loop, "GET", s.sys.http_url(instance, base + path), s.token);
  };
  // No directory was given: on PostgreSQL recordings are available all the same.
  CHECK(get(kC, "/recording").body["available"] == true);
  REQUIRE(rx::test::http(loop, "PUT", s.sys.http_url(kA, base + "/recording"), s.token,
                         R"({"mode":"on"})")
              .status == 200);

  // A viewer on A; B (the agent's instance) records.
  TestSocket v(loop);
  REQUIRE(v.open(s.url(kA, "rec-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  // Many small output frames: typed one command at a time.
  for (int i = 1; i <= 40; ++i) {
    v.send_json({{"type", "input"}, {"data", "echo k-'" + std::to_string(i) + "'\n"}});
    loop.run_for(15ms);
  }
  REQUIRE(v.wait_output("k-40"));
  const bool shown =
      run_in(v,
             "seq 1 3000 | sed 's/^/R/'; printf 'h\\303\\251llo \\342\\234\\223\\n'; "
             "echo rec-'done'",
             "rec-done", 20s);
  if (!shown) s.sys.dump_logs();
  REQUIRE(shown);
  loop.run_for(800ms);  // the prompt after it, and the recording's last batch (200 ms)

  // Listed alike on A and C, and played back to exactly what A's viewer saw.
  const auto on_a = get(kA, "/recordings");
  const auto on_c = get(kC, "/recordings");
  REQUIRE(on_a.status == 200);
  REQUIRE(on_a.body["recordings"].size() == 1);
  CHECK(on_c.body == on_a.body);
  const json first = on_a.body["recordings"][0];
  CHECK(first["session_id"] == "main");
  const std::string name = first["name"].get<std::string>();
  const auto cast_a = get(kA, "/recordings/" + name);
  const auto cast_c = get(kC, "/recordings/" + name);
  REQUIRE(cast_a.status == 200);
  CHECK(cast_a.raw.size() == first["bytes"].get<std::size_t>());
  CHECK(cast_c.raw == cast_a.raw);
  const std::string played = rx::test::replay_asciicast(cast_a.raw);
  CHECK(played == v.output());
  CHECK(played.find("h\xc3\xa9llo \xe2\x9c\x93") != std::string::npos);
  // Batched: far fewer rows than events (output frames and resizes), not one INSERT each.
  const auto events =
      static_cast<long long>(std::count(cast_a.raw.begin(), cast_a.raw.end(), '\n')) - 1;
  const long long chunks = db_count(s.sys.db_url(), "SELECT count(*) FROM recording_chunks");
  INFO("events " << events << ", rows " << chunks);
  CHECK(events >= 40);
  CHECK(chunks >= 1);
  CHECK(chunks * 4 <= events);
  CHECK(get(kC, "/recordings/not-a-recording.txt").status == 400);

  // A large recording (a split, on B) downloads through A streamed: A reads the database as the
  // (slowed) client drains, so A's peak memory does not grow by anything like its size.
  constexpr long long kBig = 32000000;
  TestSocket big(loop);
  REQUIRE(big.open(s.url(kB, "rec-big", "&newSession=true"), s.token, "rexec.v2"));
  REQUIRE(big.wait_type("shell_started"));
  REQUIRE(run_in(big,
                 "head -c " + std::to_string(kBig) + " /dev/zero | tr '\\0' x; echo big-'done'",
                 "big-done", 90s));
  loop.run_for(800ms);
  std::string big_name;
  std::uint64_t big_bytes = 0;
  const auto listed = get(kC, "/recordings");
  INFO(listed.raw);
  for (const auto& r : listed.body["recordings"]) {
    if (r["session_id"] != "main") {
      big_name = r["name"].get<std::string>();
      big_bytes = r["bytes"].get<std::uint64_t>();
    }
  }
  if (big_name.empty()) s.sys.dump_logs();
  REQUIRE_FALSE(big_name.empty());
  CHECK(big_bytes > static_cast<std::uint64_t>(kBig));
  const pid_t a_pid = s.sys.instance(kA).pid();
  // Peak RSS from here on: writing 5 to clear_refs resets VmHWM (Linux 4.0).
  std::ofstream(std::string("/proc/") + std::to_string(a_pid) + "/clear_refs") << "5";
  const std::uint64_t rss_before = rx::test::proc_number(a_pid, "status", "VmRSS:");
  const std::string dir = s.sys.dir() + "/rec-download";
  std::filesystem::create_directories(dir);
  const auto fetched = rx::test::run_program(
      {"/usr/bin/curl", "-sS", "--max-time", "120", "--limit-rate", "16M", "-w", "%{http_code}",
       "-H", "Authorization: Bearer " + s.token, "-o", dir + "/big.cast",
       s.sys.http_url(kA, base + "/recordings/" + big_name)},
      dir + "/curl.log", 180s);
  CHECK(fetched.out == "200");
  const std::uint64_t peak = rx::test::proc_number(a_pid, "status", "VmHWM:");
  const std::string big_cast = rx::test::read_file(dir + "/big.cast");
  CHECK(big_cast.size() == big_bytes);
  const std::string big_played = rx::test::replay_asciicast(big_cast);
  CHECK(big_played.size() == big.output().size());
  CHECK(big_played == big.output());  // byte-exact with what B's viewer saw
  CHECK(std::count(big_played.begin(), big_played.end(), 'x') >= kBig);
  WARN("instance A: VmRSS before " << rss_before << " KiB, VmHWM during the download " << peak
                                   << " KiB, recording " << big_bytes / 1024 << " KiB");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // Sanitizer runtimes keep freed memory in quarantine: RSS says nothing there (the bytes
  // checked above are the proof of the download).
  WARN("peak RSS not checked under a sanitizer");
#else
  CHECK(peak < rss_before + big_bytes / 1024 / 4);
#endif

  // Retention (2 per agent): a third recording removes the oldest everywhere, chunks and all.
  const long long main_id =
      db_count(s.sys.db_url(), "SELECT id FROM recordings WHERE name='" + name + "'");
  REQUIRE(main_id > 0);
  TestSocket third(loop);
  REQUIRE(third.open(s.url(kC, "rec-3", "&newSession=true"), s.token, "rexec.v2"));
  REQUIRE(third.wait_type("shell_started"));
  REQUIRE(run_in(third, "echo third-'out'", "third-out"));
  for (int i : {kA, kC}) {
    const auto list = get(i, "/recordings");
    REQUIRE(list.body["recordings"].size() == 2);
    for (const auto& r : list.body["recordings"]) CHECK(r["name"] != name);
    CHECK(get(i, "/recordings/" + name).status == 404);
  }
  CHECK(db_count(s.sys.db_url(), "SELECT count(*) FROM recording_chunks WHERE recording_id=" +
                                     std::to_string(main_id)) == 0);
}

namespace {

// Every byte value 0..255 through a raw terminal to a v2 viewer on `instance`: what arrives
// between the markers is exactly those 256 bytes.
void check_every_byte(Setup& s, int instance, const std::string& conn_id) {
  INFO("viewer on instance " << instance);
  TestSocket v(s.sys.loop());
  REQUIRE(v.open(s.url(instance, conn_id, "&newSession=true"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  // No output processing (\n stays \n), no echo: the bytes the program writes are the bytes.
  REQUIRE(run_in(v, "stty raw -echo; echo raw-'on'", "raw-on"));
  std::string format;  // printf's octal escapes; the quotes keep the markers out of any echo
  std::string want;
  for (int i = 0; i < 256; ++i) {
    const char digits[] = {'\\', static_cast<char>('0' + (i >> 6)),
                           static_cast<char>('0' + ((i >> 3) & 7)),
                           static_cast<char>('0' + (i & 7))};
    format.append(digits, sizeof digits);
    want.push_back(static_cast<char>(i));
  }
  v.send_binary("printf '<<by''tes>>" + format + "<<e''nd>>'\n");
  REQUIRE(v.wait_output("<<end>>"));
  const std::string& out = v.output();
  const auto begin = out.find("<<bytes>>");
  REQUIRE(begin != std::string::npos);
  const auto end = out.find("<<end>>", begin);
  REQUIRE(end != std::string::npos);
  CHECK(out.substr(begin + 9, end - begin - 9) == want);
  for (const auto& f : v.frames()) {
    if (f.binary) continue;
    CHECK(f.json().is_object());  // the rest is JSON control messages
  }
}

}  // namespace

TEST_CASE("cluster: every byte value reaches a v2 viewer on another instance exactly",
          "[cluster]") {
  Setup s;
  check_every_byte(s, kA, "x-bytes-a");
  check_every_byte(s, kB, "x-bytes-b");  // the agent's own instance, for comparison
}

TEST_CASE("cluster: an instance without relay frames gets base64 JSON, byte-exact", "[cluster]") {
  Setup s;
  // A as an instance from before binary relay frames (a rolling upgrade): B must see that and
  // answer it in JSON, while C and B keep using frames.
  s.sys.restart_instance(kA, {"--relay-json"});
  REQUIRE(all_ready(s.sys, 20s));
  check_every_byte(s, kA, "x-json-a");
  check_every_byte(s, kC, "x-frames-c");
}
