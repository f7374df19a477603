// SPDX-License-Identifier: MIT
#include "jwt_sign.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace rx::test {

std::string base64url(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U) | byte(i + 2);
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += kAlphabet[(v >> 6U) & 63U];
    out += kAlphabet[v & 63U];
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = byte(i) << 16U;
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (byte(i) << 16U) | (byte(i + 1) << 8U);
    out += kAlphabet[(v >> 18U) & 63U];
    out += kAlphabet[(v >> 12U) & 63U];
    out += kAlphabet[(v >> 6U) & 63U];
  }
  return out;
}

std::string make_jwt(const nlohmann::json& claims, const std::string& secret,
                     const std::string& alg) {
  const nlohmann::json header = {{"alg", alg}, {"typ", "JWT"}};
  const std::string signing_input = base64url(header.dump()) + "." + base64url(claims.dump());
  if (alg == "none") return signing_input + ".";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(alg == "HS512" ? EVP_sha512() : EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return signing_input + "." + base64url(std::string(reinterpret_cast<char*>(mac), mac_len));
}

}  // namespace rx::test
