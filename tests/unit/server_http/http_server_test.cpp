// SPDX-License-Identifier: MIT
// HttpServer and the net clients against each other on one loop, over real loopback sockets.
#include "rexec/server/http_server.h"

#include "rexec/net/http_client.h"
#include "rexec/net/ws_client.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <functional>

#include "../uv_test_loop.h"

using namespace rx;
using namespace std::chrono_literals;

namespace {

using rx::test::close_loop_and_expect_empty;
using rx::test::run_until;

// Echoes every message back; closes with 4000 when told "bye".
class EchoHandler final : public server::WsHandler {
 public:
  EchoHandler(server::WsConn& conn, int& closed) : conn_(conn), closed_(closed) {}

  void on_message(std::string_view payload, bool binary) override {
    if (payload == "bye") {
      conn_.close(4000, "bye");
      return;
    }
    conn_.send(net::make_message(payload, binary));
  }

  void on_closed() override { ++closed_; }

 private:
  server::WsConn& conn_;
  int& closed_;
};

struct Fixture {
  uv_loop_t loop{};
  std::unique_ptr<server::HttpServer> http;
  std::unique_ptr<net::LwsContext> client_ctx;
  int handlers_closed = 0;
  std::string last_body;
  std::string last_subprotocol_seen;
  std::string last_peer;

  // Opens `ws` on /ws/x with the token the server takes, and waits until it is open.
  void open(net::WsClient& ws) {
    net::WsConnectOptions o;
    o.url = *net::Url::parse(url("ws", "/ws/x"));
    o.headers = {{"authorization", "Bearer good"}};
    REQUIRE(ws.connect(o));
    REQUIRE(run_until(
        &loop, [&] { return ws.is_open(); }, 5s));
  }

  explicit Fixture(std::vector<std::string> trusted_proxies = {}) {
    REQUIRE(uv_loop_init(&loop) == 0);
    server::HttpServerOptions o;
    o.trusted_proxies = std::move(trusted_proxies);
    o.loop = &loop;
    o.port = 0;
    o.max_body_bytes = 1024;
    o.max_frame_bytes = 4096;
    server::HttpHandlers h;
    h.on_request = [this](const server::HttpRequest& r) {
      last_body = r.body;
      last_peer = r.peer;
      nlohmann_like_reply_ = r.method + " " + r.path + " q=" + r.query_param("q").value_or("-") +
                             " body=" + std::to_string(r.body.size());
      return server::HttpResponse::json(r.path == "/missing" ? 404 : 200, nlohmann_like_reply_);
    };
    h.on_upgrade = [this](const server::HttpRequest& r) {
      server::UpgradeDecision d;
      last_subprotocol_seen = r.header("sec-websocket-protocol");
      if (r.header("authorization") != "Bearer good") {
        d.refusal = server::HttpResponse::json(401, R"({"error":"invalid token"})");
        return d;
      }
      d.accept = [this](server::WsConn& c) {
        return std::make_unique<EchoHandler>(c, handlers_closed);
      };
      return d;
    };
    auto s = server::HttpServer::start(o, std::move(h));
    REQUIRE(s);
    http = std::move(s).value();
    net::ContextOptions c;
    c.loop = &loop;
    auto ctx = net::LwsContext::create(c);
    REQUIRE(ctx);
    client_ctx = std::move(ctx).value();
  }

  std::string url(const std::string& scheme, const std::string& path) const {
    return scheme + "://127.0.0.1:" + std::to_string(http->port()) + path;
  }

  void teardown() {
    client_ctx.reset();
    http.reset();
    close_loop_and_expect_empty(&loop);
  }

  std::string nlohmann_like_reply_;
};

}  // namespace

TEST_CASE("HTTP GET and POST reach the handler and the response comes back", "[server]") {
  Fixture f;
  net::HttpClient client(*f.client_ctx);
  std::optional<Result<net::HttpResponse>> got;
  net::HttpRequest get;
  get.url = *net::Url::parse(f.url("http", "/api/x?q=42"));
  REQUIRE(client.request(get, [&](Result<net::HttpResponse> r) { got = std::move(r); }));
  REQUIRE(run_until(
      &f.loop, [&] { return got.has_value(); }, 5s));
  REQUIRE(got->has_value());
  CHECK((*got)->status == 200);
  CHECK((*got)->body == "GET /api/x q=42 body=0");

  got.reset();
  net::HttpRequest post;
  post.method = "POST";
  post.url = *net::Url::parse(f.url("http", "/missing"));
  post.body = R"({"name":"a"})";
  REQUIRE(client.request(post, [&](Result<net::HttpResponse> r) { got = std::move(r); }));
  REQUIRE(run_until(
      &f.loop, [&] { return got.has_value(); }, 5s));
  REQUIRE(got->has_value());
  CHECK((*got)->status == 404);
  CHECK(f.last_body == R"({"name":"a"})");

  got.reset();
  post.url = *net::Url::parse(f.url("http", "/big"));
  post.body = std::string(5000, 'x');
  REQUIRE(client.request(post, [&](Result<net::HttpResponse> r) { got = std::move(r); }));
  REQUIRE(run_until(
      &f.loop, [&] { return got.has_value(); }, 5s));
  REQUIRE(got->has_value());
  CHECK((*got)->status == 413);
  f.teardown();
}

TEST_CASE("X-Forwarded-For names the client only when a trusted proxy sends it", "[server]") {
  const auto peer_for = [](Fixture& f, const std::string& forwarded) {
    net::HttpClient client(*f.client_ctx);
    std::optional<Result<net::HttpResponse>> got;
    net::HttpRequest get;
    get.url = *net::Url::parse(f.url("http", "/api/x"));
    if (!forwarded.empty()) get.headers.emplace_back("x-forwarded-for", forwarded);
    REQUIRE(client.request(get, [&](Result<net::HttpResponse> r) { got = std::move(r); }));
    REQUIRE(run_until(
        &f.loop, [&] { return got.has_value(); }, 5s));
    return f.last_peer;
  };
  {
    Fixture f;  // no trusted proxy: the header is anyone's to forge
    CHECK(peer_for(f, "") == "127.0.0.1");
    CHECK(peer_for(f, "10.1.2.3") == "127.0.0.1");
    f.teardown();
  }
  {
    Fixture f({"127.0.0.1"});
    CHECK(peer_for(f, "") == "127.0.0.1");
    // The last entry is the one our proxy appended; earlier ones are the client's to forge.
    CHECK(peer_for(f, "10.9.9.9, 10.1.2.3") == "10.1.2.3");
    CHECK(peer_for(f, "2001:db8::7") == "2001:db8::7");
    CHECK(peer_for(f, "10.1.2.3, not-an-address") == "127.0.0.1");
    f.teardown();
  }
  {
    Fixture f({"10.0.0.1"});  // a proxy elsewhere: our loopback client is not it
    CHECK(peer_for(f, "10.1.2.3") == "127.0.0.1");
    f.teardown();
  }
}

TEST_CASE("HTTP client reports a refused connection", "[server]") {
  Fixture f;
  net::HttpClient client(*f.client_ctx);
  std::optional<Result<net::HttpResponse>> got;
  net::HttpRequest get;
  get.url = *net::Url::parse("http://127.0.0.1:1/");
  auto st = client.request(get, [&](Result<net::HttpResponse> r) { got = std::move(r); });
  if (st)
    REQUIRE(run_until(
        &f.loop, [&] { return got.has_value(); }, 5s));
  const bool failed = !st || !got->has_value();
  CHECK(failed);
  f.teardown();
}

TEST_CASE("WebSocket upgrade refused with the handler's status", "[server]") {
  Fixture f;
  std::optional<net::WsCloseInfo> closed;
  bool opened = false;
  net::WsClient ws(*f.client_ctx, {.on_open = [&](std::string_view) { opened = true; },
                                   .on_message = nullptr,
                                   .on_drain = nullptr,
                                   .on_room = nullptr,
                                   .on_pong = nullptr,
                                   .on_close = [&](const net::WsCloseInfo& i) { closed = i; }});
  net::WsConnectOptions o;
  o.url = *net::Url::parse(f.url("ws", "/ws/x"));
  o.subprotocols = "rexec.v2, rexec.v1";
  o.headers = {{"authorization", "Bearer bad"}};
  REQUIRE(ws.connect(o));
  REQUIRE(run_until(
      &f.loop, [&] { return closed.has_value(); }, 5s));
  CHECK_FALSE(opened);
  CHECK_FALSE(closed->was_open);
  CHECK(closed->http_status == 401);
  f.teardown();
}

TEST_CASE("WebSocket echo with v2 negotiation, fragments and close codes", "[server]") {
  Fixture f;
  std::vector<std::pair<std::string, bool>> received;
  std::optional<net::WsCloseInfo> closed;
  std::string selected;
  net::WsClient ws(
      *f.client_ctx,
      {.on_open = [&](std::string_view p) { selected = std::string(p); },
       .on_message = [&](std::string_view m, bool b) { received.emplace_back(std::string(m), b); },
       .on_drain = nullptr,
       .on_room = nullptr,
       .on_pong = nullptr,
       .on_close = [&](const net::WsCloseInfo& i) { closed = i; }});
  net::WsConnectOptions o;
  o.url = *net::Url::parse(f.url("ws", "/ws/x"));
  o.subprotocols = "rexec.token.abc, rexec.v2, rexec.v1";
  o.headers = {{"authorization", "Bearer good"}};
  REQUIRE(ws.connect(o));
  REQUIRE(run_until(
      &f.loop, [&] { return ws.is_open() || closed.has_value(); }, 5s));
  REQUIRE(ws.is_open());
  CHECK(selected == "rexec.v2");
  CHECK(f.last_subprotocol_seen == "rexec.token.abc, rexec.v2, rexec.v1");
  ws.send_text("hello");
  ws.send_binary(std::string("\x01\x04main\x00\xff", 8));
  ws.send_text(std::string(3000, 'z'));
  REQUIRE(run_until(
      &f.loop, [&] { return received.size() == 3; }, 5s));
  CHECK(received[0] == std::make_pair(std::string("hello"), false));
  CHECK(received[1] == std::make_pair(std::string("\x01\x04main\x00\xff", 8), true));
  CHECK(received[2].first.size() == 3000);
  ws.send_text("bye");
  REQUIRE(run_until(
      &f.loop, [&] { return closed.has_value(); }, 5s));
  CHECK(closed->was_open);
  CHECK(closed->close_code == 4000);
  REQUIRE(run_until(
      &f.loop, [&] { return f.handlers_closed == 1; }, 5s));
  f.teardown();
}

TEST_CASE("WsClient gathers bytes into the frame that waits last, and only there", "[server]") {
  Fixture f;
  std::vector<std::pair<std::string, bool>> received;
  net::WsClient ws(
      *f.client_ctx,
      {.on_open = nullptr,
       .on_message = [&](std::string_view m, bool b) { received.emplace_back(std::string(m), b); },
       .on_drain = nullptr,
       .on_room = nullptr,
       .on_pong = nullptr,
       .on_close = nullptr});
  f.open(ws);
  const std::string head("\x01\x04main", 6);
  CHECK_FALSE(ws.append_to_last(head, "x"));  // nothing waits
  // A frame with room for 6 payload bytes beyond its header: "ab", then "cd" and "ef" join it.
  net::WsMessage frame = net::make_message(head.size() + 2, true, head.size() + 6);
  std::memcpy(frame.buffer.data() + LWS_PRE, (head + "ab").data(), head.size() + 2);
  ws.send(std::move(frame));
  CHECK(ws.queued_bytes() == 8);
  CHECK(ws.append_to_last(head, "cd"));
  CHECK_FALSE(ws.append_to_last(std::string("\x01\x04side", 6), "zz"));  // another session's
  CHECK(ws.append_to_last(head, "ef"));
  CHECK_FALSE(ws.append_to_last(head, "g"));  // full
  CHECK(ws.queued_bytes() == 12);
  ws.send_text("t");
  CHECK_FALSE(ws.append_to_last(head, "h"));  // the last one is text
  REQUIRE(run_until(
      &f.loop, [&] { return received.size() == 2; }, 5s));
  CHECK(received[0] == std::make_pair(head + "abcdef", true));
  CHECK(received[1] == std::make_pair(std::string("t"), false));
  CHECK(ws.queued_bytes() == 0);
  ws.close(1000, "done");
  REQUIRE(run_until(
      &f.loop, [&] { return f.handlers_closed == 1; }, 5s));
  f.teardown();
}

TEST_CASE("oversized WebSocket message closes with 1009", "[server]") {
  Fixture f;
  std::optional<net::WsCloseInfo> closed;
  net::WsClient ws(*f.client_ctx, {.on_open = nullptr,
                                   .on_message = nullptr,
                                   .on_drain = nullptr,
                                   .on_room = nullptr,
                                   .on_pong = nullptr,
                                   .on_close = [&](const net::WsCloseInfo& i) { closed = i; }});
  f.open(ws);
  ws.send_text(std::string(10000, 'q'));
  REQUIRE(run_until(
      &f.loop, [&] { return closed.has_value(); }, 5s));
  CHECK(closed->close_code == 1009);
  REQUIRE(run_until(
      &f.loop, [&] { return f.handlers_closed == 1; }, 5s));
  f.teardown();
}
