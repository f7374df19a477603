// SPDX-License-Identifier: MIT
// Url: the parts of an http(s):// or ws(s):// URL that a libwebsockets client connection needs.
#pragma once

#include "rexec/common/result.h"

#include <string>
#include <string_view>

namespace rx::net {

struct Url {
  std::string scheme;  // "http", "https", "ws" or "wss", lower case
  std::string host;    // a name, an IPv4 address, or an IPv6 address without brackets
  int port = 0;        // explicit, or the scheme's default (80 / 443)
  std::string path;    // starts with '/'; includes the query string, if any

  [[nodiscard]] bool is_tls() const { return scheme == "https" || scheme == "wss"; }

  // "host:port", or just "host" for the scheme's default port; IPv6 in brackets. The value of
  // the Host header.
  [[nodiscard]] std::string host_header() const;

  // "scheme://host[:port]/path".
  [[nodiscard]] std::string to_string() const { return scheme + "://" + host_header() + path; }

  // "http://host[:port]" (or https): the Origin a browser on this server would send.
  [[nodiscard]] std::string origin() const;

  // The same server with another scheme family and path, e.g. ws → http for a REST call.
  [[nodiscard]] Url with(std::string_view scheme_family_of, std::string_view new_path) const;

  // Parses an absolute URL. Errors: kInvalidArgument for an unknown scheme, a missing host, a
  // bad port, or user-info (credentials in URLs are refused so they are never logged).
  static Result<Url> parse(std::string_view text);
};

// Percent-encodes `s` for use inside a query value (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view s);

}  // namespace rx::net
