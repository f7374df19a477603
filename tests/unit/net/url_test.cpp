// SPDX-License-Identifier: MIT
#include "rexec/net/url.h"

#include <catch2/catch.hpp>

using rx::net::Url;

TEST_CASE("Url parses schemes, default ports, paths and queries", "[net]") {
  auto u = Url::parse("ws://127.0.0.1:8080/ws/agent/abc?x=1");
  REQUIRE(u);
  CHECK(u->scheme == "ws");
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 8080);
  CHECK(u->path == "/ws/agent/abc?x=1");
  CHECK(u->host_header() == "127.0.0.1:8080");
  CHECK(u->origin() == "http://127.0.0.1:8080");

  auto s = Url::parse("HTTPS://example.com");
  REQUIRE(s);
  CHECK(s->scheme == "https");
  CHECK(s->port == 443);
  CHECK(s->path == "/");
  CHECK(s->host_header() == "example.com");
  CHECK(s->with("ws", "/ws/agent/1").scheme == "wss");

  auto q = Url::parse("http://h?token=1");
  REQUIRE(q);
  CHECK(q->path == "/?token=1");
}

TEST_CASE("Url handles IPv6 literals", "[net]") {
  auto u = Url::parse("wss://[::1]:9443/x");
  REQUIRE(u);
  CHECK(u->host == "::1");
  CHECK(u->port == 9443);
  CHECK(u->host_header() == "[::1]:9443");
}

TEST_CASE("Url rejects what it cannot connect to", "[net]") {
  CHECK_FALSE(Url::parse("ftp://x"));
  CHECK_FALSE(Url::parse("localhost:8080"));
  CHECK_FALSE(Url::parse("http://:80/"));
  CHECK_FALSE(Url::parse("http://h:0/"));
  CHECK_FALSE(Url::parse("http://h:65536/"));
  CHECK_FALSE(Url::parse("http://h:12ab/"));
  CHECK_FALSE(Url::parse("http://user:pw@h/"));
  CHECK_FALSE(Url::parse("ws://[::1/"));
  CHECK(Url::parse("ftp://x").error().code == rx::Errc::kInvalidArgument);
}

TEST_CASE("url_encode keeps unreserved characters only", "[net]") {
  CHECK(rx::net::url_encode("a-b_c.d~e") == "a-b_c.d~e");
  CHECK(rx::net::url_encode("a b/c?&=") == "a%20b%2Fc%3F%26%3D");
}
