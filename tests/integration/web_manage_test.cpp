// SPDX-License-Identifier: MIT
// The server side of the web page's management views (docs/web.md, docs/protocol.md):
// registration tokens (scope "register", short-lived, one use, announced when used), the rule
// that a web session mints lasting tokens only soon after its sign-in, an agent's sessions (listed
// with their viewers, attached to with &session=, ended, and announced at once on the events
// socket), the stats history for the charts, the audit filters by user and time, and tags.
#include <catch2/catch.hpp>

#include <ctime>

#include "fixture.h"
#include "jwt_sign.h"

using nlohmann::json;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

json err(const std::string& text) { return {{"error", text}}; }

// Waits for an agent_sessions message of `agent_id` whose session list satisfies `pred`, among
// the messages after `*cursor`, and moves the cursor past it.
bool wait_sessions(rx::test::Loop& loop, TestSocket& events, std::size_t* cursor,
                   const std::string& agent_id, const std::function<bool(const json&)>& pred) {
  bool found = false;  // run_until asks once more after the last time: answer the same
  return loop.run_until(
      [&] {
        if (found) return true;
        for (; *cursor < events.frames().size(); ++*cursor) {
          const json m = events.frames()[*cursor].json();
          if (m.is_object() && m.value("type", "") == "agent_sessions" &&
              m["data"].value("agent_id", "") == agent_id && pred(m["data"]["sessions"])) {
            ++*cursor;
            found = true;
            return true;
          }
        }
        return false;
      },
      10s);
}

}  // namespace

TEST_CASE("web: a registration token registers one agent, once, and does nothing else",
          "[integration][web]") {
  System sys;
  auto& loop = sys.loop();
  const std::string token = sys.add_user("rita");
  const auto make = [&](const json& body) {
    return rx::test::http(loop, "POST", sys.http_url("/api/tokens"), token, body.dump());
  };

  // Refusals of the request itself.
  CHECK(make({{"name", "r"}, {"scopes", {"register"}}, {"expires_in_minutes", 0}}).body ==
        err("expires_in_minutes must be a whole number from 1 to 1440"));
  CHECK(make({{"name", "r"}, {"scopes", {"register"}}, {"expires_in_minutes", 1441}}).status ==
        400);
  CHECK(make({{"name", "r"}, {"expires_in", 1}, {"expires_in_minutes", 5}}).body ==
        err("give expires_in or expires_in_minutes, not both"));
  CHECK(make({{"name", "r"}, {"scopes", {"register", "read"}}}).body ==
        err("the register scope cannot be combined with others"));
  CHECK(make({{"name", "r"}, {"scopes", {"register"}}, {"expires_in", 2}}).body ==
        err("a registration token expires within 24 hours (expires_in_minutes)"));

  const auto made = make({{"name", "register a machine"}, {"scopes", {"register"}}});
  REQUIRE(made.status == 201);
  const std::string reg = made.body.value("token", "");
  const std::string reg_id = made.body.value("id", "");
  CHECK(made.body["scopes"] == json{"register"});
  // An hour unless asked otherwise (RFC 3339 times compare as text).
  CHECK(made.body.value("expires_at", "") > made.body.value("created_at", ""));

  // It registers, and nothing else: no listing, no tokens, no terminals, no events.
  const json scope = err("token scope does not allow this");
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents"), reg).body == scope);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/tokens"), reg).body == scope);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/audit"), reg).body == scope);
  CHECK(rx::test::http(loop, "POST", sys.http_url("/api/tokens"), reg, R"({"name":"x"})").body ==
        scope);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/events"), reg).body ==
        err("not authorized"));
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), reg).status == 200);

  // The owner's page hears of the registration, with the token that made it.
  TestSocket events(loop);
  REQUIRE(events.open(sys.ws_url("/api/events"), token));
  auto agent = sys.start_agent(reg, "from-the-page");
  REQUIRE(sys.wait_online(token, agent.id));
  const auto registered = events.wait_type("agent_registered");
  REQUIRE(registered);
  CHECK((*registered)["data"] ==
        json{{"agent_id", agent.id}, {"name", "from-the-page"}, {"registration_token_id", reg_id}});
  // The agent's own token is another one, which the used registration token does not revoke.
  CHECK(events.wait_json([&](const json& m) {
    return m.value("type", "") == "agent_connected" && m["data"].value("agent_id", "") == agent.id;
  }));

  // Once used it is revoked: the same one-liner registers nothing more.
  const auto again = rx::test::http(loop, "POST", sys.http_url("/api/agents/register"), reg,
                                    R"({"name":"second"})");
  CHECK(again.status == 401);
  const auto list = rx::test::http(loop, "GET", sys.http_url("/api/tokens"), token);
  bool revoked = false;
  for (const auto& t : list.body) {
    if (t.value("id", "") == reg_id) revoked = t["revoked_at"].is_string();
  }
  CHECK(revoked);
  const auto agents = rx::test::http(loop, "GET", sys.http_url("/api/agents"), token);
  CHECK(agents.body.size() == 1);
}

TEST_CASE("web: a web session creates lasting tokens only soon after its sign-in",
          "[integration][web][security]") {
  System sys;
  auto& loop = sys.loop();
  const std::string token = sys.add_user("sam");
  const auto ex = rx::test::http(loop, "POST", sys.http_url("/api/auth/token"), token);
  REQUIRE(ex.status == 200);
  // When renewals end (--web-session-max, 12 h by default): the page warns before then.
  const std::string ends = ex.body.value("session_ends_at", "");
  CHECK(ends.size() == 20);
  CHECK(ends > ex.body.value("expires_at", ""));
  const std::string user_id = ex.body["user"].value("id", "");
  const std::string fresh = ex.body.value("token", "");
  const auto now = static_cast<long long>(std::time(nullptr));
  const auto stale = rx::test::make_jwt(
      {{"user_id", user_id}, {"exp", now + 600}, {"iat", now}, {"auth_time", now - 16 * 60}},
      sys.jwt_secret());
  const auto outside =
      rx::test::make_jwt({{"user_id", user_id}, {"exp", now + 600}}, sys.jwt_secret());
  const auto create = [&](const std::string& who, const json& body) {
    return rx::test::http(loop, "POST", sys.http_url("/api/tokens"), who, body.dump());
  };
  const json lasting = {{"name", "cli"}, {"expires_in", 30}};
  CHECK(create(fresh, lasting).status == 201);
  const auto refused = create(stale, lasting);
  CHECK(refused.status == 403);
  CHECK(refused.body.value("code", "") == "fresh_sign_in_required");
  // A registration token is short-lived and works once: a session may make one at any time.
  CHECK(create(stale, {{"name", "reg"}, {"scopes", {"register"}}}).status == 201);
  // A JWT that is no web session (the deployed service's, PROTOCOL §2) keeps v1's rule.
  CHECK(create(outside, lasting).status == 201);
  // Listing and revoking stay open to a session of any age.
  const auto list = rx::test::http(loop, "GET", sys.http_url("/api/tokens"), stale);
  REQUIRE(list.status == 200);
  const std::string some = list.body[0].value("id", "");
  CHECK(rx::test::http(loop, "DELETE", sys.http_url("/api/tokens/" + some), stale).status == 200);
}

TEST_CASE("web: sessions are listed with their viewers, attached to, ended, and announced",
          "[integration][web]") {
  System sys;
  auto& loop = sys.loop();
  const std::string token = sys.add_user("sue");
  const std::string other = sys.add_user("otto");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id));
  const std::string base = "/api/agents/" + agent.id;
  TestSocket events(loop);
  REQUIRE(events.open(sys.ws_url("/api/events"), token));
  std::size_t cursor = 0;
  // On connect the events socket says what runs now: nothing.
  CHECK(wait_sessions(loop, events, &cursor, agent.id, [](const json& s) { return s.empty(); }));

  const std::string term = "/ws/agent/" + agent.id + "/terminal?id=";
  TestSocket main(loop);
  REQUIRE(main.open(sys.ws_url(term + "m1"), token, "rexec.v2"));
  REQUIRE(main.wait_type("shell_started"));
  TestSocket split(loop);
  REQUIRE(split.open(sys.ws_url(term + "s1&newSession=true"), token, "rexec.v2"));
  REQUIRE(split.wait_type("shell_started"));
  // The count is right at once, without waiting for the agent's next stats.
  CHECK(wait_sessions(loop, events, &cursor, agent.id, [](const json& s) {
    return s.size() == 2 && s[0]["shell"] == true && s[1]["shell"] == true;
  }));
  auto listed = rx::test::http(loop, "GET", sys.http_url(base + "/sessions"), token);
  REQUIRE(listed.status == 200);
  REQUIRE(listed.body["sessions"].size() == 2);
  CHECK(listed.body["sessions"][0].value("id", "") == "main");
  CHECK(listed.body["sessions"][1].value("id", "") == "split-s1");
  CHECK(listed.body["sessions"][1]["viewers"].size() == 1);
  CHECK(listed.body["sessions"][1]["viewers"][0].value("conn_id", "") == "s1");
  CHECK(listed.body["sessions"][1].value("started_at", "").size() == 20);

  // A second viewer attaches to the split, sees what it shows, and types into it.
  CHECK(rx::test::http(loop, "GET", sys.http_url(term + "a1&session=split-none&check=1"), token)
            .body == err("session not found"));
  CHECK(rx::test::http(loop, "GET", sys.http_url(term + "a1&session=bad%21&check=1"), token).body ==
        err("invalid session id"));
  TestSocket attached(loop);
  REQUIRE(attached.open(sys.ws_url(term + "a1&session=split-s1"), token, "rexec.v2"));
  attached.send_binary("echo attached-$((40+2))\n");
  CHECK(split.wait_output("attached-42"));
  CHECK(attached.wait_output("attached-42"));
  CHECK(wait_sessions(loop, events, &cursor, agent.id,
                      [](const json& s) { return s.size() == 2 && s[1]["viewers"].size() == 2; }));

  // Someone else's agent has no sessions to end.
  CHECK(rx::test::http(loop, "DELETE", sys.http_url(base + "/sessions/split-s1"), other).body ==
        err("agent not found"));
  // Ending it: both viewers are told and closed with 4002; the list and the count follow at once.
  const auto ended =
      rx::test::http(loop, "DELETE", sys.http_url(base + "/sessions/split-s1"), token);
  CHECK(ended.status == 200);
  CHECK(split.wait_type("session_ended"));
  CHECK(attached.wait_type("session_ended"));
  REQUIRE(split.wait_closed());
  REQUIRE(attached.wait_closed());
  CHECK(split.close_info().close_code == 4002);
  CHECK(attached.close_info().close_code == 4002);
  CHECK(
      wait_sessions(loop, events, &cursor, agent.id, [](const json& s) { return s.size() == 1; }));
  listed = rx::test::http(loop, "GET", sys.http_url(base + "/sessions"), token);
  CHECK(listed.body["sessions"].size() == 1);
  CHECK(rx::test::http(loop, "DELETE", sys.http_url(base + "/sessions/split-s1"), token).body ==
        err("session not found"));
  // The main session goes on.
  main.send_binary("echo still-$((1+1))\n");
  CHECK(main.wait_output("still-2"));

  // Closing the last viewer of main keeps it running for the linger: still listed, lingering.
  main.close();
  CHECK(wait_sessions(loop, events, &cursor, agent.id, [](const json& s) {
    return s.size() == 1 && s[0]["lingering"] == true && s[0]["viewers"].empty();
  }));
  const auto audit =
      rx::test::http(loop, "GET", sys.http_url("/api/audit?type=session_ended"), token);
  REQUIRE(audit.body["events"].size() == 1);
  CHECK(audit.body["events"][0]["details"] == json{{"viewers", 2}});
}

TEST_CASE("web: the stats history for the charts, tags, and audit filters by user and time",
          "[integration][web]") {
  rx::test::ServerOptions so;
  so.extra_args = {"--stats-sample-interval", "0s"};  // store every sample, not one per 30 s
  System sys(so);
  auto& loop = sys.loop();
  const std::string token = sys.add_user("cora");
  auto agent = sys.start_agent(token, "charts", {"REXEC_STATS_INTERVAL_MS=200"});
  REQUIRE(sys.wait_online(token, agent.id));
  const std::string base = "/api/agents/" + agent.id;
  rx::test::HttpResult stats;
  REQUIRE(loop.run_until(
      [&] {
        stats = rx::test::http(loop, "GET", sys.http_url(base + "/stats?minutes=15"), token);
        return stats.status == 200 && stats.body["samples"].size() >= 3;
      },
      10s));
  const json& samples = stats.body["samples"];
  CHECK(stats.body.value("minutes", 0) == 15);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    INFO(samples[i].dump());
    CHECK(samples[i]["cpu_percent"].is_number());
    CHECK(samples[i].value("memory_limit", 0.0) > 0);
    CHECK(samples[i].value("disk_limit", 0.0) > 0);
    if (i > 0) CHECK(samples[i].value("at", 0LL) >= samples[i - 1].value("at", 0LL));
  }
  CHECK(rx::test::http(loop, "GET", sys.http_url(base + "/stats?minutes=0"), token).body ==
        err("minutes must be a whole number from 1 to 1440"));
  CHECK(rx::test::http(loop, "POST", sys.http_url(base + "/stats"), token, "{}").status == 405);

  // Tags replace the old ones; a wrong shape is refused and changes nothing.
  const auto patched = rx::test::http(loop, "PATCH", sys.http_url(base), token,
                                      R"({"name":"db-1","tags":["prod","eu"]})");
  CHECK(patched.status == 200);
  CHECK(patched.body["tags"] == json{"prod", "eu"});
  CHECK(rx::test::http(loop, "PATCH", sys.http_url(base), token, R"({"tags":["",1]})").body ==
        err("tags must be at most 32 strings of 1 to 64 bytes"));
  const auto got = rx::test::http(loop, "GET", sys.http_url(base), token);
  CHECK(got.body["tags"] == json{"prod", "eu"});
  CHECK(got.body.value("name", "") == "db-1");

  // Audit: by who acted, and by time.
  const std::string me = rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), token)
                             .body.value("user_id", "");
  const auto mine = rx::test::http(loop, "GET", sys.http_url("/api/audit?user_id=" + me), token);
  REQUIRE(mine.status == 200);
  CHECK_FALSE(mine.body["events"].empty());
  for (const auto& e : mine.body["events"]) CHECK(e.value("user_id", "") == me);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/audit?user_id=nobody"), token)
            .body["events"]
            .empty());
  const long long first_at = mine.body["events"].back().value("at", 0LL);
  const long long last_at = mine.body["events"][0].value("at", 0LL);
  const auto later = rx::test::http(
      loop, "GET", sys.http_url("/api/audit?since=" + std::to_string(last_at + 1)), token);
  CHECK(later.body["events"].empty());
  const auto window = rx::test::http(loop, "GET",
                                     sys.http_url("/api/audit?since=" + std::to_string(first_at) +
                                                  "&until=" + std::to_string(last_at + 1)),
                                     token);
  CHECK(window.body["events"].size() == mine.body["events"].size());
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/audit?until=-1"), token).body ==
        err("until must be a time in Unix milliseconds"));
}
