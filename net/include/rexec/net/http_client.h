// SPDX-License-Identifier: MIT
// HttpClient: one-shot HTTP/1.1 requests (REST calls such as agent registration, file transfers)
// on an LwsContext. Bodies are buffered whole up to a limit, or streamed in bounded memory.
#pragma once

#include "rexec/common/result.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/url.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rx::net {

// Bytes of one streamed request body piece: what HttpRequest::body_source is asked for at most.
// One piece is one lws_write, so at most this much of the body is in memory at a time.
inline constexpr std::size_t kBodyPieceBytes = 64U * 1024U;

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, PATCH, DELETE
  Url url;                     // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length when non-empty (or for POST/PUT/PATCH)
  std::string content_type = "application/json";
  std::size_t max_response_bytes = 4U << 20U;  // buffered bodies only; larger ones give kLimit

  // Streamed request body, for uploads of any size in bounded memory. When body_source is set,
  // `body` must be empty and the request carries Content-Length: body_length. body_source is
  // called on the loop thread as the socket drains, with max = min(kBodyPieceBytes, bytes still
  // owed), and returns the next 1..max bytes, or an Error that ends the request with it.
  std::uint64_t body_length = 0;
  std::function<Result<std::string>(std::size_t max)> body_source;

  // Streamed response body. When on_body is set and the status is 2xx, each piece of the body
  // goes to on_body (the view is valid during the call only) instead of HttpResponse::body, with
  // no size limit; returning false ends the request with kClosed. Other statuses are buffered in
  // HttpResponse::body as without on_body: they carry an error text ({"error":"..."}).
  std::function<bool(std::string_view piece)> on_body;

  // Called once the status line and headers have arrived, before any body, with `body` empty;
  // returning false ends the request with kClosed. For progress displays that need the length.
  std::function<bool(const HttpResponse& head)> on_headers;

  // Non-standard response headers to keep in HttpResponse::headers (lower-case names such as
  // "x-rexec-mode"). Headers lws knows by name (content-type...) cannot be kept this way.
  std::vector<std::string> response_headers;

  // Zero: fixed timeouts per phase apply (5 s to send a buffered body, 30 s for each streamed
  // piece, 5 s for the answer to start). Otherwise the request ends with kTimeout after this long
  // without progress (connected, a body piece sent, bytes received), whatever the phase: for
  // transfers, where the server may also need long after the last byte (a 1 GiB file to fsync).
  std::chrono::milliseconds idle_timeout{0};
};

struct HttpResponse {
  int status = 0;
  std::string body;  // empty when the body was streamed to HttpRequest::on_body
  // The Content-Length header, when the server sent one. A response that ends before this many
  // bytes is reported as an Error, never as a response with a short body.
  std::optional<std::uint64_t> content_length;
  std::uint64_t body_bytes = 0;  // bytes of body received, streamed or buffered
  // Those of HttpRequest::response_headers that the server sent, with lower-case names.
  std::vector<std::pair<std::string, std::string>> headers;

  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
};

// Callback of one request: exactly once, with the response (any status) or an Error:
// kUnavailable (connect failed, or the connection closed before the whole response: the message
// says why), kLimit (buffered response too large), kTimeout (HttpRequest::idle_timeout), kClosed
// (on_body or on_headers returned false), or the Error of HttpRequest::body_source.
using HttpCallback = std::function<void(Result<HttpResponse>)>;

// Lifetime: loop thread only; the context must outlive the client. Destroying the client
// abandons requests in flight: their callbacks never run.
class HttpClient {
 public:
  explicit HttpClient(LwsContext& context) : context_(context) {}

  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;
  HttpClient(HttpClient&&) = delete;
  HttpClient& operator=(HttpClient&&) = delete;

  // Errors (callback not called): kInvalidArgument for a non-http URL, or for a body_source
  // together with a non-empty body; kUnavailable when lws refuses to start the connection.
  [[nodiscard]] Status request(HttpRequest request, HttpCallback callback);

  class Call;  // one request in flight; defined in http_client.cpp

 private:
  friend class Call;
  LwsContext& context_;
  std::vector<Call*> calls_;
};

// Runs one request to completion on a private loop: for command-line tools, before or without
// an event loop of their own, trusting `ca_file` (empty: find_trust_anchors()). Errors: as
// HttpClient::request and LwsContext::create, plus kTimeout after `timeout` (zero: no overall
// limit, for transfers, which bound inactivity with HttpRequest::idle_timeout instead).
Result<HttpResponse> fetch_blocking(HttpRequest request, const std::string& ca_file = {},
                                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace rx::net
