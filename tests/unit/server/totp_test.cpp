// SPDX-License-Identifier: MIT
#include "rexec/server/auth/totp.h"

#include <catch2/catch.hpp>

using rx::server::totp_code;
using rx::server::totp_match;

namespace {
// RFC 6238 appendix B: the SHA-1 seed "12345678901234567890", in base32.
constexpr const char* kRfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
}  // namespace

TEST_CASE("TOTP codes match RFC 6238's SHA-1 test vectors (6 digits)", "[server][mfa]") {
  // The RFC lists 8 digits; the 6-digit code is its last six.
  CHECK(*totp_code(kRfcSecret, 59) == "287082");
  CHECK(*totp_code(kRfcSecret, 1111111109) == "081804");
  CHECK(*totp_code(kRfcSecret, 1234567890) == "005924");
  CHECK(*totp_code(kRfcSecret, 2000000000) == "279037");
}

TEST_CASE("TOTP: one step either side is accepted, nothing further", "[server][mfa]") {
  const std::time_t t = 1111111109;  // step 37037036
  const std::string code = *totp_code(kRfcSecret, t);
  CHECK(**totp_match(kRfcSecret, code, t) == 37037036);
  CHECK(**totp_match(kRfcSecret, code, t + 30) == 37037036);  // a slow user
  CHECK(**totp_match(kRfcSecret, code, t - 30) == 37037036);  // a fast clock
  CHECK_FALSE(*totp_match(kRfcSecret, code, t + 90));
  CHECK_FALSE(*totp_match(kRfcSecret, code, t - 90));
  for (const char* bad : {"", "12345", "1234567", "abcdef", "08180 ", "-81804"}) {
    INFO(bad);
    CHECK_FALSE(*totp_match(kRfcSecret, bad, t));
  }
  CHECK_FALSE(totp_match("not base32 !", code, t));
}

TEST_CASE("TOTP secrets are fresh base32 and the URI names the account", "[server][mfa]") {
  const std::string a = rx::server::new_totp_secret();
  const std::string b = rx::server::new_totp_secret();
  CHECK(a.size() == 32);  // 160 bits
  CHECK(a != b);
  CHECK(a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == std::string::npos);
  CHECK(totp_code(a, 0));
  CHECK(rx::server::totp_uri("Rexec", "alice", a) ==
        "otpauth://totp/Rexec:alice?secret=" + a +
            "&issuer=Rexec&algorithm=SHA1&digits=6&period=30");
}
