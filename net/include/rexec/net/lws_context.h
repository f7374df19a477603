// SPDX-License-Identifier: MIT
// LwsContext: a libwebsockets context that runs on a libuv loop the application owns (ttyd's
// model). Also the bridge from lws's own log lines into spdlog.
#pragma once

#include "rexec/common/result.h"

#include <libwebsockets.h>
#include <uv.h>

#include <memory>
#include <string>

namespace rx::net {

struct ContextOptions {
  uv_loop_t* loop = nullptr;  // required; must outlive the context and keep running after it
  // The protocol table, ending with a zeroed entry; must outlive the context. Null: the built-in
  // client protocol only (kClientProtocolName), for processes that only dial out.
  const lws_protocols* protocols = nullptr;
  int port = CONTEXT_PORT_NO_LISTEN;  // 0: any free port (read it back with port())
  std::string bind_address;           // listen address for servers; empty: all addresses
  void* user = nullptr;               // returned by lws_context_user()
  std::string ca_file;                // client trust anchors; empty: the system default
  std::string tls_cert_file;          // server: serve TLS with this certificate chain...
  std::string tls_key_file;           // ...and this key
  unsigned int pt_serv_buf_size = 0;  // 0: lws default; bytes of the per-thread I/O buffer
};

// Owns one lws_context. Created and destroyed on the loop thread. Destroying it starts lws's
// asynchronous teardown: the loop must run afterwards (uv_run until idle) before uv_loop_close.
class LwsContext {
 public:
  // Errors: kInvalidArgument without a loop; kUnavailable when lws cannot create the context or
  // bind the port (the message names the address).
  static Result<std::unique_ptr<LwsContext>> create(const ContextOptions& options);
  ~LwsContext();

  LwsContext(const LwsContext&) = delete;
  LwsContext& operator=(const LwsContext&) = delete;
  LwsContext(LwsContext&&) = delete;
  LwsContext& operator=(LwsContext&&) = delete;

  [[nodiscard]] lws_context* get() const { return context_; }

  [[nodiscard]] lws_vhost* vhost() const { return vhost_; }

  // The bound listening port, or -1 for a client-only context.
  [[nodiscard]] int port() const;

 private:
  LwsContext() = default;
  lws_context* context_ = nullptr;
  lws_vhost* vhost_ = nullptr;
};

// A client-side connection object: the built-in client protocol forwards every lws event of a
// wsi whose opaque user data points to a ClientHandler. Return values follow lws: 0 to continue,
// -1 to close the connection.
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual int on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) = 0;

 protected:
  ClientHandler() = default;
  ClientHandler(const ClientHandler&) = default;
  ClientHandler& operator=(const ClientHandler&) = default;
  ClientHandler(ClientHandler&&) = default;
  ClientHandler& operator=(ClientHandler&&) = default;
};

// The name of the built-in client protocol; pass it as lws_client_connect_info.local_protocol_name.
inline constexpr const char* kClientProtocolName = "rexec-client";

// The built-in client protocol entry, for servers that also dial out and build their own table.
const lws_protocols& client_protocol();

// Sends lws's log lines at and above `level` ("debug", "info", "warn", "error") to spdlog.
void route_lws_logs(const std::string& level);

}  // namespace rx::net
