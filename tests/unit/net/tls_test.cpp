// SPDX-License-Identifier: MIT
#include "rexec/net/tls.h"

#include <catch2/catch.hpp>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <map>
#include <set>

using rx::net::find_trust_anchors;
using rx::net::TrustSearch;

namespace {

// A file system of named files and directories, and an environment, for the search.
TrustSearch fake(std::set<std::string> files, std::set<std::string> dirs,
                 std::map<std::string, std::string> env = {}, std::string ca_file = {},
                 std::set<std::string> hashed = {}) {
  TrustSearch s;
  s.ca_file = std::move(ca_file);
  s.getenv = [env = std::move(env)](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  s.is_file = [files = std::move(files)](const std::string& p) { return files.count(p) > 0; };
  s.is_dir = [dirs = std::move(dirs)](const std::string& p) { return dirs.count(p) > 0; };
  s.is_hashed_dir = [hashed = std::move(hashed)](const std::string& p) {
    return hashed.count(p) > 0;
  };
  return s;
}

}  // namespace

TEST_CASE("trust anchors: each distribution's bundle is found", "[net][tls]") {
  const std::pair<const char*, const char*> distros[] = {
      {"debian", "/etc/ssl/certs/ca-certificates.crt"},
      {"rhel7", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"},
      {"fedora", "/etc/pki/tls/certs/ca-bundle.crt"},
      {"alpine", "/etc/ssl/cert.pem"},
      {"suse", "/var/lib/ca-certificates/ca-bundle.pem"},
      {"opensuse", "/etc/ssl/ca-bundle.pem"},
      {"arch", "/etc/ca-certificates/extracted/tls-ca-bundle.pem"},
  };
  for (const auto& [name, bundle] : distros) {
    INFO(name);
    auto a = find_trust_anchors(fake({bundle}, {}));
    REQUIRE(a);
    CHECK(a->file == bundle);
    CHECK(a->dir.empty());
  }
}

TEST_CASE("trust anchors: a hashed directory before a bundle, the bundle before a plain one",
          "[net][tls]") {
  const std::string bundle = "/etc/ssl/certs/ca-certificates.crt";
  // Debian: both, and the directory holds hash links: only the CAs a handshake needs are read.
  auto debian = find_trust_anchors(fake({bundle}, {"/etc/ssl/certs"}, {}, {}, {"/etc/ssl/certs"}));
  REQUIRE(debian);
  CHECK(debian->dir == "/etc/ssl/certs");
  CHECK(debian->file.empty());
  // RHEL: a directory without hash links, and a bundle: the bundle.
  const std::string rhel = "/etc/pki/tls/certs/ca-bundle.crt";
  auto plain = find_trust_anchors(fake({rhel}, {"/etc/pki/tls/certs"}));
  REQUIRE(plain);
  CHECK(plain->file == rhel);
  CHECK(plain->dir.empty());
  // The environment still wins over a hashed directory.
  auto env = find_trust_anchors(
      fake({bundle, "/x/ca.pem"}, {}, {{"SSL_CERT_FILE", "/x/ca.pem"}}, {}, {"/etc/ssl/certs"}));
  REQUIRE(env);
  CHECK(env->file == "/x/ca.pem");
  CHECK(env->dir.empty());
}

TEST_CASE("trust anchors: the real search finds this machine's hashed /etc/ssl/certs",
          "[net][tls]") {
  auto a = rx::net::find_trust_anchors(std::string());
  REQUIRE(a);
  CHECK(a->dir == "/etc/ssl/certs");  // Debian 12 with ca-certificates, as CI installs it
}

TEST_CASE("trust anchors: --ca-file wins and must exist", "[net][tls]") {
  auto a = find_trust_anchors(fake({"/etc/ssl/certs/ca-certificates.crt", "/opt/ca.pem"}, {},
                                   {{"SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"}},
                                   "/opt/ca.pem"));
  REQUIRE(a);
  CHECK(a->file == "/opt/ca.pem");

  auto missing =
      find_trust_anchors(fake({"/etc/ssl/certs/ca-certificates.crt"}, {}, {}, "/nope.pem"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == rx::Errc::kNotFound);
  CHECK(missing.error().message.find("/nope.pem") != std::string::npos);
}

TEST_CASE("trust anchors: SSL_CERT_FILE and SSL_CERT_DIR are honoured", "[net][tls]") {
  auto a = find_trust_anchors(fake({"/etc/ssl/certs/ca-certificates.crt", "/x/ca.pem"}, {"/x/d"},
                                   {{"SSL_CERT_FILE", "/x/ca.pem"}, {"SSL_CERT_DIR", "/x/d"}}));
  REQUIRE(a);
  CHECK(a->file == "/x/ca.pem");
  CHECK(a->dir == "/x/d");

  auto dir_only = find_trust_anchors(
      fake({"/etc/ssl/certs/ca-certificates.crt"}, {"/x/d"}, {{"SSL_CERT_DIR", "/x/d"}}));
  REQUIRE(dir_only);
  CHECK(dir_only->file.empty());
  CHECK(dir_only->dir == "/x/d");

  auto bad = find_trust_anchors(fake({}, {}, {{"SSL_CERT_FILE", "/gone.pem"}}));
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("SSL_CERT_FILE=/gone.pem") != std::string::npos);
}

TEST_CASE("trust anchors: a directory when no bundle, a clear error when nothing", "[net][tls]") {
  auto a = find_trust_anchors(fake({}, {"/etc/pki/tls/certs"}));
  REQUIRE(a);
  CHECK(a->dir == "/etc/pki/tls/certs");
  CHECK(a->describe() == "the directory /etc/pki/tls/certs");

  auto none = find_trust_anchors(fake({}, {}));
  REQUIRE_FALSE(none);
  CHECK(none.error().code == rx::Errc::kNotFound);
  CHECK(none.error().message.find("--ca-file") != std::string::npos);
}

TEST_CASE("verification failures read as one sentence naming host and reason", "[net][tls]") {
  rx::net::TrustAnchors a;
  a.file = "/etc/ssl/certs/ca-certificates.crt";
  CHECK(rx::net::verify_failure_sentence("rexec.example.com", X509_V_ERR_HOSTNAME_MISMATCH, a) ==
        "cannot verify the TLS certificate of rexec.example.com: the certificate was issued for "
        "another name (hostname mismatch)");
  const auto untrusted =
      rx::net::verify_failure_sentence("10.0.0.5", X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, a);
  CHECK(untrusted.rfind("cannot verify the TLS certificate of 10.0.0.5: it is not signed by a CA "
                        "this machine trusts (unable to get local issuer certificate; trusted CAs: "
                        "/etc/ssl/certs/ca-certificates.crt",
                        0) == 0);
  CHECK(rx::net::verify_failure_sentence("h", X509_V_ERR_CERT_HAS_EXPIRED, a) ==
        "cannot verify the TLS certificate of h: the certificate has expired");
}

TEST_CASE("client SSL_CTX: verification on, unreadable anchors refused", "[net][tls]") {
  rx::net::TrustAnchors none;
  auto ctx = rx::net::make_client_ssl_ctx(none);
  REQUIRE(ctx);
  CHECK((SSL_CTX_get_verify_mode(*ctx) & SSL_VERIFY_PEER) != 0);
  CHECK(SSL_CTX_get_min_proto_version(*ctx) == TLS1_2_VERSION);
  SSL_CTX_free(*ctx);

  rx::net::TrustAnchors bad;
  bad.file = std::string(REXEC_FIXTURES_DIR) + "/proc/README.md";  // a file, but not PEM
  auto refused = rx::net::make_client_ssl_ctx(bad);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == rx::Errc::kConfig);
  CHECK(refused.error().message.find("README.md") != std::string::npos);
}
