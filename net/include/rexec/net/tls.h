// SPDX-License-Identifier: MIT
// Client TLS: which CA certificates to trust, a client SSL_CTX that trusts them, and the one
// sentence a person reads when a server's certificate is refused. Verification is always on;
// nothing here can turn it off.
#pragma once

#include "rexec/common/result.h"

#include <openssl/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace rx::net {

// The trust anchors of client connections. Either or both may be set.
struct TrustAnchors {
  std::string file;  // a PEM bundle
  std::string dir;   // an OpenSSL hashed directory (c_rehash / openssl rehash)

  [[nodiscard]] bool empty() const { return file.empty() && dir.empty(); }

  // For messages: "/etc/ssl/certs/ca-certificates.crt", "the directory /etc/ssl/certs", ...
  [[nodiscard]] std::string describe() const;
};

// The bundles and directories of the distributions a static binary meets, most common first:
// Debian/Ubuntu/Arch, RHEL/Fedora/CentOS, SUSE, Alpine. Exposed for tests and docs.
extern const char* const kCaBundleFiles[];
extern const char* const kCaBundleDirs[];

struct TrustSearch {
  std::string ca_file;  // --ca-file: when set, the only source
  std::function<std::optional<std::string>(const char*)> getenv;  // SSL_CERT_FILE, SSL_CERT_DIR
  std::function<bool(const std::string&)> is_file;                // injected for tests
  std::function<bool(const std::string&)> is_dir;
  // A directory of OpenSSL hash links ("9d1a7b3e.0"), as c_rehash and update-ca-certificates
  // make them.
  std::function<bool(const std::string&)> is_hashed_dir;
};

// Where the trust comes from, in order: `ca_file`; else SSL_CERT_FILE and/or SSL_CERT_DIR (as
// OpenSSL reads them); else the first of kCaBundleDirs that holds hash links; else the first of
// kCaBundleFiles that exists; else the first of kCaBundleDirs. A hashed directory comes before a
// bundle because OpenSSL then reads only the CA certificates a handshake needs, when it needs
// them: a bundle is parsed whole and kept, about 0.86 MB of memory for Debian's 144 CAs against
// 0.3 MB. Errors: kNotFound when `ca_file` or SSL_CERT_FILE names no readable file, or when
// nothing is found at all (the message says what to install or pass).
Result<TrustAnchors> find_trust_anchors(const TrustSearch& search);

// find_trust_anchors() with the process environment and the real file system.
Result<TrustAnchors> find_trust_anchors(const std::string& ca_file);

// A client context (TLS 1.2 or later, peer verification on) trusting exactly `anchors`. The
// caller owns the result (SSL_CTX_free). Errors: kConfig when a file or directory cannot be
// loaded (the message names it).
Result<SSL_CTX*> make_client_ssl_ctx(const TrustAnchors& anchors);

// "cannot verify the TLS certificate of HOST: REASON", where REASON turns OpenSSL's X509_V_ERR
// `x509_error` into plain words and, for an unknown issuer, names the trusted CAs in use.
std::string verify_failure_sentence(std::string_view host, int x509_error,
                                    const TrustAnchors& anchors);

}  // namespace rx::net
