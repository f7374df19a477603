// SPDX-License-Identifier: MIT
#include "rexec/server/auth/tokens.h"

#include "rexec/common/check.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>

namespace rx::server {

namespace {

std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4U];
    out += kHex[p[i] & 0xFU];
  }
  return out;
}

}  // namespace

bool is_api_token(std::string_view t) {
  if (t.size() != 6 + 64 || t.substr(0, 6) != "rexec_") return false;
  for (char c : t.substr(6)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string random_hex(std::size_t bytes) {
  std::string buf(bytes, '\0');
  REXEC_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), static_cast<int>(bytes)) ==
              1);
  return to_hex(reinterpret_cast<const unsigned char*>(buf.data()), bytes);
}

std::string generate_api_token() { return "rexec_" + random_hex(32); }

std::string hash_token(std::string_view token) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  REXEC_CHECK(EVP_Digest(token.data(), token.size(), md.data(), &len, EVP_sha256(), nullptr) == 1);
  return to_hex(md.data(), len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string new_uuid_v4() {
  std::array<unsigned char, 16> b{};
  REXEC_CHECK(RAND_bytes(b.data(), static_cast<int>(b.size())) == 1);
  b[6] = static_cast<unsigned char>((b[6] & 0x0FU) | 0x40U);
  b[8] = static_cast<unsigned char>((b[8] & 0x3FU) | 0x80U);
  const std::string h = to_hex(b.data(), b.size());
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

}  // namespace rx::server
