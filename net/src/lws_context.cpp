// SPDX-License-Identifier: MIT
// lws context creation on a foreign libuv loop, the client protocol trampoline and log routing.
#include "rexec/net/lws_context.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace rx::net {

namespace {

int on_client_event(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS) {
    return 0;  // `wsi` is a fake one here; the trust anchors are in our own SSL_CTX already
  }
  auto* handler = static_cast<ClientHandler*>(lws_get_opaque_user_data(wsi));
  if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION) {
    // `user` is the X509_STORE_CTX and `len` OpenSSL's preverify_ok. Returning 0 leaves OpenSSL's
    // verdict standing: lws fails the handshake when preverify_ok is 0.
    if (len == 0 && handler != nullptr) {
      handler->note_tls_verify_error(X509_STORE_CTX_get_error(static_cast<X509_STORE_CTX*>(user)));
    }
    return 0;
  }
  if (handler == nullptr) {
    // Events that arrive for a wsi whose owner has gone: close anything that is still open.
    return reason == LWS_CALLBACK_CLIENT_WRITEABLE || reason == LWS_CALLBACK_CLIENT_RECEIVE ||
                   reason == LWS_CALLBACK_RECEIVE_CLIENT_HTTP ||
                   reason == LWS_CALLBACK_CLIENT_HTTP_WRITEABLE
               ? -1
               : lws_callback_http_dummy(wsi, reason, nullptr, in, len);
  }
  try {
    return handler->on_lws_event(wsi, reason, in, len);
  } catch (const std::exception& e) {
    spdlog::error("client connection failed: exception in handler what={}", e.what());
    return -1;
  }
}

const std::array<lws_protocols, 2> kClientOnly = {{
    {kClientProtocolName, on_client_event, 0, 0, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
}};

void emit_lws_log(int level, const char* line) {
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  // lws's own lines carry no tokens or terminal bytes at the levels route_lws_logs enables.
  // A refused certificate is reported by the connection's owner in one sentence
  // (ClientHandler::failure_reason); lws's own line about it is detail.
  if (level == LLL_ERR && text.rfind("SSL error:", 0) == 0) level = LLL_NOTICE;
  switch (level) {
    case LLL_ERR:
      spdlog::error("lws: {}", text);
      break;
    case LLL_WARN:
      spdlog::warn("lws: {}", text);
      break;
    case LLL_NOTICE:
    case LLL_USER:
      spdlog::debug("lws: {}", text);
      break;
    default:
      spdlog::trace("lws: {}", text);
      break;
  }
}

}  // namespace

const lws_protocols& client_protocol() { return kClientOnly[0]; }

void route_lws_logs(const std::string& level) {
  int mask = LLL_ERR;
  if (level == "warn" || level == "info" || level == "debug" || level == "trace") mask |= LLL_WARN;
  if (level == "debug" || level == "trace") mask |= LLL_NOTICE | LLL_USER;
  // Never LLL_INFO, LLL_DEBUG or LLL_HEADER, even at trace: at those levels an lws built for
  // debugging hexdumps WebSocket payloads (terminal bytes) and headers (tokens). Our Release lws
  // compiles them out; this keeps it so with any lws.
  if (level == "trace") mask |= LLL_CLIENT;
  lws_set_log_level(mask, emit_lws_log);
}

Result<std::unique_ptr<LwsContext>> LwsContext::create(const ContextOptions& options) {
  if (options.loop == nullptr) return Error(Errc::kInvalidArgument, "lws context needs a loop");
  std::array<void*, 1> loops = {options.loop};
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  const bool tls = options.client_tls || !options.tls_cert_file.empty();
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
                 LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
  if (tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.foreign_loops = loops.data();
  info.user = options.user;
  info.pt_serv_buf_size = options.pt_serv_buf_size;
  info.fd_limit_per_thread = options.max_connections;  // one service thread
  // A field of our own (scripts/lws-patches/0006).
  info.accept_ah_limit = options.max_pending_requests;
  // lws reads its signal handling from here; the application owns signals (ttyd does the same).
  info.signal_cb = nullptr;

  for (const std::string* f : {&options.tls_cert_file, &options.tls_key_file}) {
    if (!f->empty() && ::access(f->c_str(), R_OK) != 0) {
      return Error::from_errno("cannot read TLS file " + *f, errno);
    }
  }
  // lws reads WebSocket masks and nonces from /dev/urandom and fails context creation without
  // it; lws 4.1.6 then crashes in its own clean-up on a foreign libuv loop (uv_run on a loop it
  // never set). Missing /dev/urandom is common in chroots and minimal containers: say so instead.
  if (::access("/dev/urandom", R_OK) != 0) {
    return Error::from_errno("cannot read /dev/urandom (libwebsockets needs it)", errno);
  }
  std::unique_ptr<LwsContext> self(new LwsContext());
  if (options.client_tls) {
    auto anchors = find_trust_anchors(options.ca_file);
    if (anchors) {
      self->anchors_ = std::move(anchors).value();
    } else if (!options.ca_file.empty()) {
      return std::move(anchors).error();
    } else {
      spdlog::debug("no CA certificates: {}", anchors.error().message);
    }
    auto ssl_ctx = make_client_ssl_ctx(self->anchors_);
    if (!ssl_ctx) return std::move(ssl_ctx).error();
    self->client_ssl_ctx_ = *ssl_ctx;
  }

  self->context_ = lws_create_context(&info);
  if (self->context_ == nullptr) return Error(Errc::kUnavailable, "lws_create_context failed");

  lws_context_creation_info vinfo;
  std::memset(&vinfo, 0, sizeof vinfo);
  vinfo.port = options.port;
  vinfo.iface = options.bind_address.empty() ? nullptr : options.bind_address.c_str();
  vinfo.protocols = options.protocols != nullptr ? options.protocols : kClientOnly.data();
  vinfo.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
  vinfo.provided_client_ssl_ctx = self->client_ssl_ctx_;
  vinfo.timeout_secs_ah_idle = options.header_timeout_s;
  // No lws "validity" timers on accepted connections: the hub and the agent run their own
  // heartbeats, and lws re-sorts a linear timer list on every frame received, which took 90 % of
  // the server's CPU with 10,000 idle agents.
  static const lws_retry_bo_t kNoValidityTimers{};
  vinfo.retry_and_idle_policy = &kNoValidityTimers;
  if (!options.tls_cert_file.empty()) {
    vinfo.ssl_cert_filepath = options.tls_cert_file.c_str();
    vinfo.ssl_private_key_filepath = options.tls_key_file.c_str();
  }
  self->vhost_ = lws_create_vhost(self->context_, &vinfo);
  if (self->vhost_ == nullptr) {
    std::string where = options.bind_address.empty() ? "*" : options.bind_address;
    return Error(
        Errc::kUnavailable,
        "cannot listen on " + where + ":" + std::to_string(options.port) +
            (options.tls_cert_file.empty()
                 ? " (address in use, or not permitted)"
                 : " (address in use, or the TLS certificate and key do not load or match)"));
  }
  return self;
}

LwsContext::~LwsContext() {
  if (context_ != nullptr) lws_context_destroy(context_);
  // Connections still closing hold their own reference (SSL_new takes one).
  if (client_ssl_ctx_ != nullptr) SSL_CTX_free(client_ssl_ctx_);
}

std::string ClientHandler::failure_reason(const LwsContext& context, std::string_view host,
                                          const void* in, size_t len) const {
  if (tls_verify_error_ != 0) {
    return verify_failure_sentence(host, tls_verify_error_, context.trust_anchors());
  }
  if (in == nullptr || len == 0) return "connection failed";
  std::string_view text(static_cast<const char*>(in), len);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.remove_suffix(1);
  return std::string(text);
}

int LwsContext::port() const { return vhost_ != nullptr ? lws_get_vhost_listen_port(vhost_) : -1; }

}  // namespace rx::net
