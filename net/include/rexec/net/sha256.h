// SPDX-License-Identifier: MIT
// Sha256: an incremental SHA-256 (OpenSSL EVP) with a lowercase hex digest, the checksum of
// file transfers (PROTOCOL §8) on the agent, the server and the client. Here because every one of
// them links OpenSSL through this module already.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace rx::net {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) = delete;
  Sha256& operator=(Sha256&&) = delete;

  void update(std::string_view bytes);
  // The digest of everything given so far: 64 lowercase hex digits. Once: it ends the hash.
  [[nodiscard]] std::string hex_digest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace rx::net
