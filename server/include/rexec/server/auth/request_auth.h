// SPDX-License-Identifier: MIT
// Pure request checks of PROTOCOL §2: where the token comes from, which subprotocol the server
// selects, whether an Origin may open a socket, and per-IP rate limits.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rx::server {

struct ExtractedToken {
  std::string token;
  std::string source;  // "bearer", "subprotocol" or "query"
};

// Authorization: Bearer first, then the first "rexec.token." subprotocol entry, then ?token=.
std::optional<ExtractedToken> extract_token(std::string_view authorization,
                                            std::string_view sec_websocket_protocol,
                                            std::string_view query_token);

// Allowed when it equals an entry of `allow_list`; with no list: the server's own origin,
// http://localhost[:port] and http://127.0.0.1[:port]. An empty Origin (a non-browser client)
// is allowed unless `block_empty`.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allow_list,
                    std::string_view server_origin, bool block_empty);

// Token buckets per key (IP). Memory is bounded: idle buckets are dropped.
class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  RateLimiter(
      double per_second, double burst,
      Clock clock = [] { return std::chrono::steady_clock::now(); });
  // nullopt when allowed, else the seconds to wait (≥ 1).
  std::optional<int> take(const std::string& key);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
  };

  double rate_;
  double burst_;
  Clock clock_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace rx::server
