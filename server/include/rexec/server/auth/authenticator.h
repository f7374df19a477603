// SPDX-License-Identifier: MIT
// Authenticator: turns a presented token (API token or JWT) into a Principal, with a bounded
// validation cache (≤ 5 minutes) that revocation clears at once.
#pragma once

#include "rexec/common/result.h"
#include "rexec/server/storage/store.h"

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rx::server {

struct Principal {
  std::string user_id;
  std::string username;
  std::string tier;
  bool is_admin = false;
  bool subscription_active = false;
  std::vector<std::string> scopes;  // ["agent"] for agent tokens; user tokens have user scope
  std::optional<std::string> token_id;
  std::optional<std::string> agent_id;  // the agent an agent-scoped token was minted for
  bool via_jwt = false;
  std::optional<std::int64_t> jwt_auth_time;  // a web session's sign-in time (JWT auth_time)

  // Agent-scoped tokens may only open their agent's socket and validate themselves.
  [[nodiscard]] bool is_agent_scoped() const { return scopes.size() == 1 && scopes[0] == "agent"; }

  // Registration tokens (docs/protocol.md "Registration tokens") may only register one agent.
  [[nodiscard]] bool is_register_scoped() const {
    return scopes.size() == 1 && scopes[0] == "register";
  }
};

class Authenticator {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;
  Authenticator(
      Store& store, std::string jwt_secret,
      std::chrono::seconds cache_ttl = std::chrono::minutes(5),
      Clock clock = [] { return std::chrono::system_clock::now(); });

  // Errors: kUnauthorized "invalid token"; kStorage.
  Result<Principal> authenticate(const std::string& token);
  void invalidate_token(const std::string& token_id);
  void invalidate_user(const std::string& user_id);
  // A web session's JWT for `p` (docs/web.md): signed in with an API token, a new session that
  // began now; presented with such a JWT, the same session renewed. Either way it lives `ttl`,
  // but never past `max_life` after the sign-in. Errors: kForbidden when `p` came with a JWT
  // that is no web session, or whose session is `max_life` old.
  [[nodiscard]] Result<std::pair<std::string, std::int64_t>> issue_session_jwt(
      const Principal& p, std::chrono::seconds ttl, std::chrono::seconds max_life) const;

 private:
  struct Entry {
    Principal principal;
    std::chrono::system_clock::time_point until;
    std::optional<std::int64_t> expires_at_ms;
  };

  Store& store_;
  std::string secret_;
  std::chrono::seconds ttl_;
  Clock clock_;
  std::map<std::string, Entry> cache_;  // by token hash
};

}  // namespace rx::server
