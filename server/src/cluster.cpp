// SPDX-License-Identifier: MIT
#include "rexec/server/cluster.h"

#include "rexec/proto/base64.h"
#include "rexec/proto/message_codec.h"
#include "rexec/proto/utf8.h"
#include "rexec/server/auth/tokens.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <array>

namespace rx::server {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kTerminalProxy = "rexec:terminal_proxy";
constexpr const char* kAgentEvents = "rexec:agent_events";
constexpr const char* kTokenRevoked = "rexec:token_revoked";
constexpr const char* kFileProxy = "rexec:file_proxy";  // ours: file transfers (FileRelay)
// Binary relay frames addressed to one instance: `rexec:relay:<instance id>`. A channel per
// receiver, so terminal bytes reach only the instance they are for (not every instance, the
// sender included, as on a shared channel).
constexpr std::string_view kRelayChannelPrefix = "rexec:relay:";
constexpr std::chrono::milliseconds kStartRetry{500};
// A remote viewer's queue at or below this after an acknowledgement: the hub hears on_drain,
// as from a socket's low-water mark (HttpServerOptions::ws_low_water).
constexpr std::uint64_t kDrainMark = 256U * 1024U;

std::string relay_channel(std::string_view instance) {
  std::string channel(kRelayChannelPrefix);
  channel.append(instance);
  return channel;
}

std::string location_key(const std::string& agent_id) { return "rexec:agent:location:" + agent_id; }

std::string instance_key(const std::string& instance) { return "rexec:instance:" + instance; }

// Per user: "<instance>#<incarnation>|<agent>" → that instance's open terminal sockets on that
// agent. Entries of instances that are gone (or restarted: a new incarnation) are ignored.
std::string user_terminals_key(const std::string& user_id) {
  return "rexec:user_terminals:" + user_id;
}

// Deletes the location only while it still names this instance: the agent may have moved on.
constexpr const char* kDeleteIfMine =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

std::string_view payload_of(const net::WsMessage& m) {
  return {m.buffer.data() + LWS_PRE, m.payload_size()};
}

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

std::string make_instance_id() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) host = {'r', 'e', 'x', 'e', 'c'};
  constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::array<unsigned char, 6> bytes{};
  RAND_bytes(bytes.data(), static_cast<int>(bytes.size()));
  std::string id = std::string(host.data()) + "-";
  for (unsigned char b : bytes) id += kAlphabet[b % kAlphabet.size()];
  return id;
}

// ---- The user's side: one Relay per user terminal socket --------------------------------------

// The Relay, as the local hub sees it: a v2 viewer whose socket is the user's.
class Cluster::LocalConn final : public WsConn {
 public:
  explicit LocalConn(Relay& r) : r_(r) {}

  void send(net::WsMessage m) override;
  void send_ping() override;
  void close(int code, std::string_view reason) override;
  [[nodiscard]] std::size_t queued_bytes() const override;
  void set_receiving(bool on) override;

  [[nodiscard]] bool is_v2() const override { return true; }

  [[nodiscard]] const std::string& peer_address() const override;

 private:
  Relay& r_;
};

class Cluster::Relay final : public WsHandler {
 public:
  Relay(Cluster& c, WsConn& user, TerminalRequest req)
      : c_(c), user_(user), req_(std::move(req)), viewer_(random_hex(8)), pos_(req_.offset) {}

  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  Relay(Relay&&) = delete;
  Relay& operator=(Relay&&) = delete;
  ~Relay() override = default;

  [[nodiscard]] WsConn& user() { return user_; }

  [[nodiscard]] const std::string& agent_id() const { return req_.agent_id; }

  [[nodiscard]] const std::string& target() const { return target_; }

  [[nodiscard]] bool is_remote() const { return !target_.empty() && local_ == nullptr; }

  [[nodiscard]] bool is_attached() const { return attached_; }

  [[nodiscard]] std::string session_id() const {
    return req_.session.value_or(req_.new_session ? "split-" + req_.conn_id : "main");
  }

  void on_message(std::string_view payload, bool binary) override {
    if (closed_ || target_.empty()) return;
    if (local_ != nullptr) {
      handler_->on_message(payload, binary);
      return;
    }
    if (!attached_) {
      // The far hub has not confirmed the viewer yet: keep the keystrokes for it, and stop
      // reading the user once a paste's worth is waiting.
      pending_bytes_ += payload.size();
      pending_.emplace_back(std::string(payload), binary);
      if (pending_bytes_ > kMaxPending) user_.set_receiving(false);
      return;
    }
    send_input(payload, binary);
  }

  void send_input(std::string_view payload, bool binary) {
    if (binary_frames_) {
      c_.publish_frame({RelayType::kInput, binary, 0, {}, target_, wire_id_, payload});
      return;
    }
    c_.publish(kTerminalProxy, "input",
               {{"viewer", wire_id_},
                {"target", target_},
                {"agent_id", req_.agent_id},
                {"session_id", session_id()},
                {"binary", binary},
                {"data", proto::base64_encode(payload)}});
  }

  void on_pong() override {
    if (handler_) handler_->on_pong();
  }

  void on_drain() override {
    if (handler_) {
      handler_->on_drain();
    } else {
      ack();  // the user's socket drained: the far hub may send more
    }
  }

  void on_closed() override {
    closed_ = true;
    detach();
    c_.count_terminal(req_.user_id, req_.agent_id, -1);
  }

  // Attaches to the hub of `instance` as a viewer, at the position shown so far.
  void attach(std::string instance) {  // a copy: it may be target_, which detach() clears
    detach();
    wire_id_ = viewer_ + "." + std::to_string(++generation_);
    c_.relays_[wire_id_] = this;
    target_ = instance;
    expected_seq_ = 0;
    received_ = acked_ = 0;
    binary_frames_ = false;
    TerminalRequest r = req_;
    r.offset = pos_;
    if (instance == c_.instance_id()) {
      local_ = std::make_unique<LocalConn>(*this);
      handler_ = c_.hub_.accept_user(*local_, r);
      return;
    }
    attached_ = false;
    send_start();
    c_.retry_timer_.start(kStartRetry, kStartRetry, [c = &c_] { c->retry_starts(); });
  }

  // Pub/sub keeps nothing for an instance that is not subscribed at that moment (it is
  // reconnecting to Redis, say): a start is sent again until the far hub says it attached.
  void send_start() {
    json m = {{"viewer", wire_id_},
              {"target", target_},
              {"agent_id", req_.agent_id},
              {"session_id", session_id()},
              {"user_id", req_.user_id},
              {"conn_id", req_.conn_id},
              {"new_session", req_.new_session},
              {"peer", user_.peer_address()},
              {"binary_frames", c_.config_.binary_frames}};
    if (pos_) m["offset"] = *pos_;
    if (req_.session) m["attach"] = true;  // view session_id as it is (&session=)
    c_.publish(kTerminalProxy, "start_session", std::move(m));
    started_at_ = Clock::now();
  }

  [[nodiscard]] bool awaits_attach(Clock::time_point now) const {
    return is_remote() && !attached_ && now - started_at_ >= kStartRetry;
  }

  // The far hub attached the viewer; `binary_frames`: its instance takes binary relay frames.
  void attached(bool binary_frames) {
    attached_ = true;
    binary_frames_ = binary_frames;
    auto pending = std::move(pending_);
    pending_.clear();
    for (const auto& [bytes, binary] : pending) send_input(bytes, binary);
    if (pending_bytes_ > kMaxPending) user_.set_receiving(true);
    pending_bytes_ = 0;
  }

  void detach() {
    if (target_.empty()) return;
    if (local_ != nullptr) {
      auto handler = std::move(handler_);
      handler->on_closed();  // the hub lets go of local_ here
      local_.reset();
    } else {
      c_.publish(kTerminalProxy, "stop_session",
                 {{"viewer", wire_id_},
                  {"target", target_},
                  {"agent_id", req_.agent_id},
                  {"session_id", session_id()}});
    }
    c_.relays_.erase(wire_id_);
    target_.clear();
    missing_since_ = {};
  }

  // A frame the hub sent this viewer (always v2), passed on as the user's protocol wants it.
  // The same from the local hub, as a message: output to a v2 user goes on without a copy.
  void from_local(net::WsMessage m) {
    if (closed_) return;
    if (m.binary && user_.is_v2()) {
      pos_ = pos_.value_or(0) + m.payload_size();
      user_.send(std::move(m));
      return;
    }
    from_target(payload_of(m), m.binary);
  }

  void from_target(std::string_view payload, bool binary) {
    if (closed_) return;
    if (binary) {
      const std::uint64_t start = pos_.value_or(0);
      pos_ = start + payload.size();
      if (user_.is_v2()) {
        user_.send_binary(payload);
      } else {
        std::string text = std::move(tail_);
        tail_.clear();
        text.append(payload);
        const std::size_t keep = proto::utf8_complete_prefix(text);
        tail_ = text.substr(keep);
        text.resize(keep);
        if (!text.empty()) {
          user_.send_text(proto::encode_output(text, *pos_ - tail_.size() - text.size()));
        }
      }
    } else {
      const auto j = json::parse(payload, nullptr, false);
      const std::string type = j.is_object() ? str(j, "type") : "";
      if (type == "offset" && j["data"].is_number_unsigned()) {
        pos_ = j["data"].get<std::uint64_t>();
        tail_.clear();
        if (!user_.is_v2()) return;  // v1 has no offset message
      } else if (type == "gap" && j["data"].is_object() && j["data"].contains("to") &&
                 j["data"]["to"].is_number_unsigned()) {
        pos_ = j["data"]["to"].get<std::uint64_t>();
        tail_.clear();
      }
      user_.send_text(payload);
    }
    if (local_ == nullptr) {
      received_ += payload.size();
      check_queue();
    }
  }

  void closed_by_target(int code, const std::string& reason) {
    if (closed_) return;
    user_.close(code, reason);
  }

  // Remote messages are numbered per attachment: a hole means some were lost (Redis went
  // away): attach again at the position shown, and the hub replays what is missing.
  bool in_sequence(std::uint64_t seq) {
    if (seq == expected_seq_) {
      ++expected_seq_;
      return true;
    }
    if (seq > expected_seq_) {
      spdlog::warn("cluster relay lost messages agent={} conn={}: attaching again", req_.agent_id,
                   req_.conn_id);
      attach(target_);
    }
    return false;
  }

  // The agent's location is gone: after the grace period, what the hub would do.
  void location_missing(Clock::time_point now, std::chrono::milliseconds grace) {
    if (missing_since_ == Clock::time_point{}) missing_since_ = now;
    if (now - missing_since_ > grace && !closed_) user_.close(4001, "agent not online");
  }

  void location_present() { missing_since_ = {}; }

 private:
  // Flow control across instances: the far hub counts what it sent this viewer and not yet
  // acknowledged as the viewer's queue, and applies §7 to it as to any socket (pause the
  // session at 1 MiB, drop and close a viewer stalled at 8 MiB). We acknowledge what reached
  // the user's socket, every kAckEvery bytes, while that socket keeps up; once it falls behind,
  // acknowledgements wait for it to drain, and the far hub's queue grows instead.
  static constexpr std::uint64_t kAckEvery = 64U * 1024U;
  static constexpr std::size_t kMaxPending = 1U << 20U;

  void check_queue() {
    const std::size_t queued = user_.queued_bytes();
    if (queued > c_.config_.user_queue_limit) {  // only a far hub that ignores acks gets here
      closed_ = true;
      user_.close(1008, "slow consumer");
      return;
    }
    if (received_ - acked_ >= kAckEvery && queued <= c_.config_.flow_pause_bytes) ack();
  }

  void ack() {
    if (received_ == acked_ || !is_remote()) return;
    acked_ = received_;
    c_.publish(kTerminalProxy, "ack",
               {{"viewer", wire_id_}, {"target", target_}, {"bytes", acked_}});
  }

  Cluster& c_;
  WsConn& user_;
  TerminalRequest req_;
  std::string viewer_;
  std::string wire_id_;
  std::uint64_t generation_ = 0;
  std::string target_;  // "" while detached
  std::unique_ptr<LocalConn> local_;
  std::unique_ptr<WsHandler> handler_;  // the hub's, when local
  std::optional<std::uint64_t> pos_;    // output bytes shown to the user
  std::string tail_;                    // v1: an incomplete UTF-8 sequence held back
  std::uint64_t expected_seq_ = 0;
  bool attached_ = true;        // the far hub confirmed the start
  bool binary_frames_ = false;  // input goes as relay frames (the far instance said it can)
  Clock::time_point started_at_{};
  std::vector<std::pair<std::string, bool>> pending_;  // input before the far hub attached
  std::size_t pending_bytes_ = 0;
  std::uint64_t received_ = 0;  // output payload bytes from the far hub, this attachment
  std::uint64_t acked_ = 0;
  bool closed_ = false;
  Clock::time_point missing_since_{};
};

void Cluster::LocalConn::send(net::WsMessage m) { r_.from_local(std::move(m)); }

void Cluster::LocalConn::send_ping() { r_.user().send_ping(); }

void Cluster::LocalConn::close(int code, std::string_view reason) { r_.user().close(code, reason); }

std::size_t Cluster::LocalConn::queued_bytes() const { return r_.user().queued_bytes(); }

void Cluster::LocalConn::set_receiving(bool on) { r_.user().set_receiving(on); }

const std::string& Cluster::LocalConn::peer_address() const { return r_.user().peer_address(); }

// ---- The agent's side: a viewer on another instance --------------------------------------------

struct Cluster::RemoteViewer {
  std::string wire_id;
  std::string origin;
  std::string agent_id;
  std::string session_id;
  std::string peer;
  std::uint64_t seq = 0;
  std::uint64_t sent = 0;      // payload bytes published to the viewer
  std::uint64_t acked = 0;     // of which its instance acknowledged
  bool binary_frames = false;  // output goes as relay frames (the start said its instance can)
  bool closing = false;
  std::unique_ptr<RemoteConn> conn;
  std::unique_ptr<WsHandler> handler;
};

class Cluster::RemoteConn final : public WsConn {
 public:
  RemoteConn(Cluster& c, RemoteViewer& v) : c_(c), v_(v) {}

  void send(net::WsMessage m) override {
    if (v_.closing) return;
    v_.sent += m.payload_size();
    if (v_.binary_frames) {
      c_.publish_frame(
          {RelayType::kOutput, m.binary, v_.seq++, {}, v_.origin, v_.wire_id, payload_of(m)});
      return;
    }
    c_.publish(kTerminalProxy, "output",
               {{"viewer", v_.wire_id},
                {"target", v_.origin},
                {"agent_id", v_.agent_id},
                {"session_id", v_.session_id},
                {"seq", v_.seq++},
                {"binary", m.binary},
                {"data", proto::base64_encode(payload_of(m))}});
  }

  void send_ping() override {}

  void close(int code, std::string_view reason) override {
    if (v_.closing) return;
    c_.publish(kTerminalProxy, "status",
               {{"viewer", v_.wire_id},
                {"target", v_.origin},
                {"agent_id", v_.agent_id},
                {"session_id", v_.session_id},
                {"seq", v_.seq++},
                {"close", {{"code", code}, {"reason", std::string(reason)}}}});
    v_.closing = true;
    c_.drop_remote(v_.wire_id);
  }

  // Sent and not yet acknowledged: on its way through Redis, or queued to the user's socket.
  [[nodiscard]] std::size_t queued_bytes() const override {
    return static_cast<std::size_t>(v_.sent - v_.acked);
  }

  void set_receiving(bool /*on*/) override {}

  [[nodiscard]] bool is_v2() const override { return true; }

  [[nodiscard]] const std::string& peer_address() const override { return v_.peer; }

 private:
  Cluster& c_;
  RemoteViewer& v_;
};

// ---- Cluster ------------------------------------------------------------------------------------

Cluster::Cluster(uv_loop_t* loop, ClusterConfig config, RedisAddress redis, Hub& hub)
    : incarnation_(random_hex(4)),
      config_(std::move(config)),
      hub_(hub),
      check_timer_(loop),
      reap_timer_(loop),
      retry_timer_(loop) {
  redis_ = std::make_unique<RedisLink>(
      loop, std::move(redis),
      std::vector<std::string>{kTerminalProxy, kAgentEvents, kTokenRevoked, kFileProxy,
                               relay_channel(config_.instance_id)},
      [this](const std::string& channel, std::string_view text) { on_message(channel, text); },
      [this] { on_ready(); });
  hub_.set_events_observer([this](const std::string& user_id, const json& event) {
    publish(kAgentEvents, str(event, "type"), {{"user_id", user_id}, {"event", event}});
  });
  check_timer_.start(config_.check_interval, config_.check_interval, [this] { check(); });
}

Cluster::~Cluster() { stop(); }

void Cluster::stop() {
  if (stopped_) return;
  stopped_ = true;
  hub_.set_events_observer({});
  check_timer_.stop();
  reap_timer_.stop();
  retry_timer_.stop();
  for (auto& [wire, v] : remote_) {
    if (v->handler) v->handler->on_closed();
  }
  remote_.clear();
  // The instance and location keys are left to expire: commands queued now would be discarded
  // with the connection, and the agents' next instance overwrites their locations anyway.
  redis_->stop();
}

void Cluster::publish(const std::string& channel, const std::string& type, json payload) {
  if (stopped_) return;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  json envelope = {{"type", type},
                   {"channel", channel},
                   {"instance_id", config_.instance_id},
                   {"payload", std::move(payload)},
                   {"timestamp", now}};
  if (channel == kTerminalProxy) envelope["payload"]["type"] = type;
  envelope["payload"]["origin"] = config_.instance_id;
  redis_->publish(channel, envelope.dump());
}

void Cluster::publish_frame(RelayFrame f) {
  if (stopped_) return;
  f.origin = config_.instance_id;
  redis_->publish(relay_channel(f.target), encode_relay_frame(f));
}

void Cluster::publish_file(const std::string& target, json payload) {
  const std::string type = str(payload, "type");
  payload["target"] = target;
  publish(kFileProxy, type, std::move(payload));
}

void Cluster::on_message(const std::string& channel, std::string_view text) {
  if (is_relay_frame(text)) {
    on_frame(text);
    return;
  }
  const auto env = json::parse(text, nullptr, false);
  if (!env.is_object() || !env.contains("payload") || !env["payload"].is_object()) {
    spdlog::debug("cluster message dropped channel={}: not an envelope", channel);
    return;
  }
  const std::string from = str(env, "instance_id");
  if (from == config_.instance_id) return;  // our own
  const json& p = env["payload"];
  try {
    if (channel == kTerminalProxy) {
      on_proxy(from, p);
    } else if (channel == kFileProxy) {
      if (str(p, "target") == config_.instance_id && on_file_) on_file_(from, p);
    } else if (channel == kTokenRevoked) {
      std::vector<std::string> ids;
      if (p.contains("token_ids") && p["token_ids"].is_array()) {
        for (const auto& id : p["token_ids"]) {
          if (id.is_string()) ids.push_back(id.get<std::string>());
        }
      }
      if (on_revoked_) on_revoked_(ids, str(p, "deleted_agent_id"));
    } else if (channel == kAgentEvents) {
      const std::string user_id = str(p, "user_id");
      if (p.contains("event") && p["event"].is_object() && !user_id.empty()) {
        hub_.deliver_events(user_id, p["event"].dump());
        if (str(p["event"], "type") == "agent_connected" && p["event"].contains("data") &&
            p["event"]["data"].is_object()) {
          follow(str(p["event"]["data"], "agent_id"), from);
        }
      }
    }
  } catch (const json::exception& e) {  // a field of the wrong type from a foreign instance
    spdlog::debug("cluster message dropped channel={}: {}", channel, e.what());
  }
}

void Cluster::on_proxy(const std::string& from, const json& m) {
  if (str(m, "target") != config_.instance_id) return;
  const std::string type = str(m, "type");
  const std::string wire = str(m, "viewer");
  if (wire.empty()) return;
  if (type == "start_session") {
    if (remote_.count(wire) != 0) return;
    auto v = std::make_unique<RemoteViewer>();
    v->wire_id = wire;
    v->origin = from;
    v->binary_frames = config_.binary_frames && m.value("binary_frames", false);
    v->agent_id = str(m, "agent_id");
    v->session_id = str(m, "session_id");
    v->peer = str(m, "peer");
    v->conn = std::make_unique<RemoteConn>(*this, *v);
    TerminalRequest r{v->agent_id,       str(m, "user_id"),
                      str(m, "conn_id"), m.value("new_session", false),
                      std::nullopt,      std::nullopt};
    if (m.contains("offset") && m["offset"].is_number_unsigned()) {
      r.offset = m["offset"].get<std::uint64_t>();
    }
    if (m.value("attach", false)) r.session = v->session_id;
    RemoteViewer* raw = v.get();
    remote_[wire] = std::move(v);
    // Message 0 says the viewer is attached; the hub's own messages follow.
    publish(kTerminalProxy, "status",
            {{"viewer", wire},
             {"target", from},
             {"seq", raw->seq++},
             {"attached", true},
             {"binary_frames", config_.binary_frames}});
    raw->handler = hub_.accept_user(*raw->conn, r);
    return;
  }
  if (type == "input" || type == "stop_session" || type == "ack") {
    RemoteViewer* v = open_remote(wire);
    if (v == nullptr) return;
    if (type == "ack") {
      const std::uint64_t bytes = m.value("bytes", std::uint64_t{0});
      if (bytes <= v->acked || bytes > v->sent) return;
      const bool was_behind = v->sent - v->acked > kDrainMark;
      v->acked = bytes;
      if (was_behind && v->sent - v->acked <= kDrainMark) v->handler->on_drain();
      return;
    }
    if (type == "stop_session") {
      const auto it = remote_.find(wire);
      auto owned = std::move(it->second);
      remote_.erase(it);
      owned->handler->on_closed();
      return;
    }
    auto bytes = proto::base64_decode(str(m, "data"));
    if (bytes) v->handler->on_message(*bytes, m.value("binary", false));
    return;
  }
  if (type == "output" || type == "status") {
    Relay* relay = relay_or_stop(wire, from, !m.contains("close"));
    if (relay == nullptr) return;
    if (!relay->in_sequence(m.value("seq", std::uint64_t{0}))) return;
    if (m.value("attached", false)) {
      relay->attached(config_.binary_frames && m.value("binary_frames", false));
    } else if (m.value("resync", false)) {
      relay->attach(relay->target());
    } else if (type == "output") {
      auto bytes = proto::base64_decode(str(m, "data"));
      if (bytes) relay->from_target(*bytes, m.value("binary", false));
    } else if (m.contains("close") && m["close"].is_object()) {
      relay->closed_by_target(m["close"].value("code", 1011), str(m["close"], "reason"));
    }
  }
}

// A binary relay frame: `output` or `input` as on_proxy handles them, without JSON or base64.
void Cluster::on_frame(std::string_view bytes) {
  auto decoded = decode_relay_frame(bytes);
  if (!decoded) {
    spdlog::warn("cluster relay frame dropped: {} at byte {} size={}", decoded.error().message,
                 decoded.error().offset, bytes.size());
    return;
  }
  const RelayFrame& f = *decoded;
  if (f.origin == config_.instance_id || f.target != config_.instance_id) return;
  if (f.type == RelayType::kInput) {
    if (RemoteViewer* v = open_remote(f.viewer)) v->handler->on_message(f.payload, f.binary);
    return;
  }
  Relay* relay = relay_or_stop(f.viewer, f.origin, true);
  if (relay != nullptr && relay->in_sequence(f.seq)) relay->from_target(f.payload, f.binary);
}

Cluster::RemoteViewer* Cluster::open_remote(std::string_view wire) {
  const auto it = remote_.find(wire);
  return it == remote_.end() || it->second->closing ? nullptr : it->second.get();
}

Cluster::Relay* Cluster::relay_or_stop(std::string_view wire, std::string_view from, bool tell) {
  const auto it = relays_.find(wire);
  if (it != relays_.end()) return it->second;
  if (tell) {
    publish(kTerminalProxy, "stop_session",
            {{"viewer", std::string(wire)}, {"target", std::string(from)}});
  }
  return nullptr;
}

void Cluster::drop_remote(const std::string& wire) {
  to_reap_.push_back(wire);
  reap_timer_.start(std::chrono::milliseconds(0), [this] { reap(); });
}

void Cluster::reap() {
  auto agents = std::move(to_follow_);
  to_follow_.clear();
  for (const auto& id : agents) {
    if (local_agents_.count(id) != 0) follow(id, config_.instance_id);
  }
  auto wires = std::move(to_reap_);
  to_reap_.clear();
  for (const auto& wire : wires) {
    const auto it = remote_.find(wire);
    if (it == remote_.end()) continue;
    auto v = std::move(it->second);
    remote_.erase(it);
    v->handler->on_closed();
  }
}

std::unique_ptr<WsHandler> Cluster::accept_user(WsConn& conn, const TerminalRequest& request,
                                                const std::string& instance) {
  count_terminal(request.user_id, request.agent_id, 1);
  auto relay = std::make_unique<Relay>(*this, conn, request);
  if (instance != config_.instance_id) {
    spdlog::info("terminal relayed agent={} conn={} to={}", request.agent_id, request.conn_id,
                 instance);
  }
  relay->attach(instance);
  return relay;
}

void Cluster::revoked(const std::vector<std::string>& token_ids,
                      const std::string& deleted_agent_id) {
  json p = {{"token_ids", token_ids}};
  if (!deleted_agent_id.empty()) p["deleted_agent_id"] = deleted_agent_id;
  publish(kTokenRevoked, "token_revoked", std::move(p));
}

void Cluster::retry_starts() {
  const auto now = Clock::now();
  bool pending = false;
  for (auto& [wire, r] : relays_) {
    if (r->awaits_attach(now)) r->send_start();
    pending = pending || (r->is_remote() && !r->is_attached());
  }
  if (!pending) retry_timer_.stop();
}

void Cluster::follow(const std::string& agent_id, const std::string& instance) {
  // The agent has a new link. Viewers attached to another instance move to this one. Those
  // attached remotely to this very instance attach again too: it may have restarted (the same
  // id, a new incarnation) and then holds no attachment for them, which left them without
  // output until their socket closed (tests/deploy/nginx_rolling_test.sh). When it did not
  // restart, attaching again at the position shown costs one replay.
  std::vector<Relay*> moving;
  for (auto& [wire, r] : relays_) {
    if (r->agent_id() == agent_id && (r->target() != instance || r->is_remote())) {
      moving.push_back(r);
    }
  }
  for (Relay* r : moving) {
    spdlog::info("cluster viewer follows agent={} to={}", agent_id, instance);
    r->attach(instance);
  }
}

void Cluster::set_location(const std::string& agent_id) {
  redis_->command({"SET", location_key(agent_id), config_.instance_id, "EX",
                   std::to_string(config_.location_ttl.count())});
}

void Cluster::agent_online(const std::string& agent_id) {
  local_agents_.insert(agent_id);
  set_location(agent_id);
  // Called from inside the hub's accept_agent: the viewers follow from a fresh loop turn.
  to_follow_.push_back(agent_id);
  reap_timer_.start(std::chrono::milliseconds(0), [this] { reap(); });
}

void Cluster::agent_offline(const std::string& agent_id) {
  local_agents_.erase(agent_id);
  redis_->command({"EVAL", kDeleteIfMine, "1", location_key(agent_id), config_.instance_id});
}

void Cluster::agent_heartbeats(const std::vector<std::string>& agent_ids) {
  for (const auto& id : agent_ids) {
    if (local_agents_.count(id) != 0) set_location(id);
  }
}

// Redis is (back) up: restore what a restarted Redis lost, and attach remote viewers again,
// since messages may have been lost meanwhile.
void Cluster::on_ready() {
  redis_->command({"SET", instance_key(config_.instance_id), incarnation_, "EX",
                   std::to_string(config_.instance_ttl.count())});
  for (const auto& id : local_agents_) set_location(id);
  // Output we published while the link was down is lost: our remote viewers attach again.
  for (auto& [wire, v] : remote_) {
    if (v->closing) continue;
    publish(kTerminalProxy, "status",
            {{"viewer", wire}, {"target", v->origin}, {"seq", v->seq++}, {"resync", true}});
  }
  std::vector<Relay*> remote;
  for (auto& [wire, r] : relays_) {
    if (r->is_remote()) remote.push_back(r);
  }
  for (Relay* r : remote) r->attach(r->target());
}

void Cluster::check() {
  redis_->command({"SET", instance_key(config_.instance_id), incarnation_, "EX",
                   std::to_string(config_.instance_ttl.count())});
  if (!redis_->is_ready()) return;
  // Viewers attached elsewhere: follow their agent, or give up after the grace period.
  std::vector<Relay*> remote;
  std::vector<std::string> keys;
  for (auto& [wire, r] : relays_) {
    if (!r->is_remote()) continue;
    remote.push_back(r);
    keys.push_back(location_key(r->agent_id()));
  }
  if (!remote.empty()) {
    auto where = redis_->mget(keys);
    if (where) {
      const auto now = Clock::now();
      for (std::size_t i = 0; i < remote.size(); ++i) {
        const auto& loc = (*where)[i];
        if (!loc) {
          remote[i]->location_missing(now, config_.agent_grace);
        } else {
          remote[i]->location_present();
          if (*loc != remote[i]->target()) follow(remote[i]->agent_id(), *loc);
        }
      }
    }
  }
  // Viewers from instances that died: nobody will close them.
  std::vector<std::string> origins;
  for (auto& [wire, v] : remote_) origins.push_back(instance_key(v->origin));
  if (origins.empty()) return;
  auto alive = redis_->mget(origins);
  if (!alive) return;
  std::vector<std::string> dead;
  std::size_t i = 0;
  for (auto& [wire, v] : remote_) {
    if (!(*alive)[i++] && !v->closing) dead.push_back(wire);
  }
  for (const auto& wire : dead) {
    spdlog::info("cluster viewer dropped: its instance is gone origin={}", remote_[wire]->origin);
    remote_[wire]->closing = true;
    drop_remote(wire);
  }
}

void Cluster::count_terminal(const std::string& user_id, const std::string& agent_id, int delta) {
  redis_->command({"HINCRBY", user_terminals_key(user_id),
                   config_.instance_id + "#" + incarnation_ + "|" + agent_id,
                   std::to_string(delta)});
}

Result<std::set<std::string>> Cluster::terminal_agents(const std::string& user_id) {
  auto all = redis_->hgetall(user_terminals_key(user_id));
  if (!all) return std::move(all).error();
  // Which instances (and incarnations) are alive.
  std::vector<std::string> instances;
  for (const auto& [field, count] : *all) {
    const auto hash = field.find('#');
    if (hash != std::string::npos) instances.push_back(field.substr(0, hash));
  }
  std::vector<std::string> keys;
  keys.reserve(instances.size());
  for (const auto& i : instances) keys.push_back(instance_key(i));
  auto alive = redis_->mget(keys);
  if (!alive) return std::move(alive).error();
  std::set<std::string> agents;
  std::size_t i = 0;
  for (const auto& [field, count] : *all) {
    const auto hash = field.find('#');
    if (hash == std::string::npos) continue;
    const auto& live = (*alive)[i++];  // in the order of `instances`
    const auto bar = field.find('|', hash);
    if (bar == std::string::npos) continue;
    const std::string incarnation = field.substr(hash + 1, bar - hash - 1);
    if (live && *live == incarnation && std::atoll(count.c_str()) > 0) {
      agents.insert(field.substr(bar + 1));
    }
  }
  return agents;
}

Result<std::optional<std::string>> Cluster::locate(const std::string& agent_id) {
  if (local_agents_.count(agent_id) != 0) return std::optional<std::string>(config_.instance_id);
  return redis_->get(location_key(agent_id));
}

Result<std::vector<bool>> Cluster::online(const std::vector<std::string>& agent_ids) {
  std::vector<std::string> keys;
  keys.reserve(agent_ids.size());
  for (const auto& id : agent_ids) keys.push_back(location_key(id));
  auto where = redis_->mget(keys);
  if (!where) return std::move(where).error();
  std::vector<bool> out;
  for (std::size_t i = 0; i < agent_ids.size(); ++i) {
    out.push_back(local_agents_.count(agent_ids[i]) != 0 || (*where)[i].has_value());
  }
  return out;
}

Status Cluster::ping() {
  if (!redis_->is_ready()) return Error(Errc::kUnavailable, "redis not connected");
  return redis_->ping();
}

}  // namespace rx::server
