// SPDX-License-Identifier: MIT
// rexec-server on PostgreSQL when the database goes away: open terminals never notice, requests
// that need the database fail clearly and quickly, /readyz says so, and everything recovers
// once the database is back. Stops and restarts the shared test cluster: runs serially.
#include <catch2/catch.hpp>

#include <filesystem>

#include "fixture.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// pg_cluster.sh halt|resume on the cluster that REXEC_TEST_PG_URL_FILE belongs to.
void cluster(const std::string& action, const std::string& log) {
  const char* url_file = std::getenv("REXEC_TEST_PG_URL_FILE");  // NOLINT(concurrency-mt-unsafe)
  REQUIRE(url_file != nullptr);
  const std::string dir = std::filesystem::path(url_file).parent_path();
  auto r = rx::test::run_program(
      {"/bin/bash", std::string(REXEC_FIXTURES_DIR) + "/pg_cluster.sh", action, dir}, log);
  INFO(rx::test::read_file(log));
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("postgres: the database stops and comes back, and open terminals never notice",
          "[integration][pgonly]") {
  System sys;
  REQUIRE(sys.on_postgres());
  auto& loop = sys.loop();
  const std::string token = sys.add_user("alice");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id));
  TestSocket user(loop);
  REQUIRE(user.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=pg1"), token, "rexec.v2"));
  REQUIRE(user.wait_type("shell_started"));

  const std::string log = sys.dir() + "/pg_cluster.log";
  cluster("halt", log);

  // Resumed however this test ends, so the tests after it find the cluster running.
  struct Resume {
    std::string log;
    bool done = false;

    ~Resume() {
      if (done) return;
      try {
        cluster("resume", log);
      } catch (...) {  // the tests after this one will say the cluster is down
      }
    }
  } resume{log};

  auto ready = rx::test::http(loop, "GET", sys.http_url("/readyz"));
  CHECK(ready.status == 503);
  CHECK(ready.body["db"] == "error");
  // Requests that need the database get a clear 500, quickly (the connection is refused).
  const auto t0 = Clock::now();
  auto list = rx::test::http(loop, "GET", sys.http_url("/api/agents"), token);
  CHECK(list.status == 500);
  CHECK(Clock::now() - t0 < 3s);
  // The open terminal does not touch the database: echo still works, and heartbeats (written
  // behind) failing meanwhile do not take the agent offline.
  user.send_json({{"type", "input"}, {"data", "echo during-'outage'-ok\n"}});
  CHECK(user.wait_output("during-outage-ok", 5s));
  std::this_thread::sleep_for(1500ms);  // past a ping interval: a heartbeat write failed
  user.send_json({{"type", "input"}, {"data", "echo still-'up'-ok\n"}});
  CHECK(user.wait_output("still-up-ok", 5s));

  cluster("resume", log);
  resume.done = true;
  bool back = false;
  for (int i = 0; i < 100 && !back; ++i) {
    back = rx::test::http(loop, "GET", sys.http_url("/readyz")).status == 200;
    if (!back) std::this_thread::sleep_for(100ms);
  }
  CHECK(back);
  list = rx::test::http(loop, "GET", sys.http_url("/api/agents"), token);
  REQUIRE(list.status == 200);
  REQUIRE(list.body.size() == 1);
  CHECK(list.body[0]["status"] == "online");
  TestSocket split(loop);
  REQUIRE(split.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=pg2&newSession=true"),
                     token, "rexec.v2"));
  REQUIRE(split.wait_type("shell_started"));
  split.send_json({{"type", "input"}, {"data", "echo after-'outage'-ok\n"}});
  CHECK(split.wait_output("after-outage-ok", 5s));
  const auto metrics = rx::test::http(loop, "GET", sys.http_url("/metrics"));
  CHECK(metrics.raw.find("rexec_db_errors_total 0\n") == std::string::npos);
  if (!back) sys.dump_logs();
}
