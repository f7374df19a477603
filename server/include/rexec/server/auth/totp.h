// SPDX-License-Identifier: MIT
// TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) for the MFA lock (PROTOCOL §6), through
// liboath rather than a hand-written HMAC loop.
#pragma once

#include "rexec/common/result.h"

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace rx::server {

inline constexpr unsigned kTotpStepSeconds = 30;

// A new random 160-bit secret, base32 (RFC 4648, no padding), as authenticator apps take it.
std::string new_totp_secret();

// otpauth://totp/<issuer>:<account>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
std::string totp_uri(std::string_view issuer, std::string_view account,
                     std::string_view secret_base32);

// The time step (now / 30 s, ±1) whose code is `code`, or nullopt: a wrong, malformed or
// out-of-window code. Errors: kInvalidArgument for a secret that is not base32.
Result<std::optional<std::int64_t>> totp_match(std::string_view secret_base32,
                                               std::string_view code, std::time_t now);

// The code for the time step containing `at` (for the CLI and tests).
Result<std::string> totp_code(std::string_view secret_base32, std::time_t at);

}  // namespace rx::server
