// SPDX-License-Identifier: MIT
// One-shot HTTP client calls over lws. Each Call owns itself from connect to CLOSED_CLIENT_HTTP.
#include "rexec/net/http_client.h"

#include "rexec/common/check.h"

#include <algorithm>
#include <cstring>
#include <optional>

namespace rx::net {

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
  bool done_ = false;

 private:
  void complete(Result<HttpResponse> result, lws* wsi);

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

int HttpClient::Call::on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
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
      const bool has_body = !request_.body.empty() || request_.method == "POST" ||
                            request_.method == "PUT" || request_.method == "PATCH";
      if (has_body) {
        if (!add("content-type", request_.content_type) ||
            !add("content-length", std::to_string(request_.body.size()))) {
          return -1;
        }
        if (!request_.body.empty()) {
          lws_client_http_body_pending(wsi, 1);
          lws_callback_on_writable(wsi);
        }
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
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
      response_.status = static_cast<int>(lws_http_client_http_response(wsi));
      return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
      if (response_.body.size() + len > request_.max_response_bytes) {
        complete(Error(Errc::kLimit, "HTTP response larger than " +
                                         std::to_string(request_.max_response_bytes) + " bytes"),
                 wsi);
        return -1;
      }
      response_.body.append(static_cast<const char*>(in), len);
      return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
      char buffer[LWS_PRE + 16384];
      char* px = buffer + LWS_PRE;
      int lenx = static_cast<int>(sizeof buffer - LWS_PRE);
      return lws_http_client_read(wsi, &px, &lenx) < 0 ? -1 : 0;
    }
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
      complete(std::move(response_), wsi);
      return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      complete(Error(Errc::kUnavailable, connect_failure(in, len)), wsi);
      return 0;
    }
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
      // Closed before COMPLETED: a response without a proper end (or a connection reset).
      if (response_.status != 0) {
        complete(std::move(response_), wsi);
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
      uv_timer_start(
          &deadline, [](uv_timer_t*) {}, static_cast<std::uint64_t>(timeout.count()), 0);
      while (!result && uv_is_active(reinterpret_cast<uv_handle_t*>(&deadline)) != 0) {
        uv_run(&loop, UV_RUN_ONCE);
      }
      uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // lws closes its handles after the context is gone
  REXEC_CHECK(uv_loop_close(&loop) == 0);
  if (!result)
    return Error(Errc::kTimeout,
                 "no answer within " + std::to_string(timeout.count() / 1000) + " s");
  return std::move(*result);
}

}  // namespace rx::net
