// SPDX-License-Identifier: MIT
// HttpClient streaming against a scripted HTTP peer on loopback: a raw libuv TCP server that
// answers every request with fixed bytes, so that a response can be cut short or stall, which
// no well-behaved server does on purpose.
#include "rexec/net/http_client.h"

#include <catch2/catch.hpp>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../uv_test_loop.h"

using namespace rx;
using namespace std::chrono_literals;

namespace {

using rx::test::close_loop_and_expect_empty;
using rx::test::run_until;

// Answers each request (once its head has arrived) with `reply`, then closes the connection, or
// leaves it open when `hang_up` is false. Handles are freed in their close callbacks.
class ScriptedServer {
 public:
  ScriptedServer(uv_loop_t* loop, std::string reply, bool hang_up)
      : reply_(std::move(reply)), hang_up_(hang_up) {
    listener_ = new uv_tcp_t;  // NOLINT(cppcoreguidelines-owning-memory): freed in on_closed
    REQUIRE(uv_tcp_init(loop, listener_) == 0);
    listener_->data = this;
    sockaddr_in addr{};
    REQUIRE(uv_ip4_addr("127.0.0.1", 0, &addr) == 0);
    REQUIRE(uv_tcp_bind(listener_, reinterpret_cast<const sockaddr*>(&addr), 0) == 0);
    REQUIRE(uv_listen(reinterpret_cast<uv_stream_t*>(listener_), 8, on_connection) == 0);
    sockaddr_storage bound{};
    int len = sizeof bound;
    REQUIRE(uv_tcp_getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len) == 0);
    port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  ~ScriptedServer() {
    for (Conn* c : conns_) close_conn(c);
    listener_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(listener_), on_closed);
  }

  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;
  ScriptedServer(ScriptedServer&&) = delete;
  ScriptedServer& operator=(ScriptedServer&&) = delete;

  [[nodiscard]] int port() const { return port_; }

  [[nodiscard]] std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  struct Conn {
    uv_tcp_t tcp{};
    ScriptedServer* owner = nullptr;
    std::string head;
    bool answered = false;
  };

  struct WriteReq {
    uv_write_t req{};
    std::string bytes;
    Conn* conn = nullptr;
  };

  static void on_closed(uv_handle_t* h) {
    if (h->data == nullptr) {
      delete reinterpret_cast<uv_tcp_t*>(h);  // NOLINT(cppcoreguidelines-owning-memory)
      return;
    }
    delete static_cast<Conn*>(h->data);  // NOLINT(cppcoreguidelines-owning-memory)
  }

  void close_conn(Conn* c) {
    c->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_closed);
  }

  static void on_connection(uv_stream_t* server, int status) {
    if (status != 0) return;
    auto* self = static_cast<ScriptedServer*>(server->data);
    auto* c = new Conn;  // NOLINT(cppcoreguidelines-owning-memory): freed in on_closed
    c->owner = self;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    self->conns_.push_back(c);
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) return;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->tcp),
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char block[65536];
          *buf = uv_buf_init(block, sizeof block);
        },
        on_read);
  }

  static void on_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    auto* c = static_cast<Conn*>(stream->data);
    if (n <= 0 || c->owner == nullptr || c->answered) return;
    c->head.append(buf->base, static_cast<std::size_t>(n));
    if (c->head.find("\r\n\r\n") == std::string::npos) return;
    c->answered = true;
    if (c->owner->reply_.empty()) return;  // never answer
    auto* w = new WriteReq;  // NOLINT(cppcoreguidelines-owning-memory): freed in the callback
    w->bytes = c->owner->reply_;
    w->conn = c;
    uv_buf_t out = uv_buf_init(w->bytes.data(), static_cast<unsigned int>(w->bytes.size()));
    uv_write(&w->req, stream, &out, 1, [](uv_write_t* req, int) {
      auto* done = reinterpret_cast<WriteReq*>(req);
      Conn* conn = done->conn;
      delete done;  // NOLINT(cppcoreguidelines-owning-memory)
      ScriptedServer* owner = conn->owner;
      if (owner == nullptr || !owner->hang_up_) return;
      auto& conns = owner->conns_;
      conns.erase(std::remove(conns.begin(), conns.end(), conn), conns.end());
      owner->close_conn(conn);  // a clean FIN, as a server that gives up mid-body sends
    });
  }

  uv_tcp_t* listener_ = nullptr;
  std::string reply_;
  bool hang_up_;
  int port_ = 0;
  std::vector<Conn*> conns_;
};

std::string response_head(std::uint64_t content_length, const std::string& extra = {}) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
         std::to_string(content_length) + "\r\n" + extra + "\r\n";
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7U + i / 4096U) & 0xffU);
  return s;
}

struct Fixture {
  uv_loop_t loop{};
  std::unique_ptr<net::LwsContext> ctx;

  Fixture() {
    REQUIRE(uv_loop_init(&loop) == 0);
    net::ContextOptions c;
    c.loop = &loop;
    auto made = net::LwsContext::create(c);
    REQUIRE(made);
    ctx = std::move(made).value();
  }

  // Runs `req` with a fresh client and returns what its callback got.
  Result<net::HttpResponse> run(net::HttpRequest req, std::chrono::milliseconds timeout = 10s) {
    net::HttpClient client(*ctx);
    std::optional<Result<net::HttpResponse>> got;
    REQUIRE(
        client.request(std::move(req), [&](Result<net::HttpResponse> r) { got = std::move(r); }));
    REQUIRE(run_until(
        &loop, [&] { return got.has_value(); }, timeout));
    return std::move(*got);
  }

  void teardown() {
    ctx.reset();
    close_loop_and_expect_empty(&loop);
  }
};

}  // namespace

TEST_CASE("HttpClient streams a response body to on_body with its length and headers", "[net]") {
  Fixture f;
  const std::string body = pattern(3U << 20U);
  {
    ScriptedServer server(&f.loop, response_head(body.size(), "X-Rexec-Mode: 0755\r\n") + body,
                          true);
    net::HttpRequest req;
    req.url = *net::Url::parse(server.url("/file"));
    req.response_headers = {"x-rexec-mode", "x-absent"};
    std::string received;
    int pieces = 0;
    std::optional<std::uint64_t> length_at_headers;
    req.on_headers = [&](const net::HttpResponse& head) {
      length_at_headers = head.content_length;
      return true;
    };
    req.on_body = [&](std::string_view piece) {
      received.append(piece);
      ++pieces;
      return true;
    };
    auto r = f.run(std::move(req));
    REQUIRE(r.has_value());
    CHECK(r->status == 200);
    CHECK(r->body.empty());
    CHECK(r->content_length == body.size());
    CHECK(r->body_bytes == body.size());
    CHECK(length_at_headers == body.size());
    CHECK(r->header("x-rexec-mode") == "0755");
    CHECK_FALSE(r->header("x-absent").has_value());
    CHECK(received == body);
    CHECK(pieces > 1);
  }
  f.teardown();
}

TEST_CASE("HttpClient buffers an error body even when on_body is set", "[net]") {
  Fixture f;
  const std::string json = R"({"error":"no such file"})";
  {
    ScriptedServer server(&f.loop,
                          "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                          "Content-Length: " +
                              std::to_string(json.size()) + "\r\n\r\n" + json,
                          true);
    net::HttpRequest req;
    req.url = *net::Url::parse(server.url("/file"));
    bool sink_called = false;
    req.on_body = [&](std::string_view) {
      sink_called = true;
      return true;
    };
    auto r = f.run(std::move(req));
    REQUIRE(r.has_value());
    CHECK(r->status == 404);
    CHECK(r->body == json);
    CHECK_FALSE(sink_called);
  }
  f.teardown();
}

TEST_CASE("A response cut short before its Content-Length is an error, not a short body", "[net]") {
  Fixture f;
  const std::string part = pattern(100000);
  {
    ScriptedServer server(&f.loop, response_head(1U << 20U) + part, true);
    SECTION("streamed") {
      net::HttpRequest req;
      req.url = *net::Url::parse(server.url("/file"));
      std::uint64_t received = 0;
      req.on_body = [&](std::string_view piece) {
        received += piece.size();
        return true;
      };
      auto r = f.run(std::move(req));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code == Errc::kUnavailable);
      CHECK_THAT(r.error().message, Catch::Contains("100000 of 1048576 bytes"));
      CHECK(received == part.size());
    }
    SECTION("buffered") {
      net::HttpRequest req;
      req.url = *net::Url::parse(server.url("/file"));
      auto r = f.run(std::move(req));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code == Errc::kUnavailable);
    }
  }
  f.teardown();
}

TEST_CASE("on_body returning false ends the request with kClosed", "[net]") {
  Fixture f;
  const std::string body = pattern(1U << 20U);
  {
    ScriptedServer server(&f.loop, response_head(body.size()) + body, true);
    net::HttpRequest req;
    req.url = *net::Url::parse(server.url("/file"));
    int calls = 0;
    req.on_body = [&](std::string_view) { return ++calls < 2; };
    auto r = f.run(std::move(req));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::kClosed);
    CHECK(calls == 2);
  }
  f.teardown();
}

TEST_CASE("idle_timeout ends a transfer that stops making progress", "[net]") {
  Fixture f;
  {
    // Half a body, then silence with the connection open.
    ScriptedServer server(&f.loop, response_head(1000) + std::string(500, 'x'), false);
    net::HttpRequest req;
    req.url = *net::Url::parse(server.url("/file"));
    req.idle_timeout = 300ms;
    req.on_body = [](std::string_view) { return true; };
    const auto start = std::chrono::steady_clock::now();
    auto r = f.run(std::move(req));
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::kTimeout);
    CHECK(took >= 300ms);
    CHECK(took < 3s);
  }
  f.teardown();
}

TEST_CASE("idle_timeout outlasts lws's own 5 s wait for an answer", "[net][slow]") {
  Fixture f;
  const std::string body = pattern(4096);
  {
    // A server that takes the whole body and never answers: lws alone closes the connection 5 s
    // after the headers went out; with idle_timeout 7 s the request must live past that and end
    // with kTimeout, not with "connection closed before a response".
    ScriptedServer server(&f.loop, "", false);
    net::HttpRequest req;
    req.method = "PUT";
    req.url = *net::Url::parse(server.url("/file"));
    req.idle_timeout = 7s;
    req.body_length = body.size();
    std::size_t offset = 0;
    req.body_source = [&](std::size_t max) -> Result<std::string> {
      std::string piece = body.substr(offset, max);
      offset += piece.size();
      return piece;
    };
    const auto start = std::chrono::steady_clock::now();
    auto r = f.run(std::move(req), 15s);
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::kTimeout);
    CHECK(took >= 7s);
    CHECK(offset == body.size());
  }
  f.teardown();
}

TEST_CASE("fetch_blocking with no overall timeout still ends", "[net]") {
  const std::string body = pattern(200000);
  uv_loop_t loop{};
  REQUIRE(uv_loop_init(&loop) == 0);
  // The scripted server needs a loop of its own, on another thread, since fetch_blocking runs
  // a private loop on this one.
  std::optional<ScriptedServer> server;
  server.emplace(&loop, response_head(body.size()) + body, true);
  const std::string url = server->url("/file");
  uv_async_t stop;
  uv_async_init(&loop, &stop, [](uv_async_t* a) { uv_stop(a->loop); });
  std::thread peer([&] { uv_run(&loop, UV_RUN_DEFAULT); });
  net::HttpRequest req;
  req.url = *net::Url::parse(url);
  req.idle_timeout = 5s;
  std::uint64_t received = 0;
  req.on_body = [&](std::string_view piece) {
    received += piece.size();
    return true;
  };
  auto r = net::fetch_blocking(std::move(req), {}, std::chrono::milliseconds(0));
  uv_async_send(&stop);
  peer.join();
  REQUIRE(r.has_value());
  CHECK(r->status == 200);
  CHECK(received == body.size());
  server.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
  close_loop_and_expect_empty(&loop);
}
