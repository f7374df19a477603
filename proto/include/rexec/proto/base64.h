// SPDX-License-Identifier: MIT
// Standard base64 with padding (RFC 4648 §4), as PROTOCOL §3.2 requires for terminal bytes.
#pragma once

#include "rexec/common/result.h"

#include <string>
#include <string_view>

namespace rx::proto {

std::string base64_encode(std::string_view bytes);

// Strict: rejects characters outside the alphabet, a length that is not a multiple of 4, and
// misplaced padding. Errors: kBadBase64 with the offset of the first bad character.
Result<std::string> base64_decode(std::string_view text);

}  // namespace rx::proto
