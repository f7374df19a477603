// SPDX-License-Identifier: MIT
// URL parsing for client connections. Deliberately small: absolute http/ws URLs only.
#include "rexec/net/url.h"

#include <charconv>

namespace rx::net {

namespace {

bool is_tls_scheme(std::string_view s) { return s == "https" || s == "wss"; }

int default_port(std::string_view scheme) { return is_tls_scheme(scheme) ? 443 : 80; }

}  // namespace

std::string Url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != default_port(scheme)) h += ":" + std::to_string(port);
  return h;
}

std::string Url::origin() const {
  return std::string(is_tls() ? "https" : "http") + "://" + host_header();
}

Url Url::with(std::string_view scheme_family_of, std::string_view new_path) const {
  Url u = *this;
  const bool tls = is_tls();
  if (scheme_family_of == "ws" || scheme_family_of == "wss") {
    u.scheme = tls ? "wss" : "ws";
  } else {
    u.scheme = tls ? "https" : "http";
  }
  u.path = std::string(new_path);
  return u;
}

Result<Url> Url::parse(std::string_view text) {
  Url url;
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) {
    return Error(Errc::kInvalidArgument, "URL must start with http://, https://, ws:// or wss://");
  }
  for (char c : text.substr(0, sep)) {
    url.scheme += static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  }
  if (url.scheme != "http" && url.scheme != "https" && url.scheme != "ws" && url.scheme != "wss") {
    return Error(Errc::kInvalidArgument, "unsupported URL scheme '" + url.scheme + "'");
  }
  std::string_view rest = text.substr(sep + 3);
  const auto path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  if (path_start == std::string_view::npos) {
    url.path = "/";
  } else {
    url.path = std::string(rest.substr(path_start));
    if (url.path[0] == '?') url.path.insert(0, "/");
  }
  if (authority.find('@') != std::string_view::npos) {
    return Error(Errc::kInvalidArgument, "credentials in the URL are not supported");
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return Error(Errc::kInvalidArgument, "unterminated IPv6 address in URL");
    }
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Error(Errc::kInvalidArgument, "bad text after IPv6 host");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) return Error(Errc::kInvalidArgument, "URL has no host");
  url.port = default_port(url.scheme);
  if (!port_text.empty()) {
    int port = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port < 1 ||
        port > 65535) {
      return Error(Errc::kInvalidArgument, "bad port in URL");
    }
    url.port = port;
  }
  return url;
}

std::string url_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4U];
      out += kHex[c & 0xFU];
    }
  }
  return out;
}

}  // namespace rx::net
