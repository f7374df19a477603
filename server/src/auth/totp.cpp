// SPDX-License-Identifier: MIT
#include "rexec/server/auth/totp.h"

#include <liboath/oath.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <mutex>

namespace rx::server {

namespace {

constexpr unsigned kDigits = 6;
constexpr std::size_t kWindow = 1;  // one step either side: clocks drift, people are slow

void init_oath() {
  static std::once_flag once;
  std::call_once(once, [] { (void)oath_init(); });
}

struct Freer {
  void operator()(char* p) const { std::free(p); }  // NOLINT(cppcoreguidelines-no-malloc)
};

Result<std::string> decode_secret(std::string_view secret_base32) {
  init_oath();
  char* raw = nullptr;
  size_t len = 0;
  const std::string in(secret_base32);
  if (oath_base32_decode(in.c_str(), in.size(), &raw, &len) != OATH_OK) {
    return Error(Errc::kInvalidArgument, "the TOTP secret is not base32");
  }
  std::unique_ptr<char, Freer> owned(raw);
  return std::string(raw, len);
}

}  // namespace

std::string new_totp_secret() {
  init_oath();
  std::array<unsigned char, 20> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) std::abort();
  char* b32 = nullptr;
  size_t len = 0;
  if (oath_base32_encode(reinterpret_cast<const char*>(raw.data()), raw.size(), &b32, &len) !=
      OATH_OK) {
    std::abort();  // only on allocation failure
  }
  std::unique_ptr<char, Freer> owned(b32);
  std::string out(b32, len);
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::string totp_uri(std::string_view issuer, std::string_view account,
                     std::string_view secret_base32) {
  // Issuer and account are our own names ([A-Za-z0-9_.-]); nothing to percent-encode.
  std::string uri = "otpauth://totp/";
  uri.append(issuer).append(":").append(account);
  uri.append("?secret=").append(secret_base32);
  uri.append("&issuer=").append(issuer);
  uri.append("&algorithm=SHA1&digits=6&period=30");
  return uri;
}

Result<std::optional<std::int64_t>> totp_match(std::string_view secret_base32,
                                               std::string_view code, std::time_t now) {
  auto secret = decode_secret(secret_base32);
  if (!secret) return std::move(secret).error();
  if (code.size() != kDigits) return std::optional<std::int64_t>();
  for (char c : code) {
    if (c < '0' || c > '9') return std::optional<std::int64_t>();
  }
  const std::string otp(code);
  uint64_t counter = 0;
  int pos = 0;
  const int rc = oath_totp_validate4(secret->data(), secret->size(), now, kTotpStepSeconds, 0,
                                     kWindow, &pos, &counter, 0, otp.c_str());
  if (rc < 0) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(static_cast<std::int64_t>(counter));
}

Result<std::string> totp_code(std::string_view secret_base32, std::time_t at) {
  auto secret = decode_secret(secret_base32);
  if (!secret) return std::move(secret).error();
  std::array<char, kDigits + 1> out{};
  if (oath_totp_generate2(secret->data(), secret->size(), at, kTotpStepSeconds, 0, kDigits, 0,
                          out.data()) != OATH_OK) {
    return Error(Errc::kInternal, "oath_totp_generate2 failed");
  }
  return std::string(out.data(), kDigits);
}

}  // namespace rx::server
