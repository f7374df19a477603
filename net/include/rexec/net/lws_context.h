// SPDX-License-Identifier: MIT
// LwsContext: a libwebsockets context that runs on a libuv loop the application owns (ttyd's
// model). Also the bridge from lws's own log lines into spdlog.
#pragma once

#include "rexec/common/result.h"
#include "rexec/net/tls.h"

#include <libwebsockets.h>
#include <uv.h>

#include <memory>
#include <string>
#include <string_view>

namespace rx::net {

struct ContextOptions {
  uv_loop_t* loop = nullptr;  // required; must outlive the context and keep running after it
  // The protocol table, ending with a zeroed entry; must outlive the context. Null: the built-in
  // client protocol only (kClientProtocolName), for processes that only dial out.
  const lws_protocols* protocols = nullptr;
  int port = CONTEXT_PORT_NO_LISTEN;  // 0: any free port (read it back with port())
  std::string bind_address;           // listen address for servers; empty: all addresses
  void* user = nullptr;               // returned by lws_context_user()
  // Client TLS (wss://, https://). Off: no trust anchors are read, no SSL_CTX exists and OpenSSL
  // is never initialised, so a process that only dials ws:// pays nothing for TLS (the agent of
  // an http:// server).
  bool client_tls = true;
  std::string ca_file;        // client trust anchors; empty: find_trust_anchors()
  std::string tls_cert_file;  // server: serve TLS with this certificate chain...
  std::string tls_key_file;   // ...and this key
  // Bytes of the per-thread I/O buffer. lws reads a socket at most this much at a time, so its
  // 4 KiB default cut every 64 KiB frame into 16 reads and callbacks.
  unsigned int pt_serv_buf_size = 64U * 1024U;
  // Connections lws tracks at once. 0: as many as RLIMIT_NOFILE allows, which lws sizes its
  // tables by (8 bytes per possible descriptor, twice: 320 KB at a limit of 20,000). A process
  // with a few connections (the agent: its link and a request or two) sets a small number, and
  // lws finds a connection by a short search instead.
  unsigned int max_connections = 0;
  // Server: seconds a connection may take to send its whole request head (slow-loris bound);
  // lws closes it after that. 0: lws's default (10 s).
  unsigned int header_timeout_s = 0;
  // Server: connections that may wait for their request head at once (each holds a ~5 KiB lws
  // header table); at that many, further connections stay in the kernel's accept queue until one
  // is served or closed (scripts/lws-patches/0006). 0: accept whenever a descriptor is free.
  unsigned int max_pending_requests = 0;
};

// Owns one lws_context. Created and destroyed on the loop thread. Destroying it starts lws's
// asynchronous teardown: the loop must run afterwards (uv_run until idle) before uv_loop_close.
class LwsContext {
 public:
  // Errors: kInvalidArgument without a loop; kUnavailable when lws cannot create the context or
  // bind the port (the message names the address); kNotFound / kConfig when `ca_file` is given
  // and cannot be used. Without `ca_file`, a machine with no CA bundle still gets a context:
  // every https/wss connection then fails verification with a sentence that says so.
  static Result<std::unique_ptr<LwsContext>> create(const ContextOptions& options);
  ~LwsContext();

  LwsContext(const LwsContext&) = delete;
  LwsContext& operator=(const LwsContext&) = delete;
  LwsContext(LwsContext&&) = delete;
  LwsContext& operator=(LwsContext&&) = delete;

  [[nodiscard]] lws_context* get() const { return context_; }

  [[nodiscard]] lws_vhost* vhost() const { return vhost_; }

  // What client connections verify servers against.
  [[nodiscard]] const TrustAnchors& trust_anchors() const { return anchors_; }

  // The bound listening port, or -1 for a client-only context.
  [[nodiscard]] int port() const;

 private:
  LwsContext() = default;
  lws_context* context_ = nullptr;
  lws_vhost* vhost_ = nullptr;
  TrustAnchors anchors_;
  SSL_CTX* client_ssl_ctx_ = nullptr;  // ours; lws borrows it (provided_client_ssl_ctx)
};

// A client-side connection object: the built-in client protocol forwards every lws event of a
// wsi whose opaque user data points to a ClientHandler. Return values follow lws: 0 to continue,
// -1 to close the connection.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual int on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) = 0;

  // Called by the client protocol when OpenSSL refuses the server's certificate; the first
  // X509_V_ERR of a connection is kept for failure_reason().
  void note_tls_verify_error(int x509_error) {
    if (tls_verify_error_ == 0) tls_verify_error_ = x509_error;
  }

 protected:
  // Why a connection failed, for CLIENT_CONNECTION_ERROR: the verify_failure_sentence() when the
  // certificate was refused, else lws's own text (`in`, `len`).
  [[nodiscard]] std::string failure_reason(const LwsContext& context, std::string_view host,
                                           const void* in, size_t len) const;

  void reset_tls_verify_error() { tls_verify_error_ = 0; }

  [[nodiscard]] bool tls_refused() const { return tls_verify_error_ != 0; }

  ClientHandler() = default;
  ClientHandler(const ClientHandler&) = default;
  ClientHandler& operator=(const ClientHandler&) = default;
  ClientHandler(ClientHandler&&) = default;
  ClientHandler& operator=(ClientHandler&&) = default;

 private:
  int tls_verify_error_ = 0;
};

// The name of the built-in client protocol; pass it as lws_client_connect_info.local_protocol_name.
inline constexpr const char* kClientProtocolName = "rexec-client";

// The built-in client protocol entry, for servers that also dial out and build their own table.
const lws_protocols& client_protocol();

// Sends lws's log lines at and above `level` ("debug", "info", "warn", "error") to spdlog.
void route_lws_logs(const std::string& level);

}  // namespace rx::net
