// SPDX-License-Identifier: MIT
#include "rexec/server/auth/authenticator.h"

#include "rexec/server/auth/jwt.h"
#include "rexec/server/auth/tokens.h"

#include <algorithm>

namespace rx::server {

namespace {

Error invalid() { return {Errc::kUnauthorized, "invalid token"}; }

Principal principal_of(const User& u) {
  Principal p;
  p.user_id = u.id;
  p.username = u.username;
  p.tier = u.tier;
  p.is_admin = u.is_admin;
  p.subscription_active = u.subscription_active;
  return p;
}

Millis to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Authenticator::Authenticator(Store& store, std::string jwt_secret, std::chrono::seconds cache_ttl,
                             Clock clock)
    : store_(store), secret_(std::move(jwt_secret)), ttl_(cache_ttl), clock_(std::move(clock)) {}

Result<Principal> Authenticator::authenticate(const std::string& token) {
  if (token.empty()) return invalid();
  const auto now = clock_();
  if (!is_api_token(token)) {
    auto claims = verify_jwt(token, secret_, now);
    if (!claims) return invalid();
    auto user = store_.user_by_id(claims->user_id);
    if (!user) return std::move(user).error();
    if (!*user) return invalid();
    Principal p = principal_of(**user);
    p.scopes = {"all"};
    p.via_jwt = true;
    p.jwt_auth_time = claims->auth_time;
    return p;
  }
  const std::string hash = hash_token(token);
  if (auto it = cache_.find(hash); it != cache_.end()) {
    if (now < it->second.until &&
        (!it->second.expires_at_ms || to_ms(now) < *it->second.expires_at_ms)) {
      return it->second.principal;
    }
    cache_.erase(it);
  }
  auto rec = store_.token_by_hash(hash);
  if (!rec) return std::move(rec).error();
  if (!*rec) return invalid();
  const ApiToken& t = **rec;
  // The lookup was by hash; compare again in constant time so no timing depends on the token.
  if (!constant_time_equal(t.token_hash, hash)) return invalid();
  if (t.revoked_at || (t.expires_at && to_ms(now) >= *t.expires_at)) return invalid();
  auto user = store_.user_by_id(t.user_id);
  if (!user) return std::move(user).error();
  if (!*user) return invalid();
  Principal p = principal_of(**user);
  p.scopes = t.scopes;
  p.token_id = t.id;
  p.agent_id = t.agent_id;
  if (!t.last_used_at || to_ms(now) - *t.last_used_at > 60'000) {
    (void)store_.touch_token(t.id, to_ms(now));  // at most once a minute per token
  }
  cache_[hash] = Entry{p, now + ttl_, t.expires_at};
  return p;
}

Result<std::pair<std::string, std::int64_t>> Authenticator::issue_session_jwt(
    const Principal& p, std::chrono::seconds ttl, std::chrono::seconds max_life) const {
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch()).count();
  std::int64_t signed_in = now;
  if (p.via_jwt) {
    if (!p.jwt_auth_time) return Error(Errc::kForbidden, "not a web session");
    signed_in = *p.jwt_auth_time;
    if (now - signed_in >= max_life.count()) return Error(Errc::kForbidden, "session too old");
  }
  JwtClaims c;
  c.user_id = p.user_id;
  c.username = p.username;
  c.tier = p.tier;
  c.iat = now;
  c.auth_time = signed_in;
  c.exp = std::min(now + ttl.count(), signed_in + max_life.count());
  return std::pair{sign_jwt(c, secret_), c.exp};
}

void Authenticator::invalidate_token(const std::string& token_id) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.principal.token_id == token_id ? cache_.erase(it) : std::next(it);
  }
}

void Authenticator::invalidate_user(const std::string& user_id) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    it = it->second.principal.user_id == user_id ? cache_.erase(it) : std::next(it);
  }
}

}  // namespace rx::server
