// SPDX-License-Identifier: MIT
// Operability (Scale out issue): GET /healthz, /readyz and /metrics on a real server, with an
// agent, a terminal and a refused token moving the figures.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "fixture.h"

using nlohmann::json;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

// Parses the text exposition format strictly: HELP and TYPE before each family's samples, every
// sample `name[{labels}] value`. Fails the test on anything else.
std::map<std::string, double> parse_metrics(const std::string& text) {
  static const std::regex kSample(R"(^([a-z_:][a-z0-9_:]*)(\{[^}]*\})? (\S+)$)");
  static const std::regex kHelp(R"(^# HELP ([a-z_:][a-z0-9_:]*) .+$)");
  static const std::regex kType(R"(^# TYPE ([a-z_:][a-z0-9_:]*) (gauge|counter)$)");
  std::map<std::string, double> out;
  std::set<std::string> helped;
  std::set<std::string> typed;
  std::istringstream in(text);
  std::string line;
  std::smatch m;
  while (std::getline(in, line)) {
    INFO(line);
    if (std::regex_match(line, m, kHelp)) {
      helped.insert(m[1]);
    } else if (std::regex_match(line, m, kType)) {
      CHECK(helped.count(m[1]) == 1);
      typed.insert(m[1]);
    } else {
      REQUIRE(std::regex_match(line, m, kSample));
      CHECK(typed.count(m[1]) == 1);
      out[m[1]] = std::stod(m[3]);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("operability: healthz, readyz and metrics that follow what happens",
          "[integration][metrics][pg]") {
  System sys;
  auto& loop = sys.loop();
  const auto health = rx::test::http(loop, "GET", sys.http_url("/healthz"));
  CHECK(health.status == 200);
  CHECK(health.body == json{{"status", "ok"}});
  const auto ready = rx::test::http(loop, "GET", sys.http_url("/readyz"));
  CHECK(ready.status == 200);
  CHECK(ready.body == json{{"status", "ready"}, {"db", "ok"}});
  CHECK(rx::test::http(loop, "POST", sys.http_url("/metrics"), "", "x").status == 405);

  const auto scrape = [&] {
    const auto r = rx::test::http(loop, "GET", sys.http_url("/metrics"));
    REQUIRE(r.status == 200);
    return parse_metrics(r.raw);
  };
  auto before = scrape();
  CHECK(before.at("rexec_agents_connected") == 0);
  CHECK(before.at("rexec_process_resident_memory_bytes") > 1e6);
  CHECK(before.at("rexec_process_open_fds") > 3);
  CHECK(before.at("rexec_db_errors_total") == 0);

  const std::string token = sys.add_user("mia");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id));
  TestSocket user(loop);
  REQUIRE(
      user.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=metrics"), token, "rexec.v2"));
  REQUIRE(user.wait_type("shell_started"));
  const std::string command = "echo metrics-'ok'\n";
  user.send_binary(command);
  REQUIRE(user.wait_output("metrics-ok"));
  const auto failures = before.at("rexec_auth_failures_total");
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents"), "rexec_" + std::string(64, '1'))
            .status == 401);

  const auto after = scrape();
  CHECK(after.at("rexec_agents_connected") == 1);
  CHECK(after.at("rexec_sessions_open") == 1);
  CHECK(after.at("rexec_terminal_sockets") == 1);
  CHECK(after.at("rexec_terminal_input_bytes_total") >= static_cast<double>(command.size()));
  CHECK(after.at("rexec_terminal_output_bytes_total") >= static_cast<double>(user.output().size()));
  CHECK(after.at("rexec_user_sent_bytes_total") >= static_cast<double>(user.output().size()));
  CHECK(after.at("rexec_auth_failures_total") == failures + 1);
  // The fixture pings every 500 ms and gives up after 2 s: a live agent is never that quiet.
  CHECK(after.at("rexec_heartbeat_lag_max_seconds") < 2.0);
  CHECK(after.at("rexec_messages_dropped_total") == 0);

  user.close();
  REQUIRE(user.wait_closed());
  loop.run_until([&] { return scrape().at("rexec_terminal_sockets") == 0; }, 5s);
  CHECK(scrape().at("rexec_terminal_sockets") == 0);
}

TEST_CASE("operability: --metrics-token guards /metrics and only it", "[integration][metrics]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--metrics-token", "scrape-secret-123"};
  System sys(o);
  auto& loop = sys.loop();
  CHECK(rx::test::http(loop, "GET", sys.http_url("/metrics")).status == 401);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/metrics"), "scrape-secret-12").status == 401);
  const auto ok = rx::test::http(loop, "GET", sys.http_url("/metrics"), "scrape-secret-123");
  CHECK(ok.status == 200);
  CHECK(ok.raw.find("rexec_agents_connected 0\n") != std::string::npos);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/healthz")).status == 200);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/readyz")).status == 200);
  CHECK(sys.server().log().find("scrape-secret-123") == std::string::npos);
}
