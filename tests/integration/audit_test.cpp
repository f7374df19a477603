// SPDX-License-Identifier: MIT
// Audit events end to end (docs/security.md "Audit"): a full scenario against a real server and
// agent, then GET /api/audit for the owner, another user and an admin, and the server's log,
// which has one JSON line per event and no token.
#include "rexec/server/auth/totp.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "fixture.h"

using nlohmann::json;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

// Every audit JSON line of a server log: `... audit {"type":...}`.
std::vector<json> audit_lines(const std::string& log) {
  std::vector<json> out;
  std::size_t at = 0;
  while ((at = log.find("audit {", at)) != std::string::npos) {
    const std::size_t start = at + 6;
    const std::size_t end = log.find('\n', start);
    auto j = json::parse(log.substr(start, end == std::string::npos ? end : end - start), nullptr,
                         false);
    if (!j.is_discarded()) out.push_back(std::move(j));
    at = start;
  }
  return out;
}

std::vector<std::string> types_of(const json& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.value("type", ""));
  return out;
}

}  // namespace

TEST_CASE("audit: a full scenario records the expected events for the owner and admins",
          "[integration][audit][pg]") {
  rx::test::ServerOptions options;
  options.extra_args = {"--plan-limit", "free=1"};
  System sys(options);
  auto& loop = sys.loop();
  const std::string token = sys.add_user("alice");
  const std::string other = sys.add_user("bob");
  const std::string admin = sys.add_user("root", "free", true);
  const auto call = [&](const std::string& method, const std::string& path, const std::string& who,
                        const std::string& body = "") {
    return rx::test::http(loop, method, sys.http_url(path), who, body);
  };
  const std::string alice_id = call("GET", "/api/tokens/validate", token).body["user_id"];
  const std::string bob_id = call("GET", "/api/tokens/validate", other).body["user_id"];

  // Registered and connected.
  auto agent = sys.start_agent(token, "audited");
  REQUIRE(sys.wait_online(token, agent.id));
  const std::string agent_token =
      json::parse(rx::test::read_file(agent.config_path)).value("token", "");
  REQUIRE_FALSE(agent_token.empty());

  // A terminal: a typed command, an exec, closed.
  {
    TestSocket user(loop);
    REQUIRE(
        user.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=aud1"), token, "rexec.v2"));
    REQUIRE(user.wait_type("shell_started"));
    user.send_json({{"type", "input"}, {"data", "echo audit-'typed'-ok\n"}});
    REQUIRE(user.wait_output("audit-typed-ok"));
    user.send_json({{"type", "exec"}, {"data", {{"command", "echo exec-ok; exit 3"}}}});
    auto result = user.wait_type("exec_result");
    REQUIRE(result);
    user.close();
    REQUIRE(user.wait_closed());
  }
  // The hub reports the close when lws does: wait for it before the next event.
  REQUIRE(rx::test::wait_until(
      [&] { return sys.server().log().find("\"type\":\"terminal_closed\"") != std::string::npos; },
      5s));

  // A small upload.
  auto put =
      call("PUT", "/api/agents/" + agent.id + "/files?path=" + sys.dir() + "/audit-upload.txt",
           token, "twelve bytes");
  REQUIRE(put.status == 200);

  // The MFA lock: lock, verify, unlock.
  auto enrol = rx::test::run_program(
      {rx::test::server_binary(), "user", "mfa-enroll", "alice", "--db", sys.db_path()},
      sys.dir() + "/mfa-cli.log");
  REQUIRE(enrol.exit_code == 0);
  const std::string secret = enrol.out.substr(enrol.out.find("secret: ") + 8, 32);
  const std::string mfa = "/api/security/terminal/agent:" + agent.id;
  const std::time_t now = std::time(nullptr);
  REQUIRE(call("POST", mfa + "/mfa-lock", token).status == 200);
  REQUIRE(call("POST", mfa + "/mfa-verify", token,
               json{{"code", *rx::server::totp_code(secret, now)}}.dump())
              .status == 200);
  REQUIRE(call("POST", mfa + "/mfa-unlock", token,
               json{{"code", *rx::server::totp_code(secret, now + 30)}}.dump())
              .status == 200);

  // A token made and revoked.
  auto made = call("POST", "/api/tokens", token, R"({"name":"audited"})");
  REQUIRE(made.status == 201);
  const std::string new_token = made.body["token"];
  const std::string new_id = made.body["id"];
  REQUIRE(call("DELETE", "/api/tokens/" + new_id, token).status == 200);

  // A plan limit: free=1, and alice has her agent.
  auto refused = call("POST", "/api/agents", token, R"({"name":"second"})");
  REQUIRE(refused.status == 403);

  // The agent stops.
  agent.process->signal(SIGTERM);
  REQUIRE(agent.process->wait(10s));

  const std::vector<std::string> expected = {
      "token_created",     // `user add` (the CLI)
      "agent_registered",  // `rexec-agent register`
      "agent_connected",  "terminal_opened", "exec_run",      "terminal_closed",
      "file_transferred", "mfa_locked",      "mfa_verified",  "mfa_unlocked",
      "token_created",    "token_revoked",   "limit_refused", "agent_disconnected",
  };
  // PostgreSQL writes audit events behind: wait until they are all there.
  json events;
  const bool all = rx::test::wait_until(
      [&] {
        auto r = call("GET", "/api/audit", token);
        if (r.status != 200) return false;
        events = r.body["events"];
        return events.size() >= expected.size();
      },
      10s);
  if (!all) sys.dump_logs();
  REQUIRE(all);
  std::reverse(events.begin(), events.end());  // oldest first
  CHECK(types_of(events) == expected);
  REQUIRE(events.size() == expected.size());

  std::map<std::string, json> by_type;
  for (const auto& e : events) {
    by_type[e["type"]] = e;  // the last of each type
    CHECK(e["owner_id"] == alice_id);
    CHECK(e["user_id"] == alice_id);
    CHECK(e["id"].is_number_integer());
    CHECK(e["at"].is_number_integer());
    CHECK(e["details"].is_object());
  }
  for (const char* t : {"agent_registered", "agent_connected", "terminal_opened", "exec_run",
                        "terminal_closed", "file_transferred", "mfa_locked", "mfa_verified",
                        "mfa_unlocked", "limit_refused", "agent_disconnected"}) {
    INFO(t);
    CHECK(by_type[t]["agent_id"] ==
          (std::string(t) == "limit_refused" ? json(nullptr) : json(agent.id)));
  }
  for (const char* t : {"terminal_opened", "exec_run", "terminal_closed"}) {
    INFO(t);
    CHECK(by_type[t]["session_id"] == "main");
  }
  CHECK(by_type["agent_registered"]["details"]["name"] == "audited");
  CHECK(by_type["terminal_opened"]["details"]["conn_id"] == "aud1");
  CHECK(by_type["terminal_closed"]["details"]["bytes_in"].get<std::uint64_t>() > 0);
  CHECK(by_type["terminal_closed"]["details"]["bytes_out"].get<std::uint64_t>() > 0);
  CHECK(by_type["exec_run"]["details"]["exit_code"] == 3);
  CHECK(by_type["exec_run"]["details"]["command_bytes"] == 20);
  CHECK(by_type["file_transferred"]["details"]["direction"] == "upload");
  CHECK(by_type["file_transferred"]["details"]["bytes"] == 12);
  CHECK(by_type["file_transferred"]["details"]["status"] == 200);
  CHECK(by_type["token_revoked"]["details"]["token_id"] == new_id);
  CHECK(by_type["limit_refused"]["details"]["code"] == "agent_limit_reached");
  CHECK(by_type["agent_disconnected"]["details"]["reason"] == "closed");
  CHECK(events[0]["details"]["via"] == "cli");

  // Filters and paging.
  auto closed = call("GET", "/api/audit?type=terminal_closed", token);
  REQUIRE(closed.status == 200);
  CHECK(types_of(closed.body["events"]) == std::vector<std::string>{"terminal_closed"});
  auto page = call("GET", "/api/audit?limit=2", token);
  REQUIRE(page.body["events"].size() == 2);
  const auto before = page.body["next_before"];
  REQUIRE(before.is_number_integer());
  auto next = call("GET", "/api/audit?limit=2&before=" + std::to_string(before.get<long>()), token);
  CHECK(types_of(next.body["events"]) ==
        std::vector<std::string>{"token_revoked", "token_created"});
  CHECK(call("GET", "/api/audit?limit=1001", token).status == 400);
  CHECK(call("GET", "/api/audit?before=x", token).status == 400);
  CHECK(call("GET", "/api/audit", agent_token).status == 403);
  CHECK(call("POST", "/api/audit", token).status == 405);

  // Another user sees none of them; an admin sees them all.
  auto bobs = call("GET", "/api/audit", other);
  REQUIRE(bobs.status == 200);
  CHECK(types_of(bobs.body["events"]) == std::vector<std::string>{"token_created"});
  CHECK(bobs.body["events"][0]["owner_id"] == bob_id);
  CHECK(bobs.body["next_before"].is_null());
  auto admins = call("GET", "/api/audit?agent_id=" + agent.id, admin);
  REQUIRE(admins.status == 200);
  std::vector<std::string> agent_types;
  for (const auto& e : events) {
    if (e["agent_id"] == agent.id) agent_types.push_back(e["type"]);
  }
  std::vector<std::string> admin_types = types_of(admins.body["events"]);
  std::reverse(admin_types.begin(), admin_types.end());
  CHECK(admin_types == agent_types);
  CHECK(call("GET", "/api/audit", admin).body["events"].size() == expected.size() + 2);

  // The log has the same events as JSON lines (the CLI's went to the CLI's stderr), and no
  // token anywhere, neither in the log nor in the answers.
  const std::string log = sys.server().log();
  std::vector<json> logged;
  for (auto& j : audit_lines(log)) {
    if (j["owner_id"] == alice_id) logged.push_back(std::move(j));
  }
  REQUIRE(logged.size() == expected.size() - 1);
  for (std::size_t i = 0; i < logged.size(); ++i) {
    INFO(i);
    json stored = events[i + 1];
    stored.erase("id");
    CHECK(logged[i] == stored);
  }
  for (const std::string& secret_text : {token, other, admin, new_token, agent_token}) {
    CHECK(log.find(secret_text.substr(6)) == std::string::npos);
    for (const auto& r : {page, next, closed, admins}) {
      CHECK(r.raw.find(secret_text.substr(6)) == std::string::npos);
    }
  }
  CHECK(log.find(secret) == std::string::npos);
  CHECK(log.find("twelve bytes") == std::string::npos);
  CHECK(log.find("echo exec-ok") == std::string::npos);
}
