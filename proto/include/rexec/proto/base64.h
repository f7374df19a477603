// SPDX-License-Identifier: MIT
// Standard base64 with padding (RFC 4648 §4), as PROTOCOL §3.2 requires for terminal and file bytes
// inside v1 JSON. Pure functions, safe on any thread.
#pragma once

#include "rexec/common/result.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace rx::proto {

// The encoded length of `n` bytes: 4 * ceil(n / 3).
constexpr std::size_t base64_encoded_size(std::size_t n) { return (n + 2) / 3 * 4; }

// Standard alphabet, '=' padding, no line breaks. Never fails.
[[nodiscard]] std::string base64_encode(std::string_view bytes);

// The same, written to out[0 .. base64_encoded_size(bytes.size())), which the caller owns (lets
// an encoder place the text straight into its output buffer).
void base64_encode_into(std::string_view bytes, char* out);

// Strict: rejects a length that is not a multiple of 4, characters outside the standard alphabet
// (including whitespace and the URL-safe '-' and '_'), and '=' anywhere but the last one or two
// positions. Non-zero bits under the padding are accepted (RFC 4648 §3.5 lets decoders do so, and
// encoders in the wild never set them). Errors: kBadBase64, offset = the first bad character (or
// the length, for a bad length).
[[nodiscard]] Result<std::string> base64_decode(std::string_view text);

}  // namespace rx::proto
