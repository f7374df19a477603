// SPDX-License-Identifier: MIT
// Trust-anchor discovery for a static binary (OpenSSL's compiled-in /usr/lib/ssl exists only on
// Debian), the client SSL_CTX handed to lws, and verification failures in plain words.
#include "rexec/net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace rx::net {

// Go's crypto/x509 searches the same places (root_linux.go); the order decides only which of
// several present bundles wins, and on a given distribution they hold the same certificates.
const char* const kCaBundleFiles[] = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Gentoo, Arch
    "/etc/pki/tls/certs/ca-bundle.crt",                   // Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",                             // openSUSE
    "/etc/pki/tls/cacert.pem",                            // OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // CentOS, RHEL 7+
    "/etc/ssl/cert.pem",                                  // Alpine
    "/var/lib/ca-certificates/ca-bundle.pem",             // SUSE
    "/etc/ca-certificates/extracted/tls-ca-bundle.pem",   // Arch
    nullptr,
};

const char* const kCaBundleDirs[] = {
    "/etc/ssl/certs",      // SLES, and Debian's hashed links
    "/etc/pki/tls/certs",  // Fedora, RHEL
    nullptr,
};

std::string TrustAnchors::describe() const {
  if (!file.empty() && !dir.empty()) return file + " and the directory " + dir;
  if (!file.empty()) return file;
  if (!dir.empty()) return "the directory " + dir;
  return "no CA certificates";
}

Result<TrustAnchors> find_trust_anchors(const TrustSearch& search) {
  TrustAnchors a;
  if (!search.ca_file.empty()) {
    if (!search.is_file(search.ca_file)) {
      return Error(Errc::kNotFound, "CA file " + search.ca_file + " is not a readable file");
    }
    a.file = search.ca_file;
    return a;
  }
  const auto env_file = search.getenv("SSL_CERT_FILE");
  const auto env_dir = search.getenv("SSL_CERT_DIR");
  if ((env_file && !env_file->empty()) || (env_dir && !env_dir->empty())) {
    if (env_file && !env_file->empty()) {
      if (!search.is_file(*env_file)) {
        return Error(Errc::kNotFound, "SSL_CERT_FILE=" + *env_file + " is not a readable file");
      }
      a.file = *env_file;
    }
    if (env_dir && !env_dir->empty()) {
      // OpenSSL accepts a colon-separated list here; one directory is what anyone sets.
      a.dir = *env_dir;
    }
    return a;
  }
  for (const char* const* p = kCaBundleDirs; *p != nullptr; ++p) {
    if (search.is_hashed_dir && search.is_hashed_dir(*p)) {
      a.dir = *p;
      return a;
    }
  }
  for (const char* const* p = kCaBundleFiles; *p != nullptr; ++p) {
    if (search.is_file(*p)) {
      a.file = *p;
      return a;
    }
  }
  for (const char* const* p = kCaBundleDirs; *p != nullptr; ++p) {
    if (search.is_dir(*p)) {
      a.dir = *p;
      return a;
    }
  }
  return Error(Errc::kNotFound,
               "no CA certificates found (looked for /etc/ssl/certs/ca-certificates.crt and the "
               "RHEL, SUSE, Alpine and Arch bundles): install the ca-certificates package or pass "
               "--ca-file");
}

Result<TrustAnchors> find_trust_anchors(const std::string& ca_file) {
  TrustSearch s;
  s.ca_file = ca_file;
  s.getenv = [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
    return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
  };
  s.is_file = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), R_OK) == 0;
  };
  s.is_dir = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  s.is_hashed_dir = [](const std::string& path) {
    DIR* d = ::opendir(path.c_str());
    if (d == nullptr) return false;
    bool hashed = false;
    while (const dirent* e = ::readdir(d)) {
      // "<8 hex digits>.<digit>": OpenSSL's subject-hash name of a CA certificate.
      const std::string_view n(e->d_name);
      if (n.size() == 10 && n[8] == '.' && n[9] >= '0' && n[9] <= '9' &&
          n.substr(0, 8).find_first_not_of("0123456789abcdef") == std::string_view::npos) {
        hashed = true;
        break;
      }
    }
    ::closedir(d);
    return hashed;
  };
  return find_trust_anchors(s);
}

Result<SSL_CTX*> make_client_ssl_ctx(const TrustAnchors& anchors) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Error(Errc::kInternal, "SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  const char* file = anchors.file.empty() ? nullptr : anchors.file.c_str();
  const char* dir = anchors.dir.empty() ? nullptr : anchors.dir.c_str();
  if ((file != nullptr || dir != nullptr) && SSL_CTX_load_verify_locations(ctx, file, dir) != 1) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return Error(Errc::kConfig, "cannot load CA certificates from " + anchors.describe());
  }
  return ctx;
}

std::string verify_failure_sentence(std::string_view host, int x509_error,
                                    const TrustAnchors& anchors) {
  std::string reason;
  switch (x509_error) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      reason = "the certificate was issued for another name (hostname mismatch)";
      break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      reason = std::string("it is not signed by a CA this machine trusts (") +
               X509_verify_cert_error_string(x509_error) + "; trusted CAs: " + anchors.describe() +
               "; pass --ca-file to add one)";
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      reason = "the certificate has expired";
      break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      reason = "the certificate is not valid yet (is this machine's clock right?)";
      break;
    default:
      reason = X509_verify_cert_error_string(x509_error);
      break;
  }
  return "cannot verify the TLS certificate of " + std::string(host) + ": " + reason;
}

}  // namespace rx::net
