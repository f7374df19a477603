// SPDX-License-Identifier: MIT
// The answers of the HTTP API that the deployed Rexec's public clients read (docs/protocol.md
// "Compatibility"): GET /api/profile, GET /api/containers and GET /api/tokens/validate. Pure
// functions of their arguments, so golden tests pin the exact bytes; keys come out sorted
// (nlohmann::json), as the deployed server's do.
#pragma once

#include "rexec/server/auth/authenticator.h"
#include "rexec/server/storage/store.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>

namespace rx::server {

// What GET /api/profile reports about its caller.
struct ProfileFacts {
  User user;
  bool mfa_enabled = false;
  std::size_t agents = 0;          // registered
  std::size_t agents_online = 0;   // connected now
  std::optional<int> agent_limit;  // the plan's; nullopt: none (admins)
};

// {"user":{...},"stats":{...},"limits":{...}}. Every key of "user" is always present; the
// deployed server's container keys are there with 0 (we serve agents only); -1 is no limit.
nlohmann::json profile_json(const ProfileFacts& f);

// One agent as an entry of GET /api/containers. `online`: connected to some instance now;
// `system_info` and `stats` (objects, or null when unknown) are the latest the agent sent.
nlohmann::json container_json(const Agent& a, bool online, const nlohmann::json& system_info,
                              const nlohmann::json& stats);

// {"containers":[...],"count":N,"limit":N}: `entries` must be an array (an empty one is `[]`,
// never null); `limit` as in profile_json.
nlohmann::json containers_json(nlohmann::json entries, std::optional<int> limit);

// GET /api/tokens/validate: {"valid":true,"user_id","username","email","tier","scopes"}.
nlohmann::json validate_json(const Principal& p, const std::string& email);

}  // namespace rx::server
