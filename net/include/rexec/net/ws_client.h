// SPDX-License-Identifier: MIT
// WsClient: one client WebSocket connection on an LwsContext, with a bounded-by-accounting
// outbound queue written one lws_write per WRITEABLE event, and whole-message reassembly.
#pragma once

#include "rexec/common/result.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/url.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rx::net {

struct WsConnectOptions {
  Url url;                                                   // ws:// or wss://
  std::vector<std::pair<std::string, std::string>> headers;  // extra request headers
  std::string subprotocols;                   // offered, e.g. "rexec.v2, rexec.v1"; may be empty
  std::string origin;                         // sent as Origin when non-empty
  std::size_t max_message_bytes = 1U << 20U;  // larger incoming messages close with 1009
};

struct WsCloseInfo {
  bool was_open = false;  // the handshake had completed
  int http_status = 0;    // handshake HTTP status when the upgrade was refused, else 0
  int close_code = 0;     // WebSocket close code received from the peer, when there was one
  std::string reason;     // peer's close reason, or lws's description of a connect failure
};

// Payload of our keepalive pings. lws 4.1 reports a pong to the application only when it carries
// a payload, and the peer echoes the ping's, so pings are never empty (agent and server alike).
inline constexpr std::string_view kPingPayload = "rxhb";

// The bytes of an outgoing message. Unlike std::string, they are not zeroed when allocated: every
// byte is written at once, and zeroing 64 KiB for each chunk of terminal output was 5-10 % of the
// agent's CPU during a flood (perf).
class MessageBuffer {
 public:
  MessageBuffer() = default;

  // `size` bytes, with room to grow to `capacity` (at least `size`) by append().
  explicit MessageBuffer(std::size_t size, std::size_t capacity = 0)
      : data_(std::make_unique_for_overwrite<char[]>(std::max(size, capacity))),
        size_(size),
        capacity_(std::max(size, capacity)) {}

  [[nodiscard]] char* data() { return data_.get(); }

  [[nodiscard]] const char* data() const { return data_.get(); }

  [[nodiscard]] std::size_t size() const { return size_; }

  [[nodiscard]] std::size_t room() const { return capacity_ - size_; }

  // Appends `bytes`; the caller checked room().
  void append(std::string_view bytes) {
    std::memcpy(data_.get() + size_, bytes.data(), bytes.size());
    size_ += bytes.size();
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// An outgoing message. `buffer` holds LWS_PRE bytes of headroom followed by the payload, so
// lws_write needs no copy; build it with make_message().
struct WsMessage {
  MessageBuffer buffer;
  bool binary = false;

  [[nodiscard]] std::size_t payload_size() const { return buffer.size() - LWS_PRE; }
};

// A message with room for `payload_size` bytes at data() + LWS_PRE, not initialised; it can grow
// to `payload_capacity` bytes (WsClient::append_to_last).
WsMessage make_message(std::size_t payload_size, bool binary, std::size_t payload_capacity = 0);
WsMessage make_message(std::string_view payload, bool binary);

// Lifetime: lives on the loop thread. Destroying a connected WsClient closes the connection
// (abruptly; call close() first for a clean close) and no handler runs afterwards. Handlers may
// destroy the WsClient only from on_close.
class WsClient final : public ClientHandler {
 public:
  struct Handlers {
    std::function<void(std::string_view selected_subprotocol)> on_open;
    std::function<void(std::string_view payload, bool binary)> on_message;  // view valid in call
    std::function<void()> on_drain;  // the queue fell to or below the low-water mark
    // The queue fell below the room mark (set_room_mark): a bulk sender that keeps only that
    // much queued, so that its data never waits far ahead of other messages, sends on.
    std::function<void()> on_room;
    std::function<void()> on_pong;
    std::function<void(const WsCloseInfo&)> on_close;  // exactly once per successful connect()
  };

  WsClient(LwsContext& context, Handlers handlers);
  ~WsClient() override;
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;
  WsClient(WsClient&&) = delete;
  WsClient& operator=(WsClient&&) = delete;

  // Starts connecting. Errors: kInvalidArgument (not a ws/wss URL), kClosed (already connected
  // or connecting), kUnavailable (lws refused at once). On error no handler is called.
  [[nodiscard]] Status connect(const WsConnectOptions& options);

  // Queue messages; they are written in order. Ignored when not open.
  void send(WsMessage message);

  void send_text(std::string_view text) { send(make_message(text, false)); }

  void send_binary(std::string_view bytes) { send(make_message(bytes, true)); }

  // Appends `bytes` to the last queued message when that one is binary, still waits for its turn,
  // has room, and its payload starts with `prefix` (a frame header); false, and nothing done,
  // otherwise. A sender behind a slow link so sends a few full frames instead of many small ones.
  bool append_to_last(std::string_view prefix, std::string_view bytes);

  void send_ping();

  // Sends a close frame with `code` and `reason` after the queued messages, then closes.
  void close(int code, std::string_view reason);

  [[nodiscard]] bool is_open() const { return state_ == State::kOpen; }

  [[nodiscard]] bool is_idle() const { return state_ == State::kIdle; }

  [[nodiscard]] std::size_t queued_bytes() const { return queued_bytes_; }

  void set_low_water(std::size_t bytes) { low_water_ = bytes; }

  void set_room_mark(std::size_t bytes) { room_mark_ = bytes; }

  int on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) override;

 private:
  enum class State { kIdle, kConnecting, kOpen, kClosing };
  int on_writeable();
  int on_receive(void* in, size_t len, bool binary);
  void finish(WsCloseInfo info);

  LwsContext& context_;
  Handlers handlers_;
  lws* wsi_ = nullptr;
  State state_ = State::kIdle;
  WsConnectOptions options_;
  std::string host_;         // the Host header; lws reads it during connect
  std::string subprotocol_;  // the one the server selected
  std::deque<WsMessage> outbox_;
  std::size_t queued_bytes_ = 0;
  std::size_t low_water_ = 64U * 1024U;
  std::size_t room_mark_ = 0;       // 0: no on_room
  bool in_connect_ = false;         // inside lws_client_connect_via_info
  bool failed_in_connect_ = false;  // CONNECTION_ERROR arrived before connect() returned
  bool ping_pending_ = false;
  bool close_pending_ = false;
  int close_code_ = 1000;
  std::string close_reason_;
  std::string rx_;  // reassembly of a fragmented message
  bool rx_overflow_ = false;
  WsCloseInfo close_info_;
};

}  // namespace rx::net
