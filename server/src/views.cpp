// SPDX-License-Identifier: MIT
#include "rexec/server/views.h"

#include <cstdint>

#include "api_internal.h"

namespace rx::server {

using api_detail::rfc3339;
using api_detail::time_or_null;

namespace {

using nlohmann::json;

// A plan limit as the deployed clients read it: a number, -1 for none.
json limit_number(const std::optional<int>& limit) { return limit ? *limit : -1; }

// An unsigned member of an object (bytes and counts in system_info), else 0.
std::uint64_t uint_at(const json& j, const char* key) {
  if (!j.is_object()) return 0;
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

std::string string_at(const json& j, const char* key) {
  if (!j.is_object()) return "";
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

json profile_json(const ProfileFacts& f) {
  const User& u = f.user;
  const std::string created = rfc3339(u.created_at);
  // Users are made by an operator (`rexec-server user add`): no real name, avatar or email
  // verification, and no record of changes, so those keys hold their empty values.
  json user = {{"id", u.id},
               {"email", u.email},
               {"username", u.username},
               {"name", u.username},
               {"first_name", ""},
               {"last_name", ""},
               {"avatar", ""},
               {"verified", false},
               {"tier", u.tier},
               {"created_at", created},
               {"updated_at", created},
               {"is_admin", u.is_admin},
               {"mfa_enabled", f.mfa_enabled}};
  json stats = {{"agents", f.agents},
                {"agents_online", f.agents_online},
                {"container_count", 0},
                {"container_limit", 0}};
  json limits = {{"max_agents", limit_number(f.agent_limit)}, {"containers", 0}};
  return {{"user", std::move(user)}, {"stats", std::move(stats)}, {"limits", std::move(limits)}};
}

json container_json(const Agent& a, bool online, const json& system_info, const json& stats) {
  constexpr std::uint64_t kMiB = 1024U * 1024U;
  // Unknown until the agent sends system_info: the deployed server's defaults then.
  json resources = {{"memory_mb", 0}, {"cpu_shares", 1024}, {"disk_mb", 0}};
  if (system_info.is_object()) {
    if (const std::uint64_t cpus = uint_at(system_info, "num_cpu"); cpus > 0) {
      resources["cpu_shares"] = cpus * 1024U;
    }
    if (const auto it = system_info.find("memory"); it != system_info.end()) {
      resources["memory_mb"] = uint_at(*it, "total") / kMiB;
    }
    if (const auto it = system_info.find("disk"); it != system_info.end()) {
      resources["disk_mb"] = uint_at(*it, "total") / kMiB;
    }
  }
  json j = {{"id", "agent:" + a.id},
            {"session_type", "agent"},
            {"name", a.name},
            {"image", a.os + "/" + a.arch},
            {"status", online ? "running" : "offline"},
            {"created_at", rfc3339(a.created_at)},
            {"last_used_at", time_or_null(a.last_ping)},
            {"os", a.os},
            {"arch", a.arch},
            {"shell", a.shell},
            {"distro", a.distro},
            {"description", a.description},
            {"mfa_locked", a.mfa_locked},
            {"resources", std::move(resources)}};
  if (online) {
    j["hostname"] = string_at(system_info, "hostname");
    j["region"] = string_at(system_info, "region");
    j["stats"] = stats.is_object() ? stats : json(nullptr);
  }
  return j;
}

json containers_json(json entries, std::optional<int> limit) {
  if (!entries.is_array()) entries = json::array();
  const std::size_t count = entries.size();
  return {{"containers", std::move(entries)}, {"count", count}, {"limit", limit_number(limit)}};
}

json validate_json(const Principal& p, const std::string& email) {
  return {{"valid", true},  {"user_id", p.user_id}, {"username", p.username},
          {"email", email}, {"tier", p.tier},       {"scopes", p.scopes}};
}

}  // namespace rx::server
