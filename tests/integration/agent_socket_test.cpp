// SPDX-License-Identifier: MIT
// The agent socket end to end (PROTOCOL §3): online/offline, heartbeats, stats, garbage.
#include <catch2/catch.hpp>

#include <signal.h>

#include "fixture.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

std::string agent_status(System& sys, const std::string& token, const std::string& id) {
  auto r = rx::test::http(sys.loop(), "GET", sys.http_url("/api/agents/" + id), token);
  return r.status == 200 ? r.body.value("status", "") : "http-" + std::to_string(r.status);
}

}  // namespace

TEST_CASE("a registered agent is online within 1 s of starting", "[integration][pg]") {
  System sys;
  const std::string token = sys.add_user("alice");
  const auto start = std::chrono::steady_clock::now();
  auto agent = sys.start_agent(token, "box-1");
  const bool online =
      sys.loop().run_until([&] { return agent_status(sys, token, agent.id) == "online"; }, 5s);
  const auto took = std::chrono::steady_clock::now() - start;
  if (!online) sys.dump_logs();
  REQUIRE(online);
  // Includes the agent's process start and registration round trip.
  CHECK(took < 1500ms);

  auto list = rx::test::http(sys.loop(), "GET", sys.http_url("/api/agents"), token);
  REQUIRE(list.status == 200);
  REQUIRE(list.body.is_array());
  REQUIRE(list.body.size() == 1);
  const auto& a = list.body[0];
  CHECK(a.value("id", "") == agent.id);
  CHECK(a.value("name", "") == "box-1");
  CHECK(a.value("status", "") == "online");
  CHECK(a.contains("created_at"));
}

TEST_CASE("system_info and stats reach the status route and the events hub", "[integration][pg]") {
  System sys;
  const std::string token = sys.add_user("alice");
  TestSocket events(sys.loop());
  REQUIRE(events.open(sys.ws_url("/api/events"), token));
  auto agent = sys.start_agent(token, "box-1", {"REXEC_STATS_INTERVAL_MS=500"});

  auto connected = events.wait_type("agent_connected");
  REQUIRE(connected);
  auto stats = events.wait_type("agent_stats");
  if (!stats) sys.dump_logs();
  REQUIRE(stats);

  nlohmann::json status;
  REQUIRE(sys.loop().run_until(
      [&] {
        auto r = rx::test::http(sys.loop(), "GET",
                                sys.http_url("/api/agents/" + agent.id + "/status"), token);
        status = r.body;
        return r.status == 200 && status.contains("stats") && status.contains("system_info");
      },
      10s));
  CHECK(status.value("status", "") == "online");
  const auto& info = status["system_info"];
  CHECK(info.value("num_cpu", 0) >= 1);
  CHECK(info["memory"].value("total", 0ULL) > 0);
  CHECK(info["disk"].value("total", 0ULL) > 0);
  CHECK_FALSE(info.value("hostname", "").empty());
  const auto& st = status["stats"];
  CHECK(st.value("cpu_percent", -1.0) >= 0.0);
  CHECK(st.value("cpu_percent", 101.0) <= 100.0);
  CHECK(st.value("memory", 0ULL) > 0);
}

TEST_CASE("a killed agent goes offline within the timeout and viewers are told",
          "[integration][pg]") {
  System sys;  // pong timeout 2 s
  const std::string token = sys.add_user("alice");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.loop().run_until([&] { return agent_status(sys, token, agent.id) == "online"; }, 5s));
  TestSocket user(sys.loop());
  REQUIRE(user.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=k1"), token));
  REQUIRE(user.wait_type("shell_started"));

  // SIGSTOP leaves the TCP connection open but silent: only the heartbeat can notice.
  agent.process->signal(SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  const bool offline =
      sys.loop().run_until([&] { return agent_status(sys, token, agent.id) == "offline"; }, 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  agent.process->signal(SIGCONT);
  REQUIRE(offline);
  CHECK(took < 4s);  // pong timeout 2 s + one ping interval + polling
  CHECK(user.wait_type("agent_disconnected"));
}

TEST_CASE("garbage on the agent socket does not crash the server", "[integration][pg]") {
  System sys;
  const std::string token = sys.add_user("alice");
  auto reg = rx::test::http(sys.loop(), "POST", sys.http_url("/api/agents"), token,
                            R"({"name":"fake","os":"linux","arch":"amd64"})");
  REQUIRE(reg.status == 201);
  const std::string id = reg.body.value("id", "");
  const std::string agent_token = reg.body.value("token", "");
  REQUIRE(agent_token.rfind("rexec_", 0) == 0);

  TestSocket fake(sys.loop());
  REQUIRE(fake.open(sys.ws_url("/ws/agent/" + id), agent_token, "rexec.v2, rexec.v1"));
  fake.send_text("{not json");
  fake.send_text(R"({"data":1})");
  fake.send_text(R"({"type":42})");
  fake.send_text(R"({"type":"no_such_type","data":{}})");
  fake.send_text(R"({"type":"shell_output","data":{"session_id":"main","data":"@@@"}})");
  fake.send_text(R"({"type":"stats","data":"nope"})");
  fake.send_binary(std::string("\x01\x00", 2));
  fake.send_binary(std::string("\x09\x04main", 6));
  fake.send_binary(std::string("\x01\x40", 2));
  fake.send_json({{"type", "pong"}, {"data", nullptr}});
  sys.loop().run_for(300ms);
  CHECK(fake.is_open());  // dropped and counted, never fatal (§3.2)

  fake.send_text(std::string(2U << 20U, 'x'));  // over the 1 MiB maximum
  REQUIRE(fake.wait_closed());
  CHECK(fake.close_info().close_code == 1009);

  auto version = rx::test::http(sys.loop(), "GET", sys.http_url("/api/version"));
  CHECK(version.status == 200);
  CHECK(version.body.contains("version"));
  CHECK(sys.server().running());
}
