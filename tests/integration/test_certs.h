// SPDX-License-Identifier: MIT
// A throwaway CA and a server certificate for 127.0.0.1 and rexec.test (not "localhost"), made
// with the openssl CLI in a temp directory that goes with the object. Shared by the TLS tests and
// rexec-bench.
#pragma once

#include <string>

namespace rx::test {

// The key type of the CA and the server certificate.
enum class KeyType { kEcP256, kEcP384, kRsa2048, kEd25519 };

// Files in `path`: ca.pem/ca.key (the CA), other-ca.pem/other-ca.key (a CA nobody trusts),
// server.pem/server.key (signed by ca.pem), all of `type`. Throws std::runtime_error when openssl
// fails.
struct TestCerts {
  std::string path;

  explicit TestCerts(KeyType type = KeyType::kEcP256);
  ~TestCerts();
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;
  TestCerts(TestCerts&&) = delete;
  TestCerts& operator=(TestCerts&&) = delete;

  [[nodiscard]] std::string ca() const { return path + "/ca.pem"; }

  [[nodiscard]] std::string cert() const { return path + "/server.pem"; }

  [[nodiscard]] std::string key() const { return path + "/server.key"; }
};

}  // namespace rx::test
