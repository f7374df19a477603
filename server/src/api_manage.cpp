// SPDX-License-Identifier: MIT
// Routes for the web page's management views (docs/protocol.md "Stats history" and "Sessions"):
// an agent's stats of the last minutes, for its charts, and the sessions the hub keeps on it,
// which the owner may end. Same rules as every agent route: the caller's own agents only.
#include "rexec/server/api.h"

#include <nlohmann/json.hpp>

#include "api_internal.h"

namespace rx::server {

using api_detail::error;
using api_detail::reply;
using nlohmann::json;

namespace {

constexpr std::int64_t kDefaultStatsMinutes = 15;
constexpr std::int64_t kMaxStatsMinutes = 24 * 60;  // the default --stats-retention

// The fields the charts draw, from one stored `stats` sample (PROTOCOL §3.2).
json chart_sample(Millis at, const std::string& text) {
  const json stats = json::parse(text, nullptr, false);
  json out = {{"at", at}};
  if (!stats.is_object()) return out;
  for (const char* key :
       {"cpu_percent", "memory", "memory_limit", "disk_usage", "disk_limit", "load1", "sessions"}) {
    if (stats.contains(key) && stats[key].is_number()) out[key] = stats[key];
  }
  return out;
}

}  // namespace

std::optional<HttpResponse> Api::manage_route(const Principal& p, const HttpRequest& req,
                                              const std::vector<std::string>& parts) {
  const bool stats = parts.size() == 4 && parts[3] == "stats";
  const bool sessions = (parts.size() == 4 || parts.size() == 5) && parts[3] == "sessions";
  if (parts.size() < 4 || parts[1] != "agents" || !(stats || sessions)) return std::nullopt;
  const OwnedAgent owned = owned_agent(p, parts[2]);
  if (!owned.agent) return owned.refusal;
  const Agent& a = *owned.agent;

  if (stats) {
    if (req.method != "GET") return error(405, "method not allowed");
    std::int64_t minutes = kDefaultStatsMinutes;
    if (auto m = req.query_param("minutes")) {
      const auto v = api_detail::parse_count(*m, 1, kMaxStatsMinutes);
      if (!v) return error(400, "minutes must be a whole number from 1 to 1440");
      minutes = *v;
    }
    auto rows = store_.stats_of(a.id, config_.stats_history_max);
    if (!rows) return error(500, "internal error");
    const Millis since = now_ms() - minutes * 60'000;
    json samples = json::array();
    for (auto it = rows->rbegin(); it != rows->rend(); ++it) {  // oldest first
      if (it->first >= since) samples.push_back(chart_sample(it->first, it->second));
    }
    return reply(200, {{"agent_id", a.id}, {"minutes", minutes}, {"samples", std::move(samples)}});
  }

  if (parts.size() == 4) {
    if (req.method != "GET") return error(405, "method not allowed");
    return reply(200, {{"agent_id", a.id}, {"sessions", hub_->sessions_json(a.id)}});
  }
  if (req.method != "DELETE") return error(405, "method not allowed");
  const std::string& sid = parts[4];
  if (!api_detail::valid_session_id(sid)) return error(400, "invalid session id");
  if (!hub_->end_session(a.id, sid, p.user_id)) return error(404, "session not found");
  return reply(200, {{"message", "session ended"}, {"session_id", sid}});
}

}  // namespace rx::server
