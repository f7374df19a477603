// SPDX-License-Identifier: MIT
// lws server callbacks for rexec-server: HTTP requests with bodies, upgrade confirmation with
// JSON refusals (PROTOCOL §2: errors are sent before the upgrade), and WebSocket connections.
#include "rexec/server/http_server.h"

#include "rexec/net/lws_context.h"

#include <libwebsockets.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>

namespace rx::server {

std::string HttpRequest::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::optional<std::string> HttpRequest::query_param(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return std::nullopt;
}

namespace {

constexpr const char* kProtocolV1 = "rexec.v1";
constexpr const char* kProtocolV2 = "rexec.v2";

// Open connections per client address (HttpServerOptions::max_conns_per_ip). Shared by the
// server and every counted connection: lws destroys connections during its asynchronous
// teardown, after the server object is gone, and each must still give its place back.
class AddressCounts {
 public:
  explicit AddressCounts(std::size_t limit) : limit_(limit) {}

  bool admit(const std::string& address) {
    std::size_t& n = counts_[address];
    if (n < limit_) {
      ++n;
      return true;
    }
    // Once per episode: a flood must not become a flood of log lines.
    if (warned_.insert(address).second) {
      spdlog::warn("connections refused: too many from peer={} limit={}", address, limit_);
    }
    return false;
  }

  void release(const std::string& address) {
    const auto it = counts_.find(address);
    if (it == counts_.end() || --it->second != 0) return;
    counts_.erase(it);
    warned_.erase(address);
  }

 private:
  std::size_t limit_;
  std::map<std::string, std::size_t> counts_;
  std::set<std::string> warned_;  // addresses refused since their count was last 0
};

// One connection's place in AddressCounts, held until the connection is destroyed.
class AddressSlot {
 public:
  AddressSlot(std::shared_ptr<AddressCounts> counts, std::string address)
      : counts_(std::move(counts)), address_(std::move(address)) {}

  ~AddressSlot() { counts_->release(address_); }

  AddressSlot(const AddressSlot&) = delete;
  AddressSlot& operator=(const AddressSlot&) = delete;
  AddressSlot(AddressSlot&&) = delete;
  AddressSlot& operator=(AddressSlot&&) = delete;

 private:
  std::shared_ptr<AddressCounts> counts_;
  std::string address_;
};

// Per-wsi state, kept in lws's opaque user data (it survives the protocol re-binding that
// happens on upgrade, unlike per-session data). The address slot moves from state to state for
// the whole life of the connection.
class WsiState {
 public:
  virtual ~WsiState() = default;
  WsiState() = default;
  WsiState(const WsiState&) = delete;
  WsiState& operator=(const WsiState&) = delete;
  WsiState(WsiState&&) = delete;
  WsiState& operator=(WsiState&&) = delete;

  std::unique_ptr<AddressSlot> slot;
};

// A connection between HTTP transactions, or after its WebSocket closed.
class IdleConn final : public WsiState {};

// An HTTP transaction: request being read, response being written. A streamed one (file
// transfers) is also the HttpStream its handler writes to.
class HttpTxn final : public WsiState, public HttpStream {
 public:
  explicit HttpTxn(lws* wsi) : wsi_(wsi) {}

  HttpRequest request;
  HttpResponse response;
  std::size_t body_written = 0;
  bool too_large = false;

  // Streamed exchanges only.
  std::unique_ptr<HttpStreamHandler> handler;
  bool head_due = false;      // respond()/respond_head() called, head not written yet
  bool whole = false;         // the body is response.body
  bool finished = false;      // the response is complete (or the transaction is being dropped)
  bool expects_body = false;  // a request body is to be read (lws times out its arrival)
  bool timeout_cleared = false;
  std::uint64_t length = 0;
  std::uint64_t sent = 0;  // streamed body bytes handed to the socket
  std::deque<std::string> outbox;
  std::size_t queued = 0;

  void respond(HttpResponse r) override {
    if (head_due || responded_) return;
    responded_ = head_due = whole = true;
    response = std::move(r);
    length = response.body.size();
    set_receiving(true);  // lws discards the rest of the body once the response is complete
    lws_callback_on_writable(wsi_);
  }

  void respond_head(HttpResponse head, std::uint64_t body_length) override {
    if (head_due || responded_) return;
    responded_ = head_due = true;
    response = std::move(head);
    response.body.clear();
    length = body_length;
    lws_callback_on_writable(wsi_);
  }

  void write(std::string bytes) override {
    if (finished || bytes.empty()) return;
    queued += bytes.size();
    outbox.push_back(std::move(bytes));
    lws_callback_on_writable(wsi_);
  }

  void abort() override {
    finished = true;
    lws_set_timeout(wsi_, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
  }

  [[nodiscard]] std::size_t queued_bytes() const override { return queued; }

  void set_receiving(bool on) override {
    if (receiving_ == on) return;
    receiving_ = on;
    lws_rx_flow_control(wsi_, on ? 1 : 0);
    // Resumed from outside lws's own callbacks (a Redis message, say), lws would leave body
    // bytes it had already read in its buffer until the next event on one of its sockets: wake
    // its service, which then hands them over.
    if (on) lws_cancel_service(lws_get_context(wsi_));
    // lws times out a request body that stops arriving; while we hold it back, it is us.
    if (!on) lws_set_timeout(wsi_, PENDING_TIMEOUT_HTTP_CONTENT, kHeldBodyTimeoutS);
  }

 private:
  static constexpr int kHeldBodyTimeoutS = 300;
  lws* wsi_;
  bool responded_ = false;
  bool receiving_ = true;
};

// An upgrade that was accepted by the application, waiting for ESTABLISHED.
class PendingUpgrade final : public WsiState {
 public:
  std::function<std::unique_ptr<WsHandler>(WsConn&)> accept;
  std::string peer;  // the request's client address
};

class ServerConn final : public WsiState, public WsConn {
 public:
  ServerConn(lws* wsi, std::string peer, bool v2, std::size_t low_water)
      : wsi_(wsi), peer_(std::move(peer)), v2_(v2), low_water_(low_water) {}

  void send(net::WsMessage message) override {
    if (closing_) return;
    queued_ += message.payload_size();
    outbox_.push_back(std::move(message));
    lws_callback_on_writable(wsi_);
  }

  // Every ping_interval to every agent, so an idle link's ping is written at once instead of
  // from the writeable callback: asking lws for that callback and leaving it again made libuv
  // remove and re-add the socket in epoll twice (uv_poll_start deletes the fd first), four
  // epoll_ctl calls per ping and an eighth of an idle instance's CPU (docs/performance.md,
  // "Scale"). This is safe outside the callback: nothing of ours is half written (a message is
  // one lws_write), a control frame may come between messages, and lws appends to the rest of
  // a partial write that it still holds. With messages queued, the ping waits its turn.
  void send_ping() override {
    if (closing_) return;
    // On failure the link is broken: the writeable callback tries again and closes it.
    if (outbox_.empty() && !ping_ && write_ping()) return;
    ping_ = true;
    lws_callback_on_writable(wsi_);
  }

  void close(int code, std::string_view reason) override {
    if (closing_) return;
    closing_ = true;
    close_code_ = code;
    close_reason_ = std::string(reason.substr(0, 120));
    lws_callback_on_writable(wsi_);
  }

  [[nodiscard]] std::size_t queued_bytes() const override { return queued_; }

  void set_receiving(bool on) override {
    if (!closing_) lws_rx_flow_control(wsi_, on ? 1 : 0);
  }

  [[nodiscard]] bool is_v2() const override { return v2_; }

  [[nodiscard]] const std::string& peer_address() const override { return peer_; }

  void set_room_mark(std::size_t bytes) override { room_mark_ = bytes; }

  int on_writeable() {
    if (ping_) {
      ping_ = false;
      if (!write_ping()) return -1;
      if (!outbox_.empty() || closing_) lws_callback_on_writable(wsi_);
      return 0;
    }
    if (!outbox_.empty()) {
      net::WsMessage& m = outbox_.front();
      const std::size_t n = m.payload_size();
      auto* data = reinterpret_cast<unsigned char*>(m.buffer.data()) + LWS_PRE;
      if (lws_write(wsi_, data, n, m.binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
          static_cast<int>(n)) {
        return -1;
      }
      const std::size_t before = queued_;
      queued_ -= n;
      outbox_.pop_front();
      if (!outbox_.empty() || closing_) lws_callback_on_writable(wsi_);
      if (before > low_water_ && queued_ <= low_water_ && handler_) handler_->on_drain();
      if (before >= room_mark_ && queued_ < room_mark_ && handler_) handler_->on_room();
      return 0;
    }
    if (closing_) {
      lws_close_reason(wsi_, static_cast<lws_close_status>(close_code_),
                       reinterpret_cast<unsigned char*>(close_reason_.data()),
                       close_reason_.size());
      return -1;
    }
    return 0;
  }

  // Reassembles fragments; returns -1 to close (message too large).
  int on_receive(const void* in, std::size_t len, std::size_t max_bytes) {
    const bool first = lws_is_first_fragment(wsi_) != 0;
    const bool last = lws_is_final_fragment(wsi_) != 0 && lws_remaining_packet_payload(wsi_) == 0;
    const bool binary = lws_frame_is_binary(wsi_) != 0;
    const std::string_view chunk(static_cast<const char*>(in), len);
    if (first) rx_.clear();
    if (rx_.size() + len > max_bytes) {
      spdlog::warn("websocket message too large, closing peer={} limit={}", peer_, max_bytes);
      std::string reason = "message too large";
      lws_close_reason(wsi_, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                       reinterpret_cast<unsigned char*>(reason.data()), reason.size());
      return -1;
    }
    if (first && last) {
      if (handler_ && !closing_) handler_->on_message(chunk, binary);
      return 0;
    }
    rx_.append(chunk);
    if (last) {
      std::string whole;
      whole.swap(rx_);
      if (handler_ && !closing_) handler_->on_message(whole, binary);
    }
    return 0;
  }

  std::unique_ptr<WsHandler> handler_;

 private:
  // One ping control frame; false when the link is broken.
  bool write_ping() {
    net::WsMessage ping = net::make_message(net::kPingPayload, false);  // never empty
    return lws_write(wsi_, reinterpret_cast<unsigned char*>(ping.buffer.data()) + LWS_PRE,
                     net::kPingPayload.size(), LWS_WRITE_PING) >= 0;
  }

  lws* wsi_;
  std::string peer_;
  bool v2_;
  std::size_t low_water_;
  std::size_t room_mark_ = 0;
  std::deque<net::WsMessage> outbox_;
  std::size_t queued_ = 0;
  bool ping_ = false;
  bool closing_ = false;
  int close_code_ = 1000;
  std::string close_reason_;
  std::string rx_;
};

std::string copy_header(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  const int n = lws_hdr_copy(wsi, out.data(), len + 1, token);
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string copy_custom_header(lws* wsi, const char* name) {
  const int name_len = static_cast<int>(std::strlen(name));
  const int len = lws_hdr_custom_length(wsi, name, name_len);
  if (len <= 0) return {};
  std::string out(static_cast<std::size_t>(len) + 1, '\0');
  const int n = lws_hdr_custom_copy(wsi, out.data(), len + 1, name, name_len);
  if (n < 0) return {};
  out.resize(static_cast<std::size_t>(n));
  return out;
}

const char* method_name(int m) {
  switch (m) {
    case LWSHUMETH_GET:
      return "GET";
    case LWSHUMETH_POST:
      return "POST";
    case LWSHUMETH_OPTIONS:
      return "OPTIONS";
    case LWSHUMETH_PUT:
      return "PUT";
    case LWSHUMETH_PATCH:
      return "PATCH";
    case LWSHUMETH_DELETE:
      return "DELETE";
    default:
      return "";
  }
}

// The socket's peer address, IPv4-mapped IPv6 written as plain IPv4.
std::string socket_peer(lws* wsi) {
  std::array<char, 64> peer{};
  lws_get_peer_simple(wsi, peer.data(), peer.size());
  std::string_view p = peer.data();
  constexpr std::string_view kMapped = "::ffff:";
  if (p.rfind(kMapped, 0) == 0 && p.find('.') != std::string_view::npos) p.remove_prefix(7);
  return std::string(p);
}

// The last address in an X-Forwarded-For list (the one our proxy appended), if it is one.
std::optional<std::string> last_forwarded(std::string_view list) {
  const auto comma = list.rfind(',');
  std::string_view last = comma == std::string_view::npos ? list : list.substr(comma + 1);
  while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) last.remove_prefix(1);
  while (!last.empty() && (last.back() == ' ' || last.back() == '\t')) last.remove_suffix(1);
  const std::string addr(last);
  std::array<unsigned char, sizeof(in6_addr)> buf{};
  if (inet_pton(AF_INET, addr.c_str(), buf.data()) == 1 ||
      inet_pton(AF_INET6, addr.c_str(), buf.data()) == 1) {
    return addr;
  }
  return std::nullopt;
}

bool is_trusted(const std::vector<std::string>& proxies, const std::string& peer) {
  return std::find(proxies.begin(), proxies.end(), peer) != proxies.end();
}

HttpRequest read_request(lws* wsi, const std::vector<std::string>& trusted_proxies) {
  HttpRequest req;
  char* uri = nullptr;
  int uri_len = 0;
  const int method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
  req.method = method >= 0 ? method_name(method) : "";
  if (uri != nullptr && uri_len > 0) req.path.assign(uri, static_cast<std::size_t>(uri_len));
  std::array<char, 4096> frag{};
  for (int i = 0;; ++i) {
    const int n = lws_hdr_copy_fragment(wsi, frag.data(), static_cast<int>(frag.size()),
                                        WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) break;
    std::string_view kv(frag.data(), static_cast<std::size_t>(n));
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) {
      req.query.emplace_back(std::string(kv), "");
    } else {
      req.query.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  const std::pair<const char*, lws_token_indexes> known[] = {
      {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
      {"origin", WSI_TOKEN_ORIGIN},
      {"sec-websocket-protocol", WSI_TOKEN_PROTOCOL},
      {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
      {"host", WSI_TOKEN_HOST},
      {"upgrade", WSI_TOKEN_UPGRADE},
      {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
  };
  for (const auto& [name, token] : known) {
    if (auto v = copy_header(wsi, token); !v.empty()) req.headers[name] = std::move(v);
  }
  for (const char* name :
       {"x-agent-os:", "x-agent-arch:", "x-agent-shell:", "x-agent-distro:", "x-agent-version:"}) {
    if (auto v = copy_custom_header(wsi, name); !v.empty()) {
      std::string key(name);
      key.pop_back();
      req.headers[key] = std::move(v);
    }
  }
  req.peer = socket_peer(wsi);
  if (is_trusted(trusted_proxies, req.peer)) {
    if (auto fwd = last_forwarded(req.header("x-forwarded-for"))) req.peer = std::move(*fwd);
  }
  return req;
}

// Writes status line, headers and body at once. Used for upgrade refusals, where lws completes
// the transaction as soon as the callback returns.
bool write_whole_response(lws* wsi, const HttpResponse& r) {
  std::string buf(LWS_PRE + 1024 + r.body.size(), '\0');
  auto* start = reinterpret_cast<unsigned char*>(buf.data()) + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = reinterpret_cast<unsigned char*>(buf.data()) + buf.size();
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(r.status), r.content_type.c_str(),
                                  r.body.size(), &p, end) != 0) {
    return false;
  }
  for (const auto& [k, v] : r.headers) {
    const std::string key = k + ":";
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(key.c_str()),
                                    reinterpret_cast<const unsigned char*>(v.data()),
                                    static_cast<int>(v.size()), &p, end) != 0) {
      return false;
    }
  }
  if (lws_finalize_http_header(wsi, &p, end) != 0) return false;
  std::memcpy(p, r.body.data(), r.body.size());
  p += r.body.size();
  const auto n = static_cast<std::size_t>(p - start);
  return lws_write(wsi, start, n, LWS_WRITE_HTTP_HEADERS) == static_cast<int>(n);
}

template <class T>
T* state_as(lws* wsi) {
  return dynamic_cast<T*>(static_cast<WsiState*>(lws_get_opaque_user_data(wsi)));
}

// Replaces the wsi's state (null: the connection is idle), keeping its address slot.
void set_state(lws* wsi, WsiState* state) {
  auto* old = static_cast<WsiState*>(lws_get_opaque_user_data(wsi));
  if (old != nullptr && old->slot) {
    if (state == nullptr) state = new IdleConn();  // NOLINT(cppcoreguidelines-owning-memory)
    state->slot = std::move(old->slot);
  }
  delete old;  // NOLINT(cppcoreguidelines-owning-memory): owned via opaque user data
  lws_set_opaque_user_data(wsi, state);
}

// The connection is gone: its state and its address slot go with it.
void destroy_state(lws* wsi) {
  delete static_cast<WsiState*>(lws_get_opaque_user_data(wsi));  // NOLINT: owned via opaque
  lws_set_opaque_user_data(wsi, nullptr);
}

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpServerOptions options, HttpHandlers handlers)
      : options_(std::move(options)), handlers_(std::move(handlers)) {}

  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
    // Protocol-level events can arrive from lws's asynchronous teardown after the Impl is gone,
    // so they must not reach the context user pointer.
    if (reason == LWS_CALLBACK_PROTOCOL_INIT || reason == LWS_CALLBACK_PROTOCOL_DESTROY ||
        reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED || reason == LWS_CALLBACK_GET_THREAD_ID) {
      return 0;
    }
    // So can connection destruction; it needs only the wsi's own state.
    if (reason == LWS_CALLBACK_WSI_DESTROY) {
      destroy_state(wsi);
      return 0;
    }
    auto* self = static_cast<Impl*>(lws_context_user(lws_get_context(wsi)));
    if (self == nullptr) return lws_callback_http_dummy(wsi, reason, user, in, len);
    try {
      return self->on_event(wsi, reason, user, in, len);
    } catch (const std::exception& e) {
      spdlog::error("connection failed: exception in handler what={}", e.what());
      return -1;
    }
  }

  int on_event(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  // Writes the head of txn.response; a non-empty body follows (write_body) unless `streamed`,
  // in which case txn.length bytes follow through the stream.
  int start_response(lws* wsi, HttpTxn& txn, std::uint64_t length, bool streamed = false);
  int write_body(lws* wsi, HttpTxn& txn);
  int write_stream(lws* wsi, HttpTxn& txn);
  // The request head of a streamed exchange: hand it to its handler; false: not a stream.
  bool start_stream(lws* wsi, HttpTxn& txn);
  // Counts an accepted connection against its address; false: over the limit, close it.
  bool admit(lws* wsi);

  HttpServerOptions options_;
  HttpHandlers handlers_;
  std::array<lws_protocols, 3> protocols_{};
  std::shared_ptr<AddressCounts> address_counts_ =
      std::make_shared<AddressCounts>(options_.max_conns_per_ip);
  std::unique_ptr<net::LwsContext> context_;
};

int HttpServer::Impl::start_response(lws* wsi, HttpTxn& txn, std::uint64_t length, bool streamed) {
  std::string buf(LWS_PRE + 2048, '\0');
  auto* start = reinterpret_cast<unsigned char*>(buf.data()) + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = reinterpret_cast<unsigned char*>(buf.data()) + buf.size();
  const HttpResponse& r = txn.response;
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(r.status), r.content_type.c_str(),
                                  static_cast<lws_filepos_t>(length), &p, end) != 0) {
    return -1;
  }
  for (const auto& [k, v] : r.headers) {
    const std::string key = k + ":";
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(key.c_str()),
                                    reinterpret_cast<const unsigned char*>(v.data()),
                                    static_cast<int>(v.size()), &p, end) != 0) {
      return -1;
    }
  }
  if (lws_finalize_write_http_header(wsi, start, &p, end) != 0) return -1;
  if (length == 0) {
    set_state(wsi, nullptr);  // the transaction (and a stream's handler) ends here
    return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
  }
  if (!streamed) txn.whole = true;
  lws_callback_on_writable(wsi);
  return 0;
}

bool HttpServer::Impl::start_stream(lws* wsi, HttpTxn& txn) {
  if (!handlers_.on_stream) return false;
  txn.handler = handlers_.on_stream(txn.request, txn);
  if (!txn.handler) return false;
  const std::string length = txn.request.header("content-length");
  txn.expects_body = !length.empty() && std::strtoull(length.c_str(), nullptr, 10) > 0 &&
                     (txn.request.method == "POST" || txn.request.method == "PUT" ||
                      txn.request.method == "PATCH");
  // lws reports no body events for a PUT without a body.
  if (!txn.expects_body && !txn.finished) txn.handler->on_body_end();
  // A client that asks first (curl does for bodies above 1 MiB) would otherwise wait a second
  // before sending; lws 4.1 does not answer Expect itself.
  if (txn.expects_body && !txn.head_due && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) > 0 &&
      copy_header(wsi, WSI_TOKEN_HTTP_EXPECT) == "100-continue") {
    std::string line(LWS_PRE, '\0');
    line += "HTTP/1.1 100 Continue\r\n\r\n";
    const std::size_t n = line.size() - LWS_PRE;
    // A failed write means a dead socket, which lws closes on its own.
    (void)lws_write(wsi, reinterpret_cast<unsigned char*>(line.data()) + LWS_PRE, n,
                    LWS_WRITE_HTTP_HEADERS);
  }
  // The first WRITEABLE also clears lws's request timeout (write_stream), and writes whatever
  // the handler answered at once.
  lws_callback_on_writable(wsi);
  return true;
}

int HttpServer::Impl::write_stream(lws* wsi, HttpTxn& txn) {
  if (!txn.expects_body && !txn.timeout_cleared) {
    // lws gives a request without a body the time to send one; this one has none, and the
    // answer waits for the agent (FileService bounds that wait itself).
    txn.timeout_cleared = true;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  }
  if (txn.head_due) {
    txn.head_due = false;
    if (start_response(wsi, txn, txn.length, !txn.whole) != 0) return -1;
    return 0;  // start_response asked for the next WRITEABLE, or completed the transaction
  }
  if (txn.whole) return write_body(wsi, txn);
  if (txn.finished || txn.outbox.empty()) return 0;
  // One piece per WRITEABLE: other connections (and terminals) get their turn in between.
  std::string piece = std::move(txn.outbox.front());
  txn.outbox.pop_front();
  txn.queued -= piece.size();
  if (txn.sent + piece.size() > txn.length) piece.resize(txn.length - txn.sent);
  const bool final = txn.sent + piece.size() == txn.length;
  std::string buf(LWS_PRE + piece.size(), '\0');
  std::memcpy(buf.data() + LWS_PRE, piece.data(), piece.size());
  if (lws_write(wsi, reinterpret_cast<unsigned char*>(buf.data()) + LWS_PRE, piece.size(),
                final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != static_cast<int>(piece.size())) {
    return -1;
  }
  txn.sent += piece.size();
  if (final) txn.finished = true;
  txn.handler->on_written(txn.sent);
  if (final) {
    set_state(wsi, nullptr);  // the handler goes with it
    return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
  }
  if (!txn.outbox.empty()) lws_callback_on_writable(wsi);
  return 0;
}

int HttpServer::Impl::write_body(lws* wsi, HttpTxn& txn) {
  constexpr std::size_t kChunk = 16U * 1024U;  // bytes per WRITEABLE; keeps the loop responsive
  const std::string& body = txn.response.body;
  const std::size_t n = std::min(kChunk, body.size() - txn.body_written);
  std::string buf(LWS_PRE + n, '\0');
  std::memcpy(buf.data() + LWS_PRE, body.data() + txn.body_written, n);
  const bool final = txn.body_written + n == body.size();
  if (lws_write(wsi, reinterpret_cast<unsigned char*>(buf.data()) + LWS_PRE, n,
                final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != static_cast<int>(n)) {
    return -1;
  }
  txn.body_written += n;
  if (!final) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  set_state(wsi, nullptr);
  return lws_http_transaction_completed(wsi) != 0 ? -1 : 0;
}

bool HttpServer::Impl::admit(lws* wsi) {
  if (options_.max_conns_per_ip == 0) return true;
  const std::string peer = socket_peer(wsi);
  if (is_trusted(options_.trusted_proxies, peer)) return true;  // it carries many clients
  if (!address_counts_->admit(peer)) return false;
  auto* idle = new IdleConn();  // NOLINT(cppcoreguidelines-owning-memory): owned via opaque
  idle->slot = std::make_unique<AddressSlot>(address_counts_, peer);
  set_state(wsi, idle);
  return true;
}

int HttpServer::Impl::on_event(lws* wsi, lws_callback_reasons reason, void* user, void* in,
                               size_t len) {
  switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
      return admit(wsi) ? 0 : -1;
    case LWS_CALLBACK_HTTP: {
      auto* txn = new HttpTxn(wsi);  // NOLINT(cppcoreguidelines-owning-memory): owned via opaque
      set_state(wsi, txn);
      txn->request = read_request(wsi, options_.trusted_proxies);
      const bool has_length = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
      if (!has_length && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        // lws 4.1 does not decode chunked request bodies; say so instead of waiting forever.
        txn->response = HttpResponse::json(411, R"({"error":"content-length required"})");
        return start_response(wsi, *txn, txn->response.body.size());
      }
      if (has_length)
        txn->request.headers["content-length"] = copy_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
      if (start_stream(wsi, *txn)) return 0;
      if (has_length && (txn->request.method == "POST" || txn->request.method == "PUT" ||
                         txn->request.method == "PATCH")) {
        return 0;  // wait for the body (HTTP_BODY..., HTTP_BODY_COMPLETION)
      }
      // No Content-Length: the body is empty (RFC 9112 §6.3), and lws would wait for one.
      txn->response = handlers_.on_request(txn->request);
      return start_response(wsi, *txn, txn->response.body.size());
    }
    case LWS_CALLBACK_HTTP_BODY: {
      auto* txn = state_as<HttpTxn>(wsi);
      if (txn == nullptr) return -1;
      if (txn->handler) {
        if (!txn->finished) txn->handler->on_body({static_cast<const char*>(in), len});
        return 0;
      }
      if (txn->request.body.size() + len > options_.max_body_bytes) {
        txn->too_large = true;
        return 0;  // keep reading, answer 413 at completion
      }
      txn->request.body.append(static_cast<const char*>(in), len);
      return 0;
    }
    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
      auto* txn = state_as<HttpTxn>(wsi);
      if (txn == nullptr) return -1;
      if (txn->handler) {
        if (!txn->finished) txn->handler->on_body_end();
        return 0;
      }
      txn->response = txn->too_large
                          ? HttpResponse::json(413, R"({"error":"request body too large"})")
                          : handlers_.on_request(txn->request);
      return start_response(wsi, *txn, txn->response.body.size());
    }
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      auto* txn = state_as<HttpTxn>(wsi);
      if (txn == nullptr) return 0;
      if (txn->handler) return write_stream(wsi, *txn);
      return write_body(wsi, *txn);
    }
    case LWS_CALLBACK_CLOSED_HTTP: {
      auto* txn = state_as<HttpTxn>(wsi);
      if (txn != nullptr && txn->handler && !txn->finished) {
        txn->finished = true;
        txn->handler->on_closed();
      }
      return 0;
    }
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
      if (in == nullptr || std::strcmp(static_cast<const char*>(in), "websocket") != 0) return -1;
      HttpRequest req = read_request(wsi, options_.trusted_proxies);
      req.is_upgrade = true;
      UpgradeDecision d = handlers_.on_upgrade(req);
      if (d.refusal || !d.accept) {
        const HttpResponse refusal =
            d.refusal ? *d.refusal : HttpResponse::json(404, R"({"error":"not found"})");
        spdlog::info("upgrade refused path={} status={} peer={}", req.path, refusal.status,
                     req.peer);
        return write_whole_response(wsi, refusal) ? 1 : -1;
      }
      auto* pending = new PendingUpgrade();  // NOLINT(cppcoreguidelines-owning-memory)
      pending->accept = std::move(d.accept);
      pending->peer = req.peer;
      set_state(wsi, pending);
      return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
      auto* pending = state_as<PendingUpgrade>(wsi);
      if (pending == nullptr) return -1;
      auto accept = std::move(pending->accept);
      std::string peer = std::move(pending->peer);
      const bool v2 = std::strcmp(lws_get_protocol(wsi)->name, kProtocolV2) == 0;
      auto* conn = new ServerConn(wsi, std::move(peer), v2, options_.ws_low_water);  // NOLINT
      set_state(wsi, conn);
      conn->handler_ = accept(*conn);
      return conn->handler_ ? 0 : -1;
    }
    case LWS_CALLBACK_RECEIVE: {
      auto* conn = state_as<ServerConn>(wsi);
      if (conn == nullptr) return -1;
      return conn->on_receive(in, len, options_.max_frame_bytes);
    }
    case LWS_CALLBACK_RECEIVE_PONG: {
      auto* conn = state_as<ServerConn>(wsi);
      if (conn != nullptr && conn->handler_) conn->handler_->on_pong();
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      auto* conn = state_as<ServerConn>(wsi);
      if (conn == nullptr) return 0;
      return conn->on_writeable();
    }
    case LWS_CALLBACK_CLOSED: {
      auto* conn = state_as<ServerConn>(wsi);
      if (conn != nullptr && conn->handler_) {
        auto handler = std::move(conn->handler_);
        handler->on_closed();
      }
      set_state(wsi, nullptr);
      return 0;
    }
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      HttpHandlers handlers) {
  auto impl = std::make_unique<Impl>(options, std::move(handlers));
  // protocols[0] serves plain HTTP and WebSockets that offer no subprotocol (v1 peers such as
  // the deployed Go agent); "rexec.v2" is chosen whenever a client offers it.
  const auto rx = static_cast<std::size_t>(64U * 1024U);
  impl->protocols_[0] = {kProtocolV1, &Impl::callback, 0, rx, 0, nullptr, 0};
  impl->protocols_[1] = {kProtocolV2, &Impl::callback, 0, rx, 1, nullptr, 0};
  impl->protocols_[2] = {nullptr, nullptr, 0, 0, 0, nullptr, 0};
  net::ContextOptions c;
  c.loop = options.loop;
  c.protocols = impl->protocols_.data();
  c.port = options.port;
  c.bind_address = options.host;
  c.user = impl.get();
  c.tls_cert_file = options.tls_cert_file;
  c.tls_key_file = options.tls_key_file;
  c.header_timeout_s = options.header_timeout_s;
  c.max_pending_requests = options.max_pending_requests;
  auto context = net::LwsContext::create(c);
  if (!context) return std::move(context).error();
  impl->context_ = std::move(context).value();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() = default;

int HttpServer::port() const { return impl_->context_->port(); }

}  // namespace rx::server
