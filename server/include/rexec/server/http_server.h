// SPDX-License-Identifier: MIT
// HttpServer: the lws plumbing of rexec-server. It parses HTTP requests and WebSocket upgrades
// into plain values, hands them to the application's handlers, writes their responses, and runs
// accepted WebSockets as WsConn objects. It knows no routes and no protocol messages.
#pragma once

#include "rexec/common/result.h"
#include "rexec/server/ws_conn.h"

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rx::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"
  std::string path;    // without the query string
  std::vector<std::pair<std::string, std::string>> query;  // decoded key/value pairs, in order
  std::map<std::string, std::string> headers;  // lower-case names; only the ones we read
  std::string body;
  std::string peer;  // client IP address ("::ffff:" dropped), or what a trusted proxy says it is
  bool is_upgrade = false;  // a WebSocket upgrade request

  [[nodiscard]] std::string header(const std::string& name) const;
  [[nodiscard]] std::optional<std::string> query_param(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;

  static HttpResponse json(int status, std::string body) {
    return HttpResponse{status, std::move(body), "application/json", {}};
  }
};

// What to do with a WebSocket upgrade: refuse it with a response, or accept it and build the
// handler once the socket is established.
struct UpgradeDecision {
  std::optional<HttpResponse> refusal;
  std::function<std::unique_ptr<WsHandler>(WsConn&)> accept;
};

struct HttpServerOptions {
  uv_loop_t* loop = nullptr;
  std::string host = "127.0.0.1";
  int port = 8080;                          // 0: any free port
  std::size_t max_body_bytes = 1U << 20U;   // larger bodies get 413
  std::size_t max_frame_bytes = 1U << 20U;  // larger WebSocket messages close with 1009
  std::size_t ws_low_water = 256U * 1024U;  // WsHandler::on_drain threshold
  // Open TCP connections from one address; more are closed at accept, before any byte is read
  // (there is no request yet to answer). 0: no limit.
  std::size_t max_conns_per_ip = 0;
  unsigned int header_timeout_s = 10;  // to send a whole request head, else closed (slow-loris)
  // Connections waiting for their request head at once; more wait in the kernel's accept queue.
  // 0: no limit.
  unsigned int max_pending_requests = 0;
  // Reverse proxies (exact addresses) whose X-Forwarded-For is believed: a request from one of
  // them is from the address the proxy appended last, and they are exempt from
  // max_conns_per_ip. Anyone else's X-Forwarded-For is ignored.
  std::vector<std::string> trusted_proxies;
  std::string tls_cert_file;
  std::string tls_key_file;
};

// One streamed HTTP exchange (file transfers), given to its HttpStreamHandler: the request body
// arrives in pieces, the response goes out when the application has it, with flow control both
// ways. Valid until the handler is destroyed. Loop thread only.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  HttpStream() = default;
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;
  HttpStream(HttpStream&&) = delete;
  HttpStream& operator=(HttpStream&&) = delete;

  // A whole response (an answer or an error). Body bytes still coming are read and discarded.
  virtual void respond(HttpResponse response) = 0;
  // The head of a response whose `length` body bytes follow through write(); once.
  virtual void respond_head(HttpResponse head, std::uint64_t length) = 0;
  virtual void write(std::string bytes) = 0;
  // Closes the connection: after a head, the client sees a body shorter than announced.
  virtual void abort() = 0;
  // Body bytes given to write() and not yet handed to the socket.
  [[nodiscard]] virtual std::size_t queued_bytes() const = 0;
  // Stops or resumes reading the request body.
  virtual void set_receiving(bool on) = 0;
};

class HttpStreamHandler {
 public:
  virtual ~HttpStreamHandler() = default;
  HttpStreamHandler() = default;
  HttpStreamHandler(const HttpStreamHandler&) = delete;
  HttpStreamHandler& operator=(const HttpStreamHandler&) = delete;
  HttpStreamHandler(HttpStreamHandler&&) = delete;
  HttpStreamHandler& operator=(HttpStreamHandler&&) = delete;

  virtual void on_body(std::string_view bytes) = 0;
  virtual void on_body_end() = 0;
  // `total` body bytes of the response have been handed to the socket.
  virtual void on_written(std::uint64_t total) = 0;
  // The client went away before the response was complete. The stream is unusable from here;
  // the handler is destroyed soon after.
  virtual void on_closed() = 0;
};

struct HttpHandlers {
  std::function<HttpResponse(const HttpRequest&)> on_request;
  std::function<UpgradeDecision(const HttpRequest&)> on_upgrade;
  // Asked first, with the request head (no body yet): a handler takes the exchange over as a
  // stream; nullptr leaves it to on_request. May be empty.
  std::function<std::unique_ptr<HttpStreamHandler>(const HttpRequest&, HttpStream&)> on_stream;
};

// Owns the lws context and every connection. Loop thread only; the loop must outlive it and run
// after its destruction so lws can close its handles.
class HttpServer {
 public:
  // Errors: kUnavailable when the address cannot be bound.
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                   HttpHandlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  HttpServer(HttpServer&&) = delete;
  HttpServer& operator=(HttpServer&&) = delete;

  [[nodiscard]] int port() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rx::server
