// SPDX-License-Identifier: MIT
// What the two Store backends share: the column lists of their SELECTs (the same order in
// both schemas) and the JSON text that list columns (scopes, tags) are stored as.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rx::server::columns {

inline constexpr const char* kUser =
    "id, username, tier, is_admin, subscription_active, created_at, email";
inline constexpr const char* kToken =
    "id, user_id, name, token_hash, token_prefix, scopes, agent_id, expires_at, revoked_at, "
    "last_used_at, created_at";
inline constexpr const char* kAgent =
    "id, user_id, name, description, os, arch, shell, distro, tags, status, mfa_locked, "
    "connected_at, last_ping, created_at, updated_at, system_info, token_id";

inline std::string join_json(const std::vector<std::string>& v) { return nlohmann::json(v).dump(); }

// A list column back: the strings of a JSON array; anything else is an empty list.
inline std::vector<std::string> split_json(const std::string& s) {
  auto j = nlohmann::json::parse(s, nullptr, false);
  std::vector<std::string> out;
  if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
    }
  }
  return out;
}

}  // namespace rx::server::columns
