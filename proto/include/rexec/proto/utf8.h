// SPDX-License-Identifier: MIT
// UTF-8 helpers for v1 user sockets (PROTOCOL §4.2), where the server holds back an incomplete
// multi-byte sequence at the end of a chunk until the next chunk completes it.
#pragma once

#include <cstddef>
#include <string_view>

namespace rx::proto {

// The length of the longest prefix of `bytes` that does not end inside an incomplete (but so
// far valid) UTF-8 sequence. At most 3 bytes are held back; bytes that can never become valid
// UTF-8 are not held back, so a stream of binary garbage never stalls. Pure; any thread.
[[nodiscard]] std::size_t utf8_complete_prefix(std::string_view bytes);

// True when `bytes` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view bytes);

}  // namespace rx::proto
