// SPDX-License-Identifier: MIT
// Server auth pieces: token format, JWT rules, token extraction order, origins, rate limits,
// plan limits, and the authenticator's cache and revocation.
#include "rexec/server/auth/authenticator.h"
#include "rexec/server/auth/jwt.h"
#include "rexec/server/auth/request_auth.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/limits.h"
#include "rexec/server/storage/sqlite_store.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

using namespace rx::server;
using namespace std::chrono_literals;
using SysClock = std::chrono::system_clock;

TEST_CASE("API tokens: format, hashing, uuids", "[server]") {
  const std::string t = generate_api_token();
  CHECK(is_api_token(t));
  CHECK_FALSE(is_api_token("rexec_" + std::string(63, 'a')));
  CHECK_FALSE(is_api_token("rexec_" + std::string(64, 'A')));
  CHECK_FALSE(is_api_token("token_" + std::string(64, 'a')));
  CHECK(generate_api_token() != t);
  CHECK(hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(new_uuid_v4());
  CHECK(ids.size() == 10000);
  const std::string u = *ids.begin();
  REQUIRE(u.size() == 36);
  CHECK(u[14] == '4');
  CHECK((u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b'));
}

TEST_CASE("JWT: HS256 only, exp enforced, user_id required", "[server]") {
  const std::string key = "0123456789abcdef0123456789abcdef";
  const auto now = SysClock::now();
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  JwtClaims c;
  c.user_id = "u1";
  c.username = "alice";
  c.exp = secs + 60;
  const std::string good = sign_jwt(c, key);
  auto ok = verify_jwt(good, key, now);
  REQUIRE(ok);
  CHECK(ok->user_id == "u1");
  CHECK(ok->username == "alice");
  CHECK_FALSE(verify_jwt(good, "another key of thirty-two bytes!!", now));
  CHECK_FALSE(verify_jwt(good, key, now + 61s));  // expired
  std::string tampered = good;
  tampered[tampered.find('.') + 2] ^= 1;
  CHECK_FALSE(verify_jwt(tampered, key, now));
  // alg none: header {"alg":"none"}, no signature.
  const std::string none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." +
                           good.substr(good.find('.') + 1, good.rfind('.') - good.find('.') - 1) +
                           ".";
  CHECK_FALSE(verify_jwt(none, key, now));
  for (const char* junk : {"", "a.b", "a.b.c.d", "...", "x.y.z", "eyJ.eyJ.sig"}) {
    CHECK_FALSE(verify_jwt(junk, key, now));
  }
  JwtClaims no_user = c;
  no_user.user_id.clear();
  CHECK_FALSE(verify_jwt(sign_jwt(no_user, key), key, now));
}

TEST_CASE("token extraction order: bearer, subprotocol, query", "[server]") {
  auto all = extract_token("Bearer aaa", "rexec.token.bbb, rexec.v2", "ccc");
  REQUIRE(all);
  CHECK(all->token == "aaa");
  CHECK(all->source == "bearer");
  auto sub = extract_token("", "rexec.v2, rexec.token.bbb", "ccc");
  REQUIRE(sub);
  CHECK(sub->token == "bbb");
  CHECK(sub->source == "subprotocol");
  auto q = extract_token("Basic xyz", "rexec.v1", "ccc");
  REQUIRE(q);
  CHECK(q->token == "ccc");
  CHECK_FALSE(extract_token("", "", ""));
  CHECK_FALSE(extract_token("Bearer ", "rexec.token.", ""));
}

TEST_CASE("origin allow-list and defaults (CSWSH)", "[server]") {
  const std::vector<std::string> none;
  const std::string self = "https://rexec.example.com";
  CHECK(origin_allowed("", none, self, false));
  CHECK_FALSE(origin_allowed("", none, self, true));
  CHECK(origin_allowed(self, none, self, false));
  CHECK(origin_allowed("http://localhost", none, self, false));
  CHECK(origin_allowed("http://localhost:3000", none, self, false));
  CHECK(origin_allowed("http://127.0.0.1:8080", none, self, false));
  CHECK_FALSE(origin_allowed("http://localhost.evil.com", none, self, false));
  CHECK_FALSE(origin_allowed("http://127.0.0.1.evil.com:80", none, self, false));
  CHECK_FALSE(origin_allowed("http://localhost:80x", none, self, false));
  CHECK_FALSE(origin_allowed("https://evil.example", none, self, false));
  const std::vector<std::string> list = {"https://app.example"};
  CHECK(origin_allowed("https://app.example", list, self, false));
  CHECK_FALSE(origin_allowed("http://localhost:3000", list, self, false));
  CHECK_FALSE(origin_allowed("https://app.example.evil", list, self, false));
}

TEST_CASE("rate limiter refills and reports retry_after", "[server]") {
  auto now = std::chrono::steady_clock::now();
  RateLimiter rl(2, 4, [&] { return now; });
  for (int i = 0; i < 4; ++i) CHECK_FALSE(rl.take("1.2.3.4"));
  auto wait = rl.take("1.2.3.4");
  REQUIRE(wait);
  CHECK(*wait >= 1);
  CHECK_FALSE(rl.take("5.6.7.8"));  // per key
  now += 1s;
  CHECK_FALSE(rl.take("1.2.3.4"));
  CHECK_FALSE(rl.take("1.2.3.4"));
  CHECK(rl.take("1.2.3.4"));
}

TEST_CASE("plan limits per tier, subscriptions and admins", "[server]") {
  PlanLimits l;
  CHECK(*plan_limit("guest", false, false, l) == 0);
  CHECK(*plan_limit("free", false, false, l) == 5);
  CHECK(*plan_limit("pro", false, false, l) == 10);
  CHECK(*plan_limit("enterprise", false, false, l) == 25);
  CHECK(*plan_limit("free", false, true, l) == 10);
  CHECK(*plan_limit("bogus", false, false, l) == 0);
  CHECK_FALSE(plan_limit("free", true, false, l).has_value());
}

TEST_CASE("authenticator: api tokens, revocation clears the cache at once, JWT users", "[server]") {
  char dir[] = "/tmp/rexec-auth-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  {
    auto store = SqliteStore::open(std::string(dir) + "/db");
    REQUIRE(store);
    User u{"u1", "alice", "pro", false, false, 1, ""};
    REQUIRE((*store)->create_user(u));
    const std::string token = generate_api_token();
    ApiToken t;
    t.id = "t1";
    t.user_id = "u1";
    t.name = "cli";
    t.token_hash = hash_token(token);
    t.token_prefix = token.substr(0, 12);
    t.scopes = {"agent"};
    t.agent_id = "a1";
    t.created_at = 1;
    REQUIRE((*store)->create_token(t));
    auto now = SysClock::now();
    Authenticator auth(**store, "0123456789abcdef0123456789abcdef", 300s, [&] { return now; });
    auto p = auth.authenticate(token);
    REQUIRE(p);
    CHECK(p->user_id == "u1");
    CHECK(p->is_agent_scoped());
    CHECK(*p->agent_id == "a1");
    CHECK(auth.authenticate("rexec_" + std::string(64, 'e')).error().code ==
          rx::Errc::kUnauthorized);
    // Revoked in the store: still cached until invalidated, then refused at once.
    REQUIRE(*(*store)->revoke_token("t1", "u1", 2));
    auth.invalidate_token("t1");
    CHECK_FALSE(auth.authenticate(token));
    JwtClaims c;
    c.user_id = "u1";
    c.exp = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() + 60;
    auto j = auth.authenticate(sign_jwt(c, "0123456789abcdef0123456789abcdef"));
    REQUIRE(j);
    CHECK(j->via_jwt);
    CHECK_FALSE(j->is_agent_scoped());
    c.user_id = "ghost";
    CHECK_FALSE(auth.authenticate(sign_jwt(c, "0123456789abcdef0123456789abcdef")));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("web sessions: a JWT renews itself until the session's maximum life", "[server]") {
  char dir[] = "/tmp/rexec-auth-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  {
    auto store = SqliteStore::open(std::string(dir) + "/db");
    REQUIRE(store);
    REQUIRE((*store)->create_user(User{"u1", "alice", "pro", false, false, 1, ""}));
    const std::string secret = "0123456789abcdef0123456789abcdef";
    auto now = SysClock::now();
    const auto secs = [&] {
      return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    };
    Authenticator auth(**store, secret, 300s, [&] { return now; });
    Principal by_token;  // what an API token authenticates as
    by_token.user_id = "u1";
    by_token.username = "alice";
    by_token.tier = "pro";
    const std::int64_t signed_in = secs();

    // Signing in starts a session of 1 h, inside a maximum life of 3 h.
    auto first = auth.issue_session_jwt(by_token, 1h, 3h);
    REQUIRE(first);
    CHECK(first->second == signed_in + 3600);
    auto claims = verify_jwt(first->first, secret, now);
    REQUIRE(claims);
    CHECK(*claims->auth_time == signed_in);

    // 50 minutes later the page renews with the JWT itself: an hour more, same sign-in time.
    now += 50min;
    auto p = auth.authenticate(first->first);
    REQUIRE(p);
    CHECK(*p->jwt_auth_time == signed_in);
    auto second = auth.issue_session_jwt(*p, 1h, 3h);
    REQUIRE(second);
    CHECK(second->second == secs() + 3600);
    CHECK(*verify_jwt(second->first, secret, now)->auth_time == signed_in);

    // Near the maximum life the renewal is cut to it, and past it refused.
    now = SysClock::time_point(std::chrono::seconds(signed_in)) + 2h + 30min;
    p = auth.authenticate(second->first);
    REQUIRE_FALSE(p);  // second expired at 1 h 50 min: renewals must come before expiry
    now = SysClock::time_point(std::chrono::seconds(signed_in)) + 1h + 40min;
    p = auth.authenticate(second->first);
    REQUIRE(p);
    auto third = auth.issue_session_jwt(*p, 1h, 3h);
    REQUIRE(third);
    now = SysClock::time_point(std::chrono::seconds(signed_in)) + 2h + 30min;
    p = auth.authenticate(third->first);
    REQUIRE(p);
    auto fourth = auth.issue_session_jwt(*p, 1h, 3h);
    REQUIRE(fourth);
    CHECK(fourth->second == signed_in + 3 * 3600);
    now = SysClock::time_point(std::chrono::seconds(signed_in)) + 3h - 1s;
    p = auth.authenticate(fourth->first);
    REQUIRE(p);
    now += 1s;
    CHECK(auth.issue_session_jwt(*p, 1h, 3h).error().code == rx::Errc::kForbidden);

    // A JWT made elsewhere (no auth_time) is no web session: it cannot renew itself.
    JwtClaims other;
    other.user_id = "u1";
    other.exp = secs() + 600;
    p = auth.authenticate(sign_jwt(other, secret));
    REQUIRE(p);
    CHECK(auth.issue_session_jwt(*p, 1h, 3h).error().code == rx::Errc::kForbidden);
  }
  std::filesystem::remove_all(dir);
}
