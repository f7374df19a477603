// SPDX-License-Identifier: MIT
// Helpers the route files of Api share (api.cpp, api_manage.cpp, views.cpp): JSON answers, times
// and the ids of sessions. Private to the server library.
#pragma once

#include "rexec/proto/messages.h"
#include "rexec/server/http_server.h"
#include "rexec/server/hub.h"
#include "rexec/server/storage/store.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace rx::server::api_detail {

inline HttpResponse reply(int status, const nlohmann::json& body) {
  return HttpResponse::json(status, body.dump());
}

inline HttpResponse error(int status, const std::string& text) {
  return reply(status, {{"error", text}});
}

inline std::string rfc3339(Millis ms) {
  return format_time(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

// rfc3339(), or null when there is no time.
inline nlohmann::json time_or_null(const std::optional<Millis>& ms) {
  return ms ? nlohmann::json(rfc3339(*ms)) : nlohmann::json(nullptr);
}

inline bool valid_conn_id(const std::string& id, bool split) {
  // The split's session id "split-<connId>" must fit the 64-byte frame id (docs/protocol.md).
  return proto::is_valid_id(id) && (!split || id.size() <= proto::kMaxIdBytes - 6);
}

// "main" or "split-<connId>": the ids the hub gives sessions.
inline bool valid_session_id(const std::string& id) {
  return id == "main" || (id.rfind("split-", 0) == 0 && valid_conn_id(id.substr(6), true));
}

// A whole number from `min` to `max` (at most 18 digits), else nullopt.
inline std::optional<std::int64_t> parse_count(const std::string& text, std::int64_t min,
                                               std::int64_t max) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v >= min && v <= max ? std::optional<std::int64_t>(v) : std::nullopt;
}

}  // namespace rx::server::api_detail
