// SPDX-License-Identifier: MIT
// HttpClient: one-shot HTTP/1.1 requests (REST calls such as agent registration) on an
// LwsContext. Responses are buffered whole, up to a limit.
#pragma once

#include "rexec/common/result.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/url.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rx::net {

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, PATCH, DELETE
  Url url;                     // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // sent with Content-Length when non-empty (or for POST/PUT/PATCH)
  std::string content_type = "application/json";
  std::size_t max_response_bytes = 4U << 20U;
};

struct HttpResponse {
  int status = 0;
  std::string body;
};

// Callback of one request: exactly once, with the response (any status) or an Error:
// kUnavailable (connect failed: the message says why), kLimit (response too large).
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

  // Errors (callback not called): kInvalidArgument for a non-http URL; kUnavailable when lws
  // refuses to start the connection.
  [[nodiscard]] Status request(HttpRequest request, HttpCallback callback);

  class Call;  // one request in flight; defined in http_client.cpp

 private:
  friend class Call;
  LwsContext& context_;
  std::vector<Call*> calls_;
};

// Runs one request to completion on a private loop: for command-line tools, before or without
// an event loop of their own, trusting `ca_file` (empty: find_trust_anchors()). Errors: as
// HttpClient::request and LwsContext::create, plus kTimeout after `timeout`.
Result<HttpResponse> fetch_blocking(HttpRequest request, const std::string& ca_file = {},
                                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace rx::net
