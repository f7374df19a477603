// SPDX-License-Identifier: MIT
// TestCerts: the openssl CLI makes the CA and the server certificate.
#include "test_certs.h"

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

#include "process.h"

namespace rx::test {

namespace {

// openssl req's -newkey (and -pkeyopt) arguments for `type`.
std::string newkey(KeyType type) {
  switch (type) {
    case KeyType::kEcP384:
      return "-newkey ec -pkeyopt ec_paramgen_curve:secp384r1";
    case KeyType::kRsa2048:
      return "-newkey rsa:2048";
    case KeyType::kEd25519:
      return "-newkey ed25519";
    case KeyType::kEcP256:
      break;
  }
  return "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
}

}  // namespace

TestCerts::TestCerts(KeyType type) {
  char tmpl[] = "/tmp/rexec-tls-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
  path = tmpl;
  const std::string key = newkey(type);
  const std::string script = R"(set -e
cd ")" + path + R"("
openssl req -x509 )" + key + R"( -nodes -days 2 \
  -keyout ca.key -out ca.pem -subj /CN=rexec-test-ca 2>/dev/null
openssl req -x509 )" + key + R"( -nodes -days 2 \
  -keyout other-ca.key -out other-ca.pem -subj /CN=rexec-other-ca 2>/dev/null
openssl req )" + key + R"( -nodes \
  -keyout server.key -out server.csr -subj /CN=rexec.test 2>/dev/null
printf 'subjectAltName=DNS:rexec.test,IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile ext.cnf -out server.pem 2>/dev/null
)";
  const auto r = run_program({"/bin/sh", "-c", script}, path + "/openssl.log");
  if (r.exit_code != 0) {
    const std::string log = read_file(path + "/openssl.log");
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    throw std::runtime_error("openssl failed: " + log);
  }
}

TestCerts::~TestCerts() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace rx::test
