// SPDX-License-Identifier: MIT
// API token format (PROTOCOL §2: "rexec_" + 64 lowercase hex), hashing, constant-time
// comparison, and uuid v4. Randomness from OpenSSL's RAND_bytes.
#pragma once

#include <string>
#include <string_view>

namespace rx::server {

[[nodiscard]] bool is_api_token(std::string_view token);
std::string generate_api_token();
std::string hash_token(std::string_view token);  // hex SHA-256
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b);
std::string new_uuid_v4();
std::string random_hex(std::size_t bytes);

}  // namespace rx::server
