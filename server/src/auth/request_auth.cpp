// SPDX-License-Identifier: MIT
#include "rexec/server/auth/request_auth.h"

#include <algorithm>
#include <cmath>

namespace rx::server {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "http://host" followed by nothing or ":<digits>".
bool is_local_origin(std::string_view origin, std::string_view prefix) {
  if (origin.substr(0, prefix.size()) != prefix) return false;
  std::string_view rest = origin.substr(prefix.size());
  if (rest.empty()) return true;
  if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return false;
  return std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::optional<ExtractedToken> extract_token(std::string_view authorization,
                                            std::string_view sec_websocket_protocol,
                                            std::string_view query_token) {
  const std::string_view auth = trim(authorization);
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
    const auto t = trim(auth.substr(7));
    if (!t.empty()) return ExtractedToken{std::string(t), "bearer"};
  }
  std::string_view list = sec_websocket_protocol;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view entry = trim(list.substr(0, comma));
    if (entry.substr(0, 12) == "rexec.token." && entry.size() > 12) {
      return ExtractedToken{std::string(entry.substr(12)), "subprotocol"};
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (!query_token.empty()) return ExtractedToken{std::string(query_token), "query"};
  return std::nullopt;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allow_list,
                    std::string_view server_origin, bool block_empty) {
  if (origin.empty()) return !block_empty;
  if (!allow_list.empty()) {
    return std::find(allow_list.begin(), allow_list.end(), origin) != allow_list.end();
  }
  if (origin == server_origin) return true;
  return is_local_origin(origin, "http://localhost") || is_local_origin(origin, "http://127.0.0.1");
}

RateLimiter::RateLimiter(double per_second, double burst, Clock clock)
    : rate_(per_second), burst_(burst), clock_(std::move(clock)) {}

std::optional<int> RateLimiter::take(const std::string& key) {
  const auto now = clock_();
  if (buckets_.size() > 10000) {
    // Drop buckets that have refilled completely: they carry no information.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      const double idle = std::chrono::duration<double>(now - it->second.at).count();
      it = it->second.tokens + idle * rate_ >= burst_ ? buckets_.erase(it) : std::next(it);
    }
  }
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.at = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  return std::max(1, static_cast<int>(std::ceil((1.0 - b.tokens) / rate_)));
}

}  // namespace rx::server
