// SPDX-License-Identifier: MIT
// Streamed HttpClient transfers against HttpServer on one loop: an upload pulled from a body
// source and a download pushed to a sink, several MiB each, over real loopback sockets.
#include "rexec/net/http_client.h"
#include "rexec/server/http_server.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "../uv_test_loop.h"

using namespace rx;
using namespace std::chrono_literals;

namespace {

using rx::test::close_loop_and_expect_empty;
using rx::test::run_until;

// FNV-1a, 64 bits: enough to tell that every byte arrived in order.
struct Fnv {
  std::uint64_t h = 14695981039346656037ULL;

  void add(std::string_view bytes) {
    for (const char c : bytes) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
  }
};

// Byte i of a test body: not periodic at any power of two, so a dropped or repeated piece shows.
char byte_at(std::uint64_t i) { return static_cast<char>((i * 31U + i / 65537U) & 0xffU); }

std::string body_piece(std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t k = 0; k < n; ++k) s[k] = byte_at(offset + k);
  return s;
}

constexpr std::uint64_t kUploadBytes = 8U << 20U;
constexpr std::size_t kDownloadBytes = 6U << 20U;

struct Fixture {
  uv_loop_t loop{};
  std::unique_ptr<server::HttpServer> http;
  std::unique_ptr<net::LwsContext> client_ctx;

  Fixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    server::HttpServerOptions o;
    o.loop = &loop;
    o.port = 0;
    o.max_body_bytes = kUploadBytes + 1024;
    server::HttpHandlers h;
    h.on_request = [](const server::HttpRequest& r) {
      if (r.method == "PUT") {
        Fnv sum;
        sum.add(r.body);
        return server::HttpResponse::json(200, R"({"size":)" + std::to_string(r.body.size()) +
                                                   R"(,"sum":")" + std::to_string(sum.h) + R"("})");
      }
      server::HttpResponse res{200, body_piece(0, kDownloadBytes), "application/octet-stream", {}};
      res.headers.emplace_back("x-rexec-mode", "0640");
      return res;
    };
    h.on_upgrade = [](const server::HttpRequest&) { return server::UpgradeDecision{}; };
    auto s = server::HttpServer::start(o, std::move(h));
    REQUIRE(s);
    http = std::move(s).value();
    net::ContextOptions c;
    c.loop = &loop;
    auto ctx = net::LwsContext::create(c);
    REQUIRE(ctx);
    client_ctx = std::move(ctx).value();
  }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(http->port()) + path;
  }

  Result<net::HttpResponse> run(net::HttpRequest req) {
    net::HttpClient client(*client_ctx);
    std::optional<Result<net::HttpResponse>> got;
    REQUIRE(
        client.request(std::move(req), [&](Result<net::HttpResponse> r) { got = std::move(r); }));
    REQUIRE(run_until(
        &loop, [&] { return got.has_value(); }, 30s));
    return std::move(*got);
  }

  void teardown() {
    client_ctx.reset();
    http.reset();
    close_loop_and_expect_empty(&loop);
  }
};

}  // namespace

TEST_CASE("HttpClient uploads 8 MiB from a body source in bounded pieces", "[server]") {
  Fixture f;
  net::HttpRequest put;
  put.method = "PUT";
  put.url = *net::Url::parse(f.url("/upload"));
  put.content_type = "application/octet-stream";
  put.idle_timeout = 10s;
  put.body_length = kUploadBytes;
  std::uint64_t offset = 0;
  std::size_t largest_ask = 0;
  int pieces = 0;
  Fnv sent;
  put.body_source = [&](std::size_t max) -> Result<std::string> {
    largest_ask = std::max(largest_ask, max);
    ++pieces;
    // Less than asked now and then: a source may return short pieces.
    const std::size_t n = pieces % 3 == 0 ? max / 2 + 1 : max;
    std::string piece = body_piece(offset, n);
    offset += n;
    sent.add(piece);
    return piece;
  };
  auto r = f.run(std::move(put));
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(offset == kUploadBytes);
  CHECK(largest_ask == net::kBodyPieceBytes);
  CHECK(r->body == R"({"size":)" + std::to_string(kUploadBytes) + R"(,"sum":")" +
                       std::to_string(sent.h) + R"("})");
  f.teardown();
}

TEST_CASE("A body source error ends the upload with that error", "[server]") {
  Fixture f;
  net::HttpRequest put;
  put.method = "PUT";
  put.url = *net::Url::parse(f.url("/upload"));
  put.body_length = 1U << 20U;
  int pieces = 0;
  put.body_source = [&](std::size_t max) -> Result<std::string> {
    if (++pieces == 3) return Error(Errc::kSystem, "read: Input/output error");
    return std::string(max, 'x');
  };
  auto r = f.run(std::move(put));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == Errc::kSystem);
  CHECK(r.error().message == "read: Input/output error");
  f.teardown();
}

TEST_CASE("HttpClient downloads 6 MiB into on_body with Content-Length and a custom header",
          "[server]") {
  Fixture f;
  net::HttpRequest get;
  get.url = *net::Url::parse(f.url("/download"));
  get.idle_timeout = 10s;
  get.response_headers = {"x-rexec-mode"};
  get.max_response_bytes = 1024;  // a streamed body is not bound by it
  Fnv got;
  std::uint64_t received = 0;
  get.on_body = [&](std::string_view piece) {
    got.add(piece);
    received += piece.size();
    return true;
  };
  auto r = f.run(std::move(get));
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(r->content_length == kDownloadBytes);
  CHECK(r->body_bytes == kDownloadBytes);
  CHECK(received == kDownloadBytes);
  CHECK(r->header("x-rexec-mode") == "0640");
  Fnv expected;
  expected.add(body_piece(0, kDownloadBytes));
  CHECK(got.h == expected.h);
  f.teardown();
}
