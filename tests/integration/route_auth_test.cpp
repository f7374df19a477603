// SPDX-License-Identifier: MIT
// Every route and socket against every kind of caller (Security): no token, a malformed or
// unknown token, an expired JWT, an alg:none JWT, an HS256 JWT signed with the wrong key, the
// agent's own token, a registration token, another user's token, an admin's token, and the
// owner's (API token and web session). One table of the
// status and body each must get; sockets are asked with a plain GET of their URL, which the
// server answers with the same checks as the upgrade (426 when the upgrade would be accepted).
// DELETE of an agent gets a freshly registered agent for each caller: the agent token may delete
// its own agent (as the deployed agent's `unregister` does) and no other.
#include <catch2/catch.hpp>

#include <ctime>
#include <map>
#include <optional>

#include "fixture.h"
#include "jwt_sign.h"

using nlohmann::json;
using rx::test::System;
using namespace std::chrono_literals;

namespace {

enum class Kind { kRest, kSocket };

struct Route {
  std::string method;
  std::string path;  // AGENT is replaced by the agent id
  std::string body;
  Kind kind = Kind::kRest;
  bool per_agent = true;  // ownership applies (404 or 403 for strangers)
  // DELETE /api/agents/AGENT: AGENT is a fresh agent of the owner's, and the "agent token"
  // caller holds that agent's own token (`own`) or the first agent's (another agent's).
  enum class Deletes { kNo, kOwn, kOther } deletes = Deletes::kNo;
};

struct Expect {
  int status = 0;
  json body;  // null: not checked (a success body is checked by the route's own tests)
};

json err(const std::string& text) { return {{"error", text}}; }

}  // namespace

TEST_CASE("route table: every route against every kind of caller", "[integration][security]") {
  System sys;
  auto& loop = sys.loop();
  const std::string owner = sys.add_user("owen");
  const std::string other = sys.add_user("olive");
  const std::string admin = sys.add_user("ada", "enterprise", true);
  auto agent = sys.start_agent(owner);
  REQUIRE(sys.wait_online(owner, agent.id));
  const std::string agent_token =
      json::parse(rx::test::read_file(agent.config_path)).at("token").get<std::string>();
  const std::string owner_id =
      rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), owner)
          .body.value("user_id", "");
  const std::string registration =
      rx::test::http(loop, "POST", sys.http_url("/api/tokens"), owner,
                     R"({"name":"reg","scopes":["register"],"expires_in_minutes":10})")
          .body.value("token", "");
  REQUIRE_FALSE(registration.empty());
  const auto now = static_cast<long long>(std::time(nullptr));
  const json claims = {{"user_id", owner_id}, {"username", "owen"}, {"exp", now + 600}};
  json expired_claims = claims;
  expired_claims["exp"] = now - 60;

  const std::map<std::string, std::string> callers = {
      {"no token", ""},
      {"malformed token", "not-a-token"},
      {"unknown token", "rexec_" + std::string(64, '0')},
      {"expired JWT", rx::test::make_jwt(expired_claims, sys.jwt_secret())},
      {"alg none JWT", rx::test::make_jwt(claims, sys.jwt_secret(), "none")},
      {"wrong key JWT", rx::test::make_jwt(claims, "another-key-another-key-another-key")},
      {"agent token", agent_token},
      {"registration token", registration},
      {"other user", other},
      {"admin", admin},
      {"owner", owner},
      {"owner JWT", rx::test::make_jwt(claims, sys.jwt_secret())},
  };

  const std::vector<Route> routes = {
      {"GET", "/api/agents", "", Kind::kRest, false},
      {"GET", "/api/agents/AGENT", "", Kind::kRest, true},
      {"GET", "/api/agents/AGENT/status", "", Kind::kRest, true},
      {"PATCH", "/api/agents/AGENT", R"({"description":"d"})", Kind::kRest, true},
      {"GET", "/api/tokens", "", Kind::kRest, false},
      {"GET", "/api/tokens/validate", "", Kind::kRest, false},
      {"POST", "/api/auth/token", "", Kind::kRest, false},
      {"GET", "/api/security/terminal/agent:AGENT/mfa-status", "", Kind::kRest, true},
      {"POST", "/api/security/terminal/agent:AGENT/mfa-lock", "", Kind::kRest, true},
      {"POST", "/api/security/terminal/agent:AGENT/mfa-verify", R"({"code":"000000"})", Kind::kRest,
       true},
      {"GET", "/ws/agent/AGENT/terminal?id=rt", "", Kind::kSocket, true},
      {"GET", "/ws/agent/AGENT", "", Kind::kSocket, true},
      {"GET", "/api/agents/AGENT/ws", "", Kind::kSocket, true},
      {"GET", "/api/events", "", Kind::kSocket, false},
      {"GET", "/api/agents/AGENT/stats", "", Kind::kRest, true},
      {"GET", "/api/agents/AGENT/sessions", "", Kind::kRest, true},
      {"DELETE", "/api/agents/AGENT/sessions/split-none", "", Kind::kRest, true},
      {"GET", "/api/audit?user_id=x&since=1", "", Kind::kRest, false},
      {"GET", "/ws/agent/AGENT/terminal?id=rt2&session=main", "", Kind::kSocket, true},
      {"GET", "/api/profile", "", Kind::kRest, false},
      {"GET", "/api/containers", "", Kind::kRest, false},
      {"POST", "/api/agents/AGENT/exec", R"({"command":"true"})", Kind::kRest, true},
      {"DELETE", "/api/agents/AGENT", "", Kind::kRest, true, Route::Deletes::kOwn},
      {"DELETE", "/api/agents/AGENT", "", Kind::kRest, true, Route::Deletes::kOther},
  };

  const auto expect = [&](const Route& r, const std::string& who) -> Expect {
    const bool unauthenticated = who == "no token" || who == "malformed token" ||
                                 who == "unknown token" || who == "expired JWT" ||
                                 who == "alg none JWT" || who == "wrong key JWT";
    const bool agent_socket = r.kind == Kind::kSocket &&
                              r.path.find("terminal") == std::string::npos &&
                              r.path != "/api/events";
    if (unauthenticated) {
      return r.kind == Kind::kRest ? Expect{401, err("unauthorized")}
                                   : Expect{401, err("invalid token")};
    }
    const bool owner_like = who == "owner" || who == "owner JWT";
    if (r.path == "/api/auth/token" && who == "owner JWT") {
      return {403, err("sign in with an API token")};  // a JWT cannot renew itself
    }
    if (who == "registration token") {  // it registers one agent (not in this table), no more
      if (r.path == "/api/tokens/validate") return {200, {}};
      if (r.kind == Kind::kRest) return {403, err("token scope does not allow this")};
      return {403, err("not authorized")};
    }
    if (who == "agent token") {
      if (r.path == "/api/tokens/validate") return {200, {}};
      if (r.deletes == Route::Deletes::kOwn) return {200, {{"message", "agent deleted"}}};
      if (agent_socket) return {426, err("websocket upgrade required")};  // its own socket
      if (r.kind == Kind::kRest) return {403, err("token scope does not allow this")};
      return {403, err("not authorized")};
    }
    if (!owner_like && r.per_agent) {  // a stranger, admins included: ownership is not waived
      if (r.kind == Kind::kSocket) return {403, err("not authorized")};
      return {404, err("agent not found")};
    }
    // The owner (or routes of one's own): what the route itself answers.
    if (r.path.find("mfa-lock") != std::string::npos) return {400, err("mfa_required")};
    if (r.path.find("mfa-verify") != std::string::npos) return {400, err("mfa_required")};
    if (r.path.find("sessions/split-none") != std::string::npos) {
      return {404, err("session not found")};
    }
    // No viewer has opened main yet: there is nothing to attach to.
    if (r.path.find("session=main") != std::string::npos) return {404, err("session not found")};
    if (r.kind == Kind::kSocket) return {426, err("websocket upgrade required")};
    if (r.deletes != Route::Deletes::kNo) return {200, {{"message", "agent deleted"}}};
    return {200, {}};
  };

  // The agent a DELETE row deletes: registered by the owner, again after each deletion.
  struct Fresh {
    std::string id;
    std::string token;
  };

  std::optional<Fresh> fresh;
  const auto fresh_agent = [&]() -> const Fresh& {
    if (!fresh) {
      auto reg =
          rx::test::http(loop, "POST", sys.http_url("/api/agents"), owner, R"({"name":"doomed"})");
      REQUIRE(reg.status == 201);
      fresh = Fresh{reg.body.value("id", ""), reg.body.value("token", "")};
    }
    return *fresh;
  };

  int checked = 0;
  for (const auto& route : routes) {
    for (const auto& [who, caller_token] : callers) {
      INFO(route.method << " " << route.path << " as " << who);
      std::string token = caller_token;
      std::string target = agent.id;
      if (route.deletes != Route::Deletes::kNo) {
        target = fresh_agent().id;
        if (who == "agent token" && route.deletes == Route::Deletes::kOwn) {
          token = fresh_agent().token;
        }
      }
      std::string path = route.path;
      if (const auto at = path.find("AGENT"); at != std::string::npos) path.replace(at, 5, target);
      const auto want = expect(route, who);
      const auto got = rx::test::http(loop, route.method, sys.http_url(path), token, route.body);
      if (route.deletes != Route::Deletes::kNo && got.status == 200) fresh.reset();
      CHECK(got.status == want.status);
      if (!want.body.is_null()) {
        CHECK(got.body == want.body);
      }
      ++checked;
    }
  }
  CHECK(checked == static_cast<int>(routes.size() * callers.size()));
}
