// SPDX-License-Identifier: MIT
// HS256 JSON Web Tokens (PROTOCOL §2). Written on OpenSSL's HMAC rather than libjwt: the rules
// that matter — only HS256, `exp` required and enforced, `user_id` a string — are ours to check
// either way, and OpenSSL is already linked. Every other algorithm, "none" included, is refused.
#pragma once

#include "rexec/common/result.h"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace rx::server {

struct JwtClaims {
  std::string user_id;
  std::string username;
  std::string tier;
  std::int64_t exp = 0;  // Unix seconds
  std::optional<std::int64_t> iat;
  // When the person signed in with an API token (Unix seconds; web sessions, docs/web.md).
  std::optional<std::int64_t> auth_time;
};

// Errors: kUnauthorized (malformed, wrong alg, bad signature, no or past exp, no user_id).
Result<JwtClaims> verify_jwt(std::string_view token, std::string_view secret,
                             std::chrono::system_clock::time_point now);
std::string sign_jwt(const JwtClaims& claims, std::string_view secret);

}  // namespace rx::server
