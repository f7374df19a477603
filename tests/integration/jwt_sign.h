// SPDX-License-Identifier: MIT
// Test-side HS256 JWT signing, written independently of the server's verifier so the two check
// each other. `alg` may be anything (tests forge "none" and "HS512" tokens on purpose).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace rx::test {

std::string base64url(const std::string& bytes);
std::string make_jwt(const nlohmann::json& claims, const std::string& secret,
                     const std::string& alg = "HS256");

}  // namespace rx::test
