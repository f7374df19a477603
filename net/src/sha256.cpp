// SPDX-License-Identifier: MIT
#include "rexec/net/sha256.h"

#include "rexec/common/check.h"

#include <openssl/evp.h>

#include <array>

namespace rx::net {

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();

  Ctx() { REXEC_CHECK(md != nullptr && EVP_DigestInit_ex(md, EVP_sha256(), nullptr) == 1); }

  ~Ctx() { EVP_MD_CTX_free(md); }

  Ctx(const Ctx&) = delete;
  Ctx& operator=(const Ctx&) = delete;
  Ctx(Ctx&&) = delete;
  Ctx& operator=(Ctx&&) = delete;
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {}

Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  REXEC_CHECK(EVP_DigestUpdate(ctx_->md, bytes.data(), bytes.size()) == 1);
}

std::string Sha256::hex_digest() {
  static constexpr std::string_view kDigits = "0123456789abcdef";
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  REXEC_CHECK(EVP_DigestFinal_ex(ctx_->md, md.data(), &n) == 1);
  std::string out;
  out.reserve(2U * n);
  for (unsigned int i = 0; i < n; ++i) {
    out += kDigits[md[i] >> 4U];
    out += kDigits[md[i] & 0x0FU];
  }
  return out;
}

}  // namespace rx::net
