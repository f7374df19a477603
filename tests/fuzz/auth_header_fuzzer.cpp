// SPDX-License-Identifier: MIT
// The token extraction of every request: Authorization, Sec-WebSocket-Protocol and ?token=,
// split from one input at 0x00 bytes. Property: a token found is a substring of one of them.
#include "rexec/common/check.h"
#include "rexec/server/auth/request_auth.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (auto& p : parts) {
    const auto nul = rest.find('\0');
    p = rest.substr(0, nul);
    rest = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
  }
  auto t = rx::server::extract_token(parts[0], parts[1], parts[2]);
  if (t) {
    const bool inside = parts[0].find(t->token) != std::string_view::npos ||
                        parts[1].find(t->token) != std::string_view::npos ||
                        parts[2].find(t->token) != std::string_view::npos;
    REXEC_CHECK(inside);
  }
  (void)rx::server::origin_allowed(parts[0], {}, "http://127.0.0.1:8080", false);
  return 0;
}
