// SPDX-License-Identifier: MIT
// WsClient: lws client callbacks turned into calls on a C++ object (STYLE.md "trampolines").
#include "rexec/net/ws_client.h"

#include <spdlog/spdlog.h>

#include <cstring>

namespace rx::net {

WsMessage make_message(std::size_t payload_size, bool binary, std::size_t payload_capacity) {
  return WsMessage{MessageBuffer(LWS_PRE + payload_size, LWS_PRE + payload_capacity), binary};
}

WsMessage make_message(std::string_view payload, bool binary) {
  WsMessage m = make_message(payload.size(), binary);
  if (!payload.empty()) std::memcpy(m.buffer.data() + LWS_PRE, payload.data(), payload.size());
  return m;
}

WsClient::WsClient(LwsContext& context, Handlers handlers)
    : context_(context), handlers_(std::move(handlers)) {}

WsClient::~WsClient() {
  if (wsi_ != nullptr) {
    lws_set_opaque_user_data(wsi_, nullptr);
    lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

Status WsClient::connect(const WsConnectOptions& options) {
  if (state_ != State::kIdle) return Error(Errc::kClosed, "connection already in use");
  if (options.url.scheme != "ws" && options.url.scheme != "wss") {
    return Error(Errc::kInvalidArgument, "WebSocket URL must be ws:// or wss://");
  }
  options_ = options;
  host_ = options_.url.host_header();
  outbox_.clear();
  queued_bytes_ = 0;
  ping_pending_ = close_pending_ = false;
  reset_tls_verify_error();
  close_info_ = {};

  lws_client_connect_info info;
  std::memset(&info, 0, sizeof info);
  info.context = context_.get();
  info.vhost = context_.vhost();
  info.address = options_.url.host.c_str();
  info.port = options_.url.port;
  info.path = options_.url.path.c_str();
  info.host = host_.c_str();
  // lws 4.1 would write "Origin: http://<origin>"; the header is added whole in
  // APPEND_HANDSHAKE_HEADER instead, so any scheme can be sent.
  info.origin = nullptr;
  info.protocol = options_.subprotocols.empty() ? nullptr : options_.subprotocols.c_str();
  info.local_protocol_name = kClientProtocolName;
  info.ssl_connection = options_.url.is_tls() ? LCCSCF_USE_SSL : 0;
  info.opaque_user_data = this;
  info.pwsi = &wsi_;

  state_ = State::kConnecting;
  in_connect_ = true;
  lws* wsi = lws_client_connect_via_info(&info);
  in_connect_ = false;
  if (wsi == nullptr || failed_in_connect_) {
    failed_in_connect_ = false;
    // lws may already have reported the failure through CONNECTION_ERROR (and finish() reset
    // the state); either way the caller hears about it here and no handler runs.
    std::string why = close_info_.reason.empty() ? "cannot start connection" : close_info_.reason;
    state_ = State::kIdle;
    wsi_ = nullptr;
    if (tls_refused()) return Error(Errc::kUnavailable, why);
    return Error(Errc::kUnavailable, "connect to " + options_.url.host_header() + ": " + why);
  }
  return {};
}

bool WsClient::append_to_last(std::string_view prefix, std::string_view bytes) {
  if (state_ != State::kOpen || outbox_.empty()) return false;
  WsMessage& last = outbox_.back();
  if (!last.binary || last.buffer.room() < bytes.size() || last.payload_size() < prefix.size() ||
      std::memcmp(last.buffer.data() + LWS_PRE, prefix.data(), prefix.size()) != 0) {
    return false;
  }
  last.buffer.append(bytes);
  queued_bytes_ += bytes.size();
  return true;
}

void WsClient::send(WsMessage message) {
  if (state_ != State::kOpen && state_ != State::kConnecting) return;
  queued_bytes_ += message.payload_size();
  outbox_.push_back(std::move(message));
  if (state_ == State::kOpen) lws_callback_on_writable(wsi_);
}

void WsClient::send_ping() {
  if (state_ != State::kOpen) return;
  ping_pending_ = true;
  lws_callback_on_writable(wsi_);
}

void WsClient::close(int code, std::string_view reason) {
  if (state_ == State::kIdle || wsi_ == nullptr) return;
  close_pending_ = true;
  close_code_ = code;
  close_reason_ = std::string(reason.substr(0, 120));  // a close frame's payload is at most 125
  if (state_ == State::kOpen) {
    lws_callback_on_writable(wsi_);
  } else {
    lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }
}

int WsClient::on_writeable() {
  if (ping_pending_) {
    ping_pending_ = false;
    WsMessage ping = make_message(kPingPayload, false);
    if (lws_write(wsi_, reinterpret_cast<unsigned char*>(ping.buffer.data()) + LWS_PRE,
                  kPingPayload.size(), LWS_WRITE_PING) < 0) {
      return -1;
    }
    if (!outbox_.empty() || close_pending_) lws_callback_on_writable(wsi_);
    return 0;
  }
  if (outbox_.empty()) {
    if (close_pending_) {
      state_ = State::kClosing;
      lws_close_reason(wsi_, static_cast<lws_close_status>(close_code_),
                       reinterpret_cast<unsigned char*>(close_reason_.data()),
                       close_reason_.size());
      return -1;
    }
    return 0;
  }
  WsMessage& m = outbox_.front();
  const std::size_t n = m.payload_size();
  auto* data = reinterpret_cast<unsigned char*>(m.buffer.data()) + LWS_PRE;
  if (lws_write(wsi_, data, n, m.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
      static_cast<int>(n)) {
    spdlog::debug("websocket write failed bytes={}", n);
    return -1;
  }
  const std::size_t before = queued_bytes_;
  queued_bytes_ -= n;
  outbox_.pop_front();
  if (!outbox_.empty() || close_pending_) lws_callback_on_writable(wsi_);
  if (before > low_water_ && queued_bytes_ <= low_water_ && handlers_.on_drain) {
    handlers_.on_drain();
  }
  if (before >= room_mark_ && queued_bytes_ < room_mark_ && handlers_.on_room) {
    handlers_.on_room();
  }
  return 0;
}

int WsClient::on_receive(void* in, size_t len, bool binary) {
  const bool first = lws_is_first_fragment(wsi_) != 0;
  const bool last = lws_is_final_fragment(wsi_) != 0 && lws_remaining_packet_payload(wsi_) == 0;
  const std::string_view chunk(static_cast<const char*>(in), len);
  if (first) rx_.clear();
  if (rx_.size() + len > options_.max_message_bytes) {
    spdlog::warn("websocket message too large, closing limit={}", options_.max_message_bytes);
    rx_.clear();
    static constexpr std::string_view kReason = "message too large";
    std::string reason(kReason);
    lws_close_reason(wsi_, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                     reinterpret_cast<unsigned char*>(reason.data()), reason.size());
    return -1;
  }
  if (first && last) {  // the common case: one whole message in one callback, no copy
    if (handlers_.on_message) handlers_.on_message(chunk, binary);
    return 0;
  }
  rx_.append(chunk);
  if (last) {
    std::string whole;
    whole.swap(rx_);
    if (handlers_.on_message) handlers_.on_message(whole, binary);
  }
  return 0;
}

void WsClient::finish(WsCloseInfo info) {
  wsi_ = nullptr;
  state_ = State::kIdle;
  outbox_.clear();
  queued_bytes_ = 0;
  rx_.clear();
  auto on_close = handlers_.on_close;  // the handler may destroy *this
  if (on_close) on_close(info);
}

int WsClient::on_lws_event(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
      auto** p = static_cast<unsigned char**>(in);
      unsigned char* end = *p + len;
      auto headers = options_.headers;
      if (!options_.origin.empty()) headers.emplace_back("origin", options_.origin);
      for (const auto& [name, value] : headers) {
        std::string key = name + ":";
        if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(key.c_str()),
                                        reinterpret_cast<const unsigned char*>(value.data()),
                                        static_cast<int>(value.size()), p, end) != 0) {
          return -1;
        }
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: {
      char proto[64] = {0};
      if (lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL) < 0) proto[0] = '\0';
      subprotocol_ = proto;
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      wsi_ = wsi;
      state_ = State::kOpen;
      close_info_.was_open = true;
      if (!outbox_.empty() || close_pending_) lws_callback_on_writable(wsi);
      if (handlers_.on_open) handlers_.on_open(subprotocol_);
      return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
      return on_receive(in, len, lws_frame_is_binary(wsi) != 0);
    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
      if (handlers_.on_pong) handlers_.on_pong();
      return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
      return on_writeable();
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (len >= 2) {
        const auto* b = static_cast<const unsigned char*>(in);
        close_info_.close_code = (b[0] << 8) | b[1];
        close_info_.reason.assign(reinterpret_cast<const char*>(b) + 2, len - 2);
      }
      return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      WsCloseInfo info = close_info_;
      info.http_status = static_cast<int>(lws_http_client_http_response(wsi));
      info.reason = failure_reason(context_, options_.url.host, in, len);
      lws_set_opaque_user_data(wsi, nullptr);  // nothing may reach us after this event
      if (in_connect_) {
        close_info_ = info;  // still inside connect(): it reports the failure itself
        failed_in_connect_ = true;
        return 0;
      }
      finish(std::move(info));
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CLOSED:
      lws_set_opaque_user_data(wsi, nullptr);  // WSI_DESTROY follows; the handler may be gone
      finish(close_info_);
      return 0;
    default:
      return 0;
  }
}

}  // namespace rx::net
