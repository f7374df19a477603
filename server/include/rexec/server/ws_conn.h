// SPDX-License-Identifier: MIT
// The seam between the server's lws plumbing (http_server.cpp) and its session logic (hub.cpp):
// an accepted WebSocket (WsConn, implemented by the plumbing) and what handles its traffic
// (WsHandler, implemented by the hub). The hub is tested with in-memory WsConn fakes.
#pragma once

#include "rexec/net/ws_client.h"  // WsMessage, make_message

#include <cstddef>
#include <string>
#include <string_view>

namespace rx::server {

// One accepted WebSocket. Owned by the plumbing; valid until its handler's on_closed() returns.
// All methods on the loop thread.
class WsConn {
 public:
  virtual ~WsConn() = default;
  // Queues a message (LWS_PRE headroom included); messages are written in order.
  virtual void send(net::WsMessage message) = 0;

  void send_text(std::string_view text) { send(net::make_message(text, false)); }

  void send_binary(std::string_view bytes) { send(net::make_message(bytes, true)); }

  // Sends a WebSocket control ping; the peer's pong arrives as WsHandler::on_pong().
  virtual void send_ping() = 0;
  // Sends a close frame after the queued messages, then closes. on_closed() follows.
  virtual void close(int code, std::string_view reason) = 0;
  // Bytes queued and not yet written to the socket.
  [[nodiscard]] virtual std::size_t queued_bytes() const = 0;
  // Stops (false) or resumes (true) reading the peer: TCP then slows the peer down.
  virtual void set_receiving(bool on) = 0;
  // True when the connection negotiated the "rexec.v2" subprotocol.
  [[nodiscard]] virtual bool is_v2() const = 0;
  [[nodiscard]] virtual const std::string& peer_address() const = 0;

  // WsHandler::on_room() is called each time the queue falls below `bytes` (0: never). For bulk
  // senders that keep only that much queued, so other messages never wait far behind them.
  virtual void set_room_mark(std::size_t /*bytes*/) {}

 protected:
  WsConn() = default;
  WsConn(const WsConn&) = default;
  WsConn& operator=(const WsConn&) = default;
  WsConn(WsConn&&) = default;
  WsConn& operator=(WsConn&&) = default;
};

// What one WebSocket's traffic goes to. Owned by the plumbing together with its WsConn and
// destroyed right after on_closed(). Methods are called on the loop thread; they must not
// throw (the plumbing catches and closes the connection if they do).
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  // One whole message (reassembled, within the configured maximum). The view is valid only
  // during the call.
  virtual void on_message(std::string_view payload, bool binary) = 0;

  virtual void on_pong() {}

  // The outbound queue fell to or below its low-water mark.
  virtual void on_drain() {}

  // The outbound queue fell below its room mark (WsConn::set_room_mark).
  virtual void on_room() {}

  // The connection is gone (either side closed it); the WsConn must not be used afterwards.
  virtual void on_closed() = 0;

 protected:
  WsHandler() = default;
  WsHandler(const WsHandler&) = default;
  WsHandler& operator=(const WsHandler&) = default;
  WsHandler(WsHandler&&) = default;
  WsHandler& operator=(WsHandler&&) = default;
};

}  // namespace rx::server
