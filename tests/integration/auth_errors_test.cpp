// SPDX-License-Identifier: MIT
// Every documented error string and status of PROTOCOL §1–§2, one test each, against the real
// server (and, where a socket is involved, a real agent).
#include <catch2/catch.hpp>

#include <ctime>

#include "fixture.h"
#include "jwt_sign.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

nlohmann::json error_body(const std::string& text) { return {{"error", text}}; }

// The HTTP status and JSON body of a refused WebSocket upgrade. lws's client does not expose a
// refused handshake's body, so the body is read with a plain GET of the same URL, which the
// server answers with the same checks (tests assert both agree on the status).
struct Refusal {
  int ws_status = 0;
  int http_status = 0;
  nlohmann::json body;
};

Refusal refuse(System& sys, const std::string& path, const std::string& token,
               const std::string& origin = "") {
  Refusal r;
  TestSocket s(sys.loop());
  std::vector<std::pair<std::string, std::string>> headers;
  const bool opened = s.open(sys.ws_url(path), token, "rexec.v1", origin);
  if (opened) {
    s.close();
    return r;
  }
  r.ws_status = s.close_info().http_status;
  if (!origin.empty()) headers.emplace_back("origin", origin);
  auto h = rx::test::http(sys.loop(), "GET", sys.http_url(path), token, "", headers);
  r.http_status = h.status;
  r.body = h.body;
  return r;
}

struct Online {
  System sys;
  std::string alice;
  System::Agent agent;

  explicit Online(rx::test::ServerOptions o = {})
      : sys(std::move(o)), alice(sys.add_user("alice")), agent(sys.start_agent(alice)) {
    REQUIRE(sys.wait_online(alice, agent.id));
  }

  std::string term(const std::string& id = "t1") const {
    return "/ws/agent/" + agent.id + "/terminal?id=" + id;
  }
};

}  // namespace

TEST_CASE("no token: 401 unauthorized on REST, invalid token on sockets", "[integration][pg]") {
  Online o;
  auto r = rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/agents"));
  CHECK(r.status == 401);
  CHECK(r.body == error_body("unauthorized"));
  auto w = refuse(o.sys, o.term(), "");
  CHECK(w.ws_status == 401);
  CHECK(w.http_status == 401);
  CHECK(w.body == error_body("invalid token"));
}

TEST_CASE("bad token is refused", "[integration][pg]") {
  Online o;
  const std::string bad = "rexec_" + std::string(64, 'a');
  auto r = rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/agents"), bad);
  CHECK(r.status == 401);
  auto w = refuse(o.sys, o.term(), bad);
  CHECK(w.ws_status == 401);
  CHECK(w.body == error_body("invalid token"));
}

TEST_CASE("JWT: valid works, expired and alg none and HS512 and wrong key are refused",
          "[integration]") {
  Online o;
  auto me = rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/tokens/validate"), o.alice);
  REQUIRE(me.status == 200);
  const std::string user_id = me.body.value("user_id", "");
  REQUIRE_FALSE(user_id.empty());
  const auto now = static_cast<long long>(std::time(nullptr));
  const auto claims = [&](long long exp) {
    return nlohmann::json{{"user_id", user_id}, {"username", "alice"}, {"exp", exp}};
  };
  const std::string& secret = o.sys.jwt_secret();
  auto get = [&](const std::string& jwt) {
    return rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/agents"), jwt).status;
  };
  CHECK(get(rx::test::make_jwt(claims(now + 600), secret)) == 200);
  CHECK(get(rx::test::make_jwt(claims(now - 10), secret)) == 401);
  CHECK(get(rx::test::make_jwt(claims(now + 600), secret, "none")) == 401);
  CHECK(get(rx::test::make_jwt(claims(now + 600), secret, "HS512")) == 401);
  CHECK(get(rx::test::make_jwt(claims(now + 600), "another-secret-another-secret-xx")) == 401);
  CHECK(get(rx::test::make_jwt({{"user_id", user_id}}, secret)) == 401);  // no exp
  // The terminal socket applies the same rules.
  auto w = refuse(o.sys, o.term(), rx::test::make_jwt(claims(now - 10), secret));
  CHECK(w.ws_status == 401);
  CHECK(w.body == error_body("invalid token"));
}

TEST_CASE("an agent-scoped token cannot be used for user routes", "[integration]") {
  Online o;
  const std::string agent_token =
      nlohmann::json::parse(rx::test::read_file(o.agent.config_path)).value("token", "");
  REQUIRE(agent_token.rfind("rexec_", 0) == 0);
  auto list = rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/agents"), agent_token);
  CHECK(list.status == 403);
  auto reg = rx::test::http(o.sys.loop(), "POST", o.sys.http_url("/api/agents"), agent_token,
                            R"({"name":"x"})");
  CHECK(reg.status == 403);
  auto validate =
      rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/tokens/validate"), agent_token);
  CHECK(validate.status == 200);
  auto w = refuse(o.sys, o.term(), agent_token);
  CHECK(w.ws_status == 403);
}

TEST_CASE("another user's agent: 404 on REST, 403 not authorized on the socket",
          "[integration][pg]") {
  Online o;
  const std::string bob = o.sys.add_user("bob");
  auto r = rx::test::http(o.sys.loop(), "GET", o.sys.http_url("/api/agents/" + o.agent.id), bob);
  CHECK(r.status == 404);
  CHECK(r.body == error_body("agent not found"));
  auto w = refuse(o.sys, o.term(), bob);
  CHECK(w.ws_status == 403);
  CHECK(w.body == error_body("not authorized"));
}

TEST_CASE("unknown agent and agent not online", "[integration]") {
  System sys;
  const std::string alice = sys.add_user("alice");
  auto w = refuse(sys, "/ws/agent/00000000-0000-4000-8000-000000000000/terminal?id=x", alice);
  CHECK(w.ws_status == 404);
  CHECK(w.body == error_body("agent not found"));
  auto reg = rx::test::http(sys.loop(), "POST", sys.http_url("/api/agents/register"), alice,
                            R"({"name":"never-runs"})");
  REQUIRE(reg.status == 201);
  auto off = refuse(sys, "/ws/agent/" + reg.body.value("id", "") + "/terminal?id=x", alice);
  CHECK(off.ws_status == 404);
  CHECK(off.body == error_body("agent not online"));
}

TEST_CASE("registration: name required, plan limit, guest plan, admin exemption",
          "[integration][pg]") {
  rx::test::ServerOptions opts;
  opts.extra_args = {"--plan-limit", "free=2"};
  System sys(opts);
  const std::string alice = sys.add_user("alice");
  auto reg = [&](const std::string& token, const std::string& body) {
    return rx::test::http(sys.loop(), "POST", sys.http_url("/api/agents"), token, body);
  };
  auto noname = reg(alice, R"({"description":"x"})");
  CHECK(noname.status == 400);
  CHECK(noname.body == error_body("name is required"));
  CHECK(reg(alice, R"({"name":"a1"})").status == 201);
  CHECK(reg(alice, R"({"name":"a2"})").status == 201);
  auto over = reg(alice, R"({"name":"a3"})");
  CHECK(over.status == 403);
  CHECK(over.body == nlohmann::json{{"error", "agent limit reached for your plan"},
                                    {"code", "agent_limit_reached"},
                                    {"limit", 2}});

  const std::string guest = sys.add_user("gus", "guest");
  auto g = reg(guest, R"({"name":"g1"})");
  CHECK(g.status == 403);
  CHECK(g.body == nlohmann::json{{"error", "agent registration not available for your plan"},
                                 {"code", "agent_limit_reached"}});

  const std::string admin = sys.add_user("root", "free", true);
  for (int i = 0; i < 3; ++i) CHECK(reg(admin, R"({"name":"adm"})").status == 201);
}

TEST_CASE("terminal limit: distinct agents with open terminals", "[integration]") {
  rx::test::ServerOptions opts;
  opts.extra_args = {"--plan-limit", "free=3"};
  System sys(opts);
  const std::string alice = sys.add_user("alice");
  std::vector<System::Agent> agents;
  for (int i = 0; i < 3; ++i) agents.push_back(sys.start_agent(alice, "box-" + std::to_string(i)));
  auto all_online = [&] {
    auto r = rx::test::http(sys.loop(), "GET", sys.http_url("/api/agents"), alice);
    if (r.status != 200 || !r.body.is_array() || r.body.size() != 3) return false;
    for (const auto& a : r.body) {
      if (a.value("status", "") != "online") return false;
    }
    return true;
  };
  REQUIRE(sys.loop().run_until(all_online, 20s));
  // The plan shrinks to 2 while alice owns 3 agents: the third terminal is over the limit. The
  // agents come back with their jittered backoff (capped at 60 s), each in its own time.
  sys.restart_server({"--plan-limit", "free=2"});
  REQUIRE(sys.loop().run_until(all_online, 60s));
  TestSocket t1(sys.loop());
  TestSocket t2(sys.loop());
  REQUIRE(t1.open(sys.ws_url("/ws/agent/" + agents[0].id + "/terminal?id=a"), alice));
  REQUIRE(t2.open(sys.ws_url("/ws/agent/" + agents[1].id + "/terminal?id=b"), alice));
  // A second terminal on an agent that already has one does not count twice.
  TestSocket t1b(sys.loop());
  REQUIRE(
      t1b.open(sys.ws_url("/ws/agent/" + agents[0].id + "/terminal?id=c&newSession=true"), alice));
  auto w = refuse(sys, "/ws/agent/" + agents[2].id + "/terminal?id=d", alice);
  CHECK(w.ws_status == 403);
  CHECK(w.body == nlohmann::json{{"error", "agent terminal limit reached for your plan"},
                                 {"code", "agent_terminal_limit_reached"},
                                 {"limit", 2}});

  sys.restart_server({"--plan-limit", "free=0"});
  REQUIRE(sys.loop().run_until(all_online, 20s));
  auto none = refuse(sys, "/ws/agent/" + agents[0].id + "/terminal?id=e", alice);
  CHECK(none.ws_status == 403);
  CHECK(none.body == nlohmann::json{{"error", "agent terminals not available for your plan"},
                                    {"code", "agent_terminal_limit_reached"}});
}

TEST_CASE("bad origin is refused before any side effect", "[integration]") {
  Online o;
  auto w = refuse(o.sys, o.term("o1"), o.alice, "http://evil.example");
  CHECK(w.ws_status == 403);
  CHECK(w.body == error_body("origin not allowed"));
  auto lookalike = refuse(o.sys, o.term("o2"), o.alice, "http://localhost.evil.example");
  CHECK(lookalike.ws_status == 403);
  // The server's own origin and localhost are allowed with no list configured.
  TestSocket ok(o.sys.loop());
  CHECK(ok.open(o.sys.ws_url(o.term("o3")), o.alice, "rexec.v1", o.sys.http_url()));
}
