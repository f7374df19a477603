// SPDX-License-Identifier: MIT
#include "rexec/server/auth/jwt.h"

#include "rexec/server/auth/tokens.h"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace rx::server {

namespace {

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url_encode(std::string_view in) {
  std::string out;
  std::size_t i = 0;
  const auto at = [&](std::size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(in[k]));
  };
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (at(i) << 16U) | (at(i + 1) << 8U) | at(i + 2);
    for (int s = 18; s >= 0; s -= 6) out += kB64Url[(v >> static_cast<unsigned>(s)) & 63U];
  }
  const std::size_t rest = in.size() - i;
  if (rest > 0) {
    unsigned v = at(i) << 16U;
    if (rest == 2) v |= at(i + 1) << 8U;
    out += kB64Url[(v >> 18U) & 63U];
    out += kB64Url[(v >> 12U) & 63U];
    if (rest == 2) out += kB64Url[(v >> 6U) & 63U];
  }
  return out;
}

std::optional<std::string> b64url_decode(std::string_view in) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : in) {
    const char* p = std::char_traits<char>::find(kB64Url, 64, c);
    if (p == nullptr) return std::nullopt;
    v = (v << 6U) | static_cast<unsigned>(p - kB64Url);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> static_cast<unsigned>(bits)) & 0xFFU);
    }
  }
  if (in.size() % 4 == 1) return std::nullopt;
  return out;
}

std::string hs256(std::string_view data, std::string_view secret) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len);
  return {reinterpret_cast<const char*>(mac.data()), len};
}

Error invalid(const char* why) {
  return {Errc::kUnauthorized, std::string("invalid token: ") + why};
}

}  // namespace

Result<JwtClaims> verify_jwt(std::string_view token, std::string_view secret,
                             std::chrono::system_clock::time_point now) {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return invalid("not a JWT");
  }
  auto header = b64url_decode(token.substr(0, dot1));
  auto payload = b64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto sig = b64url_decode(token.substr(dot2 + 1));
  if (!header || !payload || !sig) return invalid("bad encoding");
  const auto h = nlohmann::json::parse(*header, nullptr, false);
  if (!h.is_object() || !h.contains("alg") || !h["alg"].is_string() || h["alg"] != "HS256") {
    return invalid("algorithm must be HS256");
  }
  if (!constant_time_equal(*sig, hs256(token.substr(0, dot2), secret))) {
    return invalid("bad signature");
  }
  const auto c = nlohmann::json::parse(*payload, nullptr, false);
  if (!c.is_object()) return invalid("bad claims");
  if (!c.contains("exp") || !c["exp"].is_number()) return invalid("no exp");
  if (!c.contains("user_id") || !c["user_id"].is_string()) return invalid("no user_id");
  JwtClaims claims;
  claims.exp = c["exp"].get<std::int64_t>();
  const auto now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (claims.exp <= now_s) return invalid("expired");
  claims.user_id = c["user_id"].get<std::string>();
  if (claims.user_id.empty()) return invalid("empty user_id");
  if (c.contains("username") && c["username"].is_string()) claims.username = c["username"];
  if (c.contains("tier") && c["tier"].is_string()) claims.tier = c["tier"];
  if (c.contains("iat") && c["iat"].is_number()) claims.iat = c["iat"].get<std::int64_t>();
  if (c.contains("auth_time") && c["auth_time"].is_number_integer()) {
    claims.auth_time = c["auth_time"].get<std::int64_t>();
  }
  return claims;
}

std::string sign_jwt(const JwtClaims& claims, std::string_view secret) {
  nlohmann::json c = {{"user_id", claims.user_id}, {"exp", claims.exp}};
  if (!claims.username.empty()) c["username"] = claims.username;
  if (!claims.tier.empty()) c["tier"] = claims.tier;
  if (claims.iat) c["iat"] = *claims.iat;
  if (claims.auth_time) c["auth_time"] = *claims.auth_time;
  const std::string input =
      b64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url_encode(c.dump());
  return input + "." + b64url_encode(hs256(input, secret));
}

}  // namespace rx::server
