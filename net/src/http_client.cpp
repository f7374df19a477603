// SPDX-License-Identifier: MIT
// One-shot HTTP client calls over lws. Each Call owns itself from connect to CLOSED_CLIENT_HTTP.
#include "rexec/net/http_client.h"

#include "rexec/common/check.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <exception>
#include <optional>

namespace rx::net {

namespace {

// Seconds lws may wait for the socket to take one streamed body piece when the request has no
// idle_timeout. lws arms its own timeout (5 s by default) once, when the headers go out, for the
// whole body: enough for a small JSON body, not for a file.
constexpr int kPieceTimeoutS = 30;

bool is_2xx(int status) { return status >= 200 && status < 300; }

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

class HttpClient::Call final : public ClientHandler {
 public:
  Call(HttpClient* owner, HttpRequest request, HttpCallback callback)
      : owner_(owner),
        context_(&owner->context_),
        request_(std::move(request)),
        callback_(std::move(callback)) {}

  void abandon() {
    owner_ = nullptr;
    callback_ = nullptr;
  }

  int on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) override;

  HttpClient* owner_;
  const LwsContext* context_;  // outlives every call: lws reports all of them before it goes
  HttpRequest request_;
  HttpCallback callback_;
  std::string host_;
  HttpResponse response_;
  bool body_sent_ = false;
  std::uint64_t body_bytes_sent_ = 0;  // streamed request body
  std::string piece_;                  // LWS_PRE headroom + the body piece being written
  bool done_ = false;
  std::chrono::steady_clock::time_point progress_at_;  // idle_timeout only

 private:
  void complete(Result<HttpResponse> result, lws* wsi);

  // Ends the request: with the response, or with kUnavailable when the body is shorter than
  // its Content-Length (the server closed the connection mid-body).
  void finish(lws* wsi);

  int append_headers(lws* wsi, void* in, size_t len);
  int write_body_piece(lws* wsi);
  int on_established(lws* wsi);
  int on_body_bytes(lws* wsi, const char* data, size_t len);
  // Runs a caller's callback that says whether to go on: an exception (`failed` + what) or a
  // refusal (`refused`) ends the call; returns what the lws callback must return.
  template <class Fn>
  int ask_caller(lws* wsi, Fn&& fn, const char* failed, const char* refused);
  int on_idle_tick(lws* wsi);

  [[nodiscard]] bool streams_body() const { return request_.on_body && is_2xx(response_.status); }

  void note_progress() { progress_at_ = std::chrono::steady_clock::now(); }

  [[nodiscard]] lws_usec_t idle_tick_us() const {
    // Often enough to also clear lws's per-phase timeouts (5 s) before they fire.
    const auto tick = std::clamp(request_.idle_timeout / 4, std::chrono::milliseconds(10),
                                 std::chrono::milliseconds(1000));
    return static_cast<lws_usec_t>(tick.count()) * 1000;
  }

  [[nodiscard]] std::string connect_failure(const void* in, size_t len) const {
    std::string why = failure_reason(*context_, request_.url.host, in, len);
    return tls_refused() ? why : request_.url.host_header() + ": " + why;
  }
};

void HttpClient::Call::complete(Result<HttpResponse> result, lws* wsi) {
  if (done_) return;
  done_ = true;
  lws_set_opaque_user_data(wsi, nullptr);
  if (owner_ != nullptr) {
    auto& calls = owner_->calls_;
    calls.erase(std::remove(calls.begin(), calls.end(), this), calls.end());
  }
  HttpCallback cb = std::move(callback_);
  delete this;  // NOLINT(cppcoreguidelines-owning-memory): a Call owns itself until completion
  if (cb) cb(std::move(result));
}

void HttpClient::Call::finish(lws* wsi) {
  const bool no_body = request_.method == "HEAD" || response_.status == 204 ||
                       response_.status == 304 || response_.status < 200;
  if (!no_body && response_.content_length && response_.body_bytes < *response_.content_length) {
    complete(Error(Errc::kUnavailable, request_.url.host_header() + ": connection closed after " +
                                           std::to_string(response_.body_bytes) + " of " +
                                           std::to_string(*response_.content_length) + " bytes"),
             wsi);
    return;
  }
  complete(std::move(response_), wsi);
}

int HttpClient::Call::append_headers(lws* wsi, void* in, size_t len) {
  auto** p = static_cast<unsigned char**>(in);
  unsigned char* end = *p + len;
  auto add = [&](const std::string& name, const std::string& value) {
    const std::string key = name + ":";
    return lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(key.c_str()),
                                       reinterpret_cast<const unsigned char*>(value.data()),
                                       static_cast<int>(value.size()), p, end) == 0;
  };
  for (const auto& [name, value] : request_.headers) {
    if (!add(name, value)) return -1;
  }
  if (request_.idle_timeout.count() > 0) {
    note_progress();  // connected
    lws_set_timer_usecs(wsi, idle_tick_us());
  }
  const bool streamed = static_cast<bool>(request_.body_source);
  const bool has_body = streamed || !request_.body.empty() || request_.method == "POST" ||
                        request_.method == "PUT" || request_.method == "PATCH";
  if (!has_body) return 0;
  const std::uint64_t length = streamed ? request_.body_length : request_.body.size();
  if (!add("content-type", request_.content_type) ||
      !add("content-length", std::to_string(length))) {
    return -1;
  }
  if (length > 0) {
    lws_client_http_body_pending(wsi, 1);
    lws_callback_on_writable(wsi);
  }
  return 0;
}

int HttpClient::Call::write_body_piece(lws* wsi) {
  const std::uint64_t owed = request_.body_length - body_bytes_sent_;
  if (owed == 0) return 0;
  const std::size_t max = static_cast<std::size_t>(std::min<std::uint64_t>(kBodyPieceBytes, owed));
  Result<std::string> piece = Error(Errc::kInternal, "no body piece");
  try {
    piece = request_.body_source(max);
  } catch (const std::exception& e) {
    piece = Error(Errc::kInternal, std::string("request body source failed: ") + e.what());
  }
  if (!piece) {
    complete(std::move(piece).error(), wsi);
    return -1;
  }
  const std::size_t size = piece->size();
  if (size == 0 || size > max) {
    complete(Error(Errc::kInternal, "request body source gave " + std::to_string(size) +
                                        " bytes when " + std::to_string(max) + " were due"),
             wsi);
    return -1;
  }
  piece_.assign(LWS_PRE, '\0');
  piece_ += *piece;
  body_bytes_sent_ += size;
  const bool last = body_bytes_sent_ == request_.body_length;
  auto* data = reinterpret_cast<unsigned char*>(piece_.data()) + LWS_PRE;
  if (lws_write(wsi, data, size, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
      static_cast<int>(size)) {
    complete(Error(Errc::kUnavailable,
                   request_.url.host_header() + ": connection lost while sending the request body"),
             wsi);
    return -1;
  }
  if (request_.idle_timeout.count() > 0) {
    note_progress();
  } else {
    lws_set_timeout(wsi, PENDING_TIMEOUT_CLIENT_ISSUE_PAYLOAD, kPieceTimeoutS);
  }
  if (last) {
    lws_client_http_body_pending(wsi, 0);
  } else {
    lws_callback_on_writable(wsi);  // lws holds back this callback until the piece has drained
  }
  return 0;
}

int HttpClient::Call::on_established(lws* wsi) {
  response_.status = static_cast<int>(lws_http_client_http_response(wsi));
  if (request_.idle_timeout.count() > 0) note_progress();
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
    std::array<char, 32> text{};
    const int n = lws_hdr_copy(wsi, text.data(), static_cast<int>(text.size()),
                               WSI_TOKEN_HTTP_CONTENT_LENGTH);
    std::uint64_t value = 0;
    const char* last = text.data() + std::max(n, 0);
    const auto [ptr, ec] = std::from_chars(text.data(), last, value);
    if (n <= 0 || ec != std::errc() || ptr != last) {
      complete(Error(Errc::kUnavailable,
                     request_.url.host_header() + ": invalid Content-Length in the response"),
               wsi);
      return -1;
    }
    response_.content_length = value;
  }
  for (const std::string& name : request_.response_headers) {
    const std::string key = name + ":";
    const int n = lws_hdr_custom_length(wsi, key.c_str(), static_cast<int>(key.size()));
    if (n < 0) continue;
    std::string value(static_cast<std::size_t>(n) + 1, '\0');
    if (lws_hdr_custom_copy(wsi, value.data(), static_cast<int>(value.size()), key.c_str(),
                            static_cast<int>(key.size())) < 0) {
      continue;
    }
    value.resize(static_cast<std::size_t>(n));
    response_.headers.emplace_back(name, std::move(value));
  }
  if (request_.on_headers) {
    return ask_caller(
        wsi, [this] { return request_.on_headers(response_); },
        "response handler failed: ", "the response was refused");
  }
  return 0;
}

template <class Fn>
int HttpClient::Call::ask_caller(lws* wsi, Fn&& fn, const char* failed, const char* refused) {
  bool go_on = false;
  try {
    go_on = fn();
  } catch (const std::exception& e) {
    complete(Error(Errc::kInternal, std::string(failed) + e.what()), wsi);
    return -1;
  }
  if (!go_on) {
    complete(Error(Errc::kClosed, refused), wsi);
    return -1;
  }
  return 0;
}

int HttpClient::Call::on_body_bytes(lws* wsi, const char* data, size_t len) {
  if (request_.idle_timeout.count() > 0) note_progress();
  response_.body_bytes += len;
  if (streams_body()) {
    return ask_caller(
        wsi, [&] { return request_.on_body(std::string_view(data, len)); },
        "response body sink failed: ", "the response body was refused");
  }
  if (response_.body.size() + len > request_.max_response_bytes) {
    complete(Error(Errc::kLimit, "HTTP response larger than " +
                                     std::to_string(request_.max_response_bytes) + " bytes"),
             wsi);
    return -1;
  }
  response_.body.append(data, len);
  return 0;
}

int HttpClient::Call::on_idle_tick(lws* wsi) {
  const auto idle = std::chrono::steady_clock::now() - progress_at_;
  if (idle >= request_.idle_timeout) {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(request_.idle_timeout);
    complete(Error(Errc::kTimeout, request_.url.host_header() + ": no progress for " +
                                       std::to_string(secs.count()) + " s"),
             wsi);
    return -1;
  }
  // This watchdog replaces lws's timeout of the current phase, which lws re-arms at each phase
  // change (5 s for the answer to start, even after a 1 GiB body).
  lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  lws_set_timer_usecs(wsi, idle_tick_us());
  return 0;
}

int HttpClient::Call::on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
      return append_headers(wsi, in, len);
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
      if (request_.body_source) return write_body_piece(wsi);
      if (body_sent_ || request_.body.empty()) return 0;
      std::string buf(LWS_PRE, '\0');
      buf += request_.body;
      auto* data = reinterpret_cast<unsigned char*>(buf.data()) + LWS_PRE;
      if (lws_write(wsi, data, request_.body.size(), LWS_WRITE_HTTP_FINAL) <
          static_cast<int>(request_.body.size())) {
        return -1;
      }
      body_sent_ = true;
      lws_client_http_body_pending(wsi, 0);
      return 0;
    }
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
      return on_established(wsi);
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
      return on_body_bytes(wsi, static_cast<const char*>(in), len);
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
      char buffer[LWS_PRE + 16384];
      char* px = buffer + LWS_PRE;
      int lenx = static_cast<int>(sizeof buffer - LWS_PRE);
      return lws_http_client_read(wsi, &px, &lenx) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
      finish(wsi);
      return 0;
    case LWS_CALLBACK_TIMER:
      return request_.idle_timeout.count() > 0 ? on_idle_tick(wsi) : 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      complete(Error(Errc::kUnavailable, connect_failure(in, len)), wsi);
      return 0;
    }
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
      // Closed before COMPLETED: a response that ends at the close (no Content-Length), one cut
      // short (lws reports COMPLETED only once Content-Length bytes have arrived), or a reset.
      if (response_.status != 0) {
        finish(wsi);
      } else {
        complete(Error(Errc::kUnavailable,
                       request_.url.host_header() + ": connection closed before a response"),
                 wsi);
      }
      return 0;
    default:
      return 0;
  }
}

HttpClient::~HttpClient() {
  for (Call* call : calls_) call->abandon();
}

Status HttpClient::request(HttpRequest request, HttpCallback callback) {
  if (request.url.scheme != "http" && request.url.scheme != "https") {
    return Error(Errc::kInvalidArgument, "HTTP URL must be http:// or https://");
  }
  if (request.body_source && !request.body.empty()) {
    return Error(Errc::kInvalidArgument, "HTTP request with both a body and a body source");
  }
  auto* call = new Call(this, std::move(request), std::move(callback));  // NOLINT: owns itself
  call->host_ = call->request_.url.host_header();
  lws_client_connect_info info;
  std::memset(&info, 0, sizeof info);
  info.context = context_.get();
  info.vhost = context_.vhost();
  info.address = call->request_.url.host.c_str();
  info.port = call->request_.url.port;
  info.path = call->request_.url.path.c_str();
  info.host = call->host_.c_str();
  info.origin = nullptr;
  info.method = call->request_.method.c_str();
  info.local_protocol_name = kClientProtocolName;
  info.ssl_connection = call->request_.url.is_tls() ? LCCSCF_USE_SSL : 0;
  info.opaque_user_data = call;
  calls_.push_back(call);
  if (lws_client_connect_via_info(&info) == nullptr) {
    // If lws already reported CONNECTION_ERROR, the call completed (and deleted itself).
    if (std::find(calls_.begin(), calls_.end(), call) != calls_.end()) {
      calls_.erase(std::remove(calls_.begin(), calls_.end(), call), calls_.end());
      delete call;  // NOLINT(cppcoreguidelines-owning-memory)
      return Error(Errc::kUnavailable, "cannot start HTTP request");
    }
  }
  return {};
}

Result<HttpResponse> fetch_blocking(HttpRequest request, const std::string& ca_file,
                                    std::chrono::milliseconds timeout) {
  uv_loop_t loop;
  REXEC_CHECK(uv_loop_init(&loop) == 0);
  std::optional<Result<HttpResponse>> result;
  {
    ContextOptions co;
    co.loop = &loop;
    co.ca_file = ca_file;
    auto ctx = LwsContext::create(co);
    if (!ctx) {
      result = std::move(ctx).error();
    } else {
      HttpClient client(**ctx);
      auto st = client.request(std::move(request),
                               [&](Result<HttpResponse> r) { result = std::move(r); });
      if (!st) result = std::move(st).error();
      uv_timer_t deadline;
      uv_timer_init(&loop, &deadline);
      if (timeout.count() > 0) {
        uv_timer_start(
            &deadline, [](uv_timer_t*) {}, static_cast<std::uint64_t>(timeout.count()), 0);
      }
      const auto expired = [&] {
        return timeout.count() > 0 && uv_is_active(reinterpret_cast<uv_handle_t*>(&deadline)) == 0;
      };
      // Without a deadline, a loop with nothing left to run would spin: the request is over.
      while (!result && !expired() && uv_run(&loop, UV_RUN_ONCE) != 0) {
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // lws closes its handles after the context is gone
  REXEC_CHECK(uv_loop_close(&loop) == 0);
  if (!result && timeout.count() == 0) {
    return Error(Errc::kInternal, "HTTP request ended without an answer");
  }
  if (!result) {
    return Error(Errc::kTimeout,
                 "no answer within " + std::to_string(timeout.count() / 1000) + " s");
  }
  return std::move(*result);
}

}  // namespace rx::net
