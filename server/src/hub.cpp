// SPDX-License-Identifier: MIT
// The hub's routing: agent ⇄ sessions ⇄ viewers, heartbeats, grace and linger timers.
#include "rexec/server/hub.h"

#include "rexec/common/check.h"
#include "rexec/proto/base64.h"
#include "rexec/proto/binary_frame.h"
#include "rexec/proto/message_codec.h"
#include "rexec/proto/utf8.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <vector>

namespace rx::server {

using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;
using nlohmann::json;

namespace {

// The `data` member of a message as proto::encode() writes it: {"type":"…","data":<data>}.
std::string data_of(std::string_view text) {
  const auto at = text.find(R"(,"data":)");
  REXEC_CHECK(at != std::string_view::npos && text.back() == '}');
  text.remove_prefix(at + 8);
  text.remove_suffix(1);
  return std::string(text);
}

}  // namespace

std::string format_time(SysClock::time_point t) {
  const std::time_t tt = SysClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// An exec waiting for its exec_result: a terminal socket's (`user`, null once that socket
// closed) or start_exec's (`done`, empty once cancelled). A waiter stays until its result comes
// even when nobody wants it any more, so that the result is not taken for another command's.
struct Hub::ExecWaiter {
  std::uint64_t id = 0;
  UserConn* user = nullptr;
  ExecDone done;
  std::string user_id;
  std::optional<std::string> session_id;  // the terminal's session; none for start_exec
  std::string command;
  Clock::time_point started;
};

// One connected agent. Kept small: an instance holds 100,000 of them (docs/performance.md,
// "Scale"), so its system info is kept as JSON text, not as a parsed tree, and its stats as the
// flat struct they decode to (smaller than their text, and encoded only when something reads
// them).
struct Hub::AgentConn {
  std::string id;
  std::string user_id;
  WsConn* conn = nullptr;
  AgentHello hello;  // its agent_id and user_id moved to the two above
  Clock::time_point last_rx;
  Clock::time_point stats_stored;  // when a stats sample last went to the store
  SysClock::time_point connected_at;
  SysClock::time_point last_ping;
  std::string system_info;               // its `data`, JSON text; empty until sent
  std::optional<proto::Stats> stats;     // the latest; none until sent
  std::vector<ExecWaiter> exec_waiters;  // in the order they were sent
  std::set<UserConn*> paused_senders;    // not read until this agent's input queue drains
  int paused_sessions = 0;               // v1: its link is not read while this is above 0
  bool ponged = false;                   // answered a ping not yet written to the store
  bool gone = false;
};

struct Hub::UserConn {
  WsConn* conn = nullptr;
  std::string agent_id;
  std::string user_id;
  std::string conn_id;
  std::string session_id;
  std::string address;    // of the peer, for the per-address socket limit
  std::string utf8_tail;  // v1: incomplete UTF-8 held back until the next chunk (§4.2)
  // Output positions (§4.3): `delivered` is the offset of the next byte this viewer needs. It
  // waits for the agent's replay (`awaiting`) after joining and after the agent reconnects;
  // `explicit_offset` when it came with &offset=N, so a missing range is reported as a gap.
  std::uint64_t delivered = 0;
  bool awaiting = false;
  bool explicit_offset = false;
  bool offset_sent = false;  // v2: {"type":"offset"} precedes binary output after each jump
  Clock::time_point stalled_since{};
  Clock::time_point behind_since{};  // its session is paused for it (update_flow)
  bool client_paused = false;        // it said {"type":"flow","paused":true}
  bool session_paused = false;       // its agent was told to stop reading the shell (set_flow)
  std::uint64_t dropped_bytes = 0;
  std::uint64_t bytes_in = 0;   // terminal input from this socket (audit)
  std::uint64_t bytes_out = 0;  // terminal output queued to this socket (audit)
  Clock::time_point opened_at = Clock::now();
  SysClock::time_point since = SysClock::now();  // for sessions_json
  bool gone = false;
};

struct Hub::EventsConn {
  WsConn* conn = nullptr;
  std::string user_id;
  std::string address;
};

struct Hub::Session {
  std::string agent_id;
  std::string id;
  std::set<UserConn*> viewers;
  std::uint64_t offset = 0;  // of the next output byte
  bool has_shell = false;    // between shell_started and shell_stopped
  // v1 links: the agent's shell for this session on the current link. kStarting from our
  // shell_start to its shell_started; meanwhile input and resizes are held (holds()).
  enum class Start : std::uint8_t { kNone, kStarting, kStarted } start = Start::kNone;
  std::string held_input;            // in order; bounded by pausing its senders
  std::set<UserConn*> held_senders;  // not read until the held input has gone out
  bool size_set = false;             // a viewer has set cols/rows
  bool flow_paused = false;          // the agent was told to stop reading its PTY (shell_flow)
  std::unique_ptr<uvx::Timer> linger;
  // Recording (Recordings): the agent's policy when the last viewer joined, the open file (from
  // the first output after a viewer joined, until the shell stops), the offset it has up to, and
  // the terminal size the viewers last set.
  RecordingMode recording_mode = RecordingMode::kOff;
  std::unique_ptr<Recording> recording;
  std::uint64_t recorded = 0;
  std::uint16_t cols = 80;
  std::uint16_t rows = 24;
  SysClock::time_point started_at = SysClock::now();  // its age on the page (sessions_json)
};

namespace {

// The exec_id of an exec on a v2 link (docs/protocol.md "Exec").
std::string exec_id_of(std::uint64_t id) { return "e" + std::to_string(id); }

}  // namespace

// ---- handlers: trampolines from the plumbing into the hub ----

// Shares the connection record with the hub: the hub drops its reference when it gives up on
// a connection (heartbeat lost, replaced), and lws may still report frames and the close after
// that. A record marked gone no longer speaks for its agent.
struct AgentHandler final : WsHandler {
  Hub& hub;
  std::shared_ptr<Hub::AgentConn> a;

  AgentHandler(Hub& h, std::shared_ptr<Hub::AgentConn> c) : hub(h), a(std::move(c)) {}

  void on_message(std::string_view payload, bool binary) override {
    if (!a->gone) hub.on_agent_message(*a, payload, binary);
  }

  void on_pong() override {
    if (a->gone) return;
    a->last_rx = Clock::now();
    a->last_ping = SysClock::now();
    a->ponged = true;  // written to the store once per ping interval, in one go
  }

  void on_drain() override {
    if (!a->gone) hub.on_agent_drain(*a);
  }

  void on_room() override {
    if (!a->gone && hub.file_hooks_.room) hub.file_hooks_.room(a->id);
  }

  void on_closed() override { hub.on_agent_closed(*a); }
};

struct UserHandler final : WsHandler {
  Hub& hub;
  Hub::UserConn* u;

  UserHandler(Hub& h, Hub::UserConn* c) : hub(h), u(c) {}

  void on_message(std::string_view payload, bool binary) override {
    hub.on_user_message(*u, payload, binary);
  }

  void on_drain() override { hub.on_user_drain(*u); }

  void on_closed() override { hub.on_user_closed(*u); }
};

struct EventsHandler final : WsHandler {
  Hub& hub;
  std::unique_ptr<Hub::EventsConn> e;

  EventsHandler(Hub& h, std::unique_ptr<Hub::EventsConn> c) : hub(h), e(std::move(c)) {}

  void on_message(std::string_view payload, bool) override {
    auto j = json::parse(payload, nullptr, false);
    if (j.is_object() && j.value("type", "") == "ping") e->conn->send_text(R"({"type":"pong"})");
  }

  void on_closed() override {
    hub.count_socket(e->user_id, e->address, false);
    auto it = hub.events_.find(e->user_id);
    if (it != hub.events_.end()) {
      it->second.erase(e.get());
      if (it->second.empty()) hub.events_.erase(it);
    }
  }
};

// ---- hub ----

Hub::Hub(uv_loop_t* loop, HubConfig config, HubSink& sink)
    : loop_(loop),
      config_(config),
      sink_(sink),
      ping_timer_(loop),
      check_timer_(loop),
      heartbeat_timer_(loop) {
  ping_timer_.start(config_.ping_interval, config_.ping_interval, [this] {
    std::vector<std::string> ponged;
    for (auto& [id, a] : agents_) {
      if (a->ponged) ponged.push_back(id);
      a->ponged = false;
      a->conn->send_ping();
    }
    if (!ponged.empty()) sink_.agent_heartbeats(ponged);
  });
  const auto check = std::min(config_.ping_interval / 2, std::chrono::milliseconds(1000));
  check_timer_.start(check, check, [this] { close_stalled_viewers(); });
  // A sweep of every agent touches 100,000 cold records: a tenth of the timeout late is precise
  // enough for a silence that long (4.5 s on 45 s).
  const auto sweep = std::max(check, config_.pong_timeout / 10);
  heartbeat_timer_.start(sweep, sweep, [this] { check_heartbeats(); });
}

Hub::~Hub() { shutdown(); }

void Hub::shutdown() {
  ping_timer_.stop();
  check_timer_.stop();
  heartbeat_timer_.stop();
  grace_.clear();
  for (auto& [key, s] : sessions_) s->linger.reset();
}

std::unique_ptr<WsHandler> Hub::accept_agent(WsConn& conn, AgentHello hello) {
  const std::string id = hello.agent_id;
  if (auto it = agents_.find(id); it != agents_.end()) {
    // A new connection replaces the old one (the agent reconnected before we noticed).
    spdlog::info("agent connection replaced agent={}", id);
    audit_agent(*it->second, "agent_disconnected", "replaced");
    fail_execs(*it->second);
    it->second->gone = true;
    it->second->conn->close(4000, "replaced by a new connection");
    on_agent_drain(*it->second);  // its queue is abandoned: read its senders again
    agents_.erase(it);
    if (file_hooks_.gone) file_hooks_.gone(id);  // transfers on the old link cannot go on
  }
  auto a = std::make_shared<AgentConn>();
  a->id = std::move(hello.agent_id);
  a->user_id = std::move(hello.user_id);
  a->conn = &conn;
  a->conn->set_room_mark(kFileRoom);
  a->hello = std::move(hello);
  a->last_rx = Clock::now();
  a->connected_at = a->last_ping = SysClock::now();
  AgentConn& ref = *a;
  agents_[id] = a;
  agent_owner_[id] = ref.user_id;
  grace_.erase(id);
  sink_.agent_online(id);
  spdlog::info("agent connected agent={} protocol={} peer={}", id, conn.is_v2() ? "v2" : "v1",
               conn.peer_address());
  audit_agent(ref, "agent_connected", nullptr);
  broadcast_events(ref.user_id, {{"type", "agent_connected"}, {"data", {{"agent_id", id}}}});
  // Viewers that waited through the grace period: tell them, and bring their sessions back.
  for (auto& [key, s] : sessions_) {
    if (key.first != id) continue;
    s->flow_paused = false;            // a new link starts with nothing paused
    s->start = Session::Start::kNone;  // and knows of no shell yet
    if (s->viewers.empty()) continue;
    std::uint64_t resume = UINT64_MAX;
    for (UserConn* u : s->viewers) {
      u->conn->send_text(proto::encode(proto::UserMessage(proto::AgentConnected{id})));
      u->awaiting = true;
      resume = std::min(resume, u->delivered);
    }
    send_shell_start(id, s->id, s->id != "main", resume);
  }
  return std::make_unique<AgentHandler>(*this, std::move(a));
}

std::unique_ptr<WsHandler> Hub::accept_user(WsConn& conn, TerminalRequest req) {
  const std::string sid = req.session.value_or(req.new_session ? "split-" + req.conn_id : "main");
  // Takeover: the same connId on the same agent replaces the old socket (§4.1).
  for (UserConn* old : users_) {
    if (!old->gone && old->agent_id == req.agent_id && old->conn_id == req.conn_id) {
      old->gone = true;
      session(old->agent_id, old->session_id).viewers.erase(old);
      old->conn->close(4000, "replaced by a new connection");
      break;
    }
  }
  auto* u = new UserConn();  // NOLINT(cppcoreguidelines-owning-memory): freed in on_user_closed
  u->conn = &conn;
  u->agent_id = req.agent_id;
  u->user_id = req.user_id;
  u->conn_id = req.conn_id;
  u->session_id = sid;
  u->delivered = req.offset.value_or(0);
  u->explicit_offset = req.offset.has_value();
  u->address = conn.peer_address();
  users_.insert(u);
  count_socket(u->user_id, u->address, true);
  Session& s = session(req.agent_id, sid);
  s.linger.reset();
  s.viewers.insert(u);
  if (recording_mode_) s.recording_mode = recording_mode_(req.agent_id);
  update_flow(s);  // a new viewer has nothing queued: a paused session goes on
  spdlog::info("terminal opened agent={} sid={} conn={} protocol={}", req.agent_id, sid,
               req.conn_id, conn.is_v2() ? "v2" : "v1");
  audit_terminal(*u, "terminal_opened");
  if (is_online(req.agent_id)) {
    // Scrollback first (from the agent's ring), then live output (§4.3).
    u->awaiting = true;
    send_shell_start(req.agent_id, sid, sid != "main", u->delivered);
  }
  announce_sessions(req.agent_id);
  return std::make_unique<UserHandler>(*this, u);
}

std::unique_ptr<WsHandler> Hub::accept_events(WsConn& conn, std::string user_id) {
  auto e = std::make_unique<EventsConn>();
  e->conn = &conn;
  e->user_id = std::move(user_id);
  e->address = conn.peer_address();
  events_[e->user_id].insert(e.get());
  count_socket(e->user_id, e->address, true);
  // The sessions of the user's agents here, so a page knows their counts from the start.
  for (const auto& [id, a] : agents_) {
    if (a->user_id != e->user_id) continue;
    conn.send_text(json{{"type", "agent_sessions"},
                        {"data", {{"agent_id", id}, {"sessions", sessions_json(id)}}}}
                       .dump());
  }
  return std::make_unique<EventsHandler>(*this, std::move(e));
}

bool Hub::is_online(const std::string& agent_id) const { return agents_.count(agent_id) != 0; }

void Hub::count_socket(const std::string& user_id, const std::string& address, bool opened) {
  for (auto [counts, key] :
       {std::pair{&sockets_by_user_, &user_id}, std::pair{&sockets_by_address_, &address}}) {
    if (opened) {
      ++(*counts)[*key];
    } else if (const auto it = counts->find(*key); it != counts->end() && --it->second == 0) {
      counts->erase(it);
    }
  }
}

std::size_t Hub::user_sockets(const std::string& user_id) const {
  const auto it = sockets_by_user_.find(user_id);
  return it == sockets_by_user_.end() ? 0 : it->second;
}

std::size_t Hub::address_sockets(const std::string& address) const {
  const auto it = sockets_by_address_.find(address);
  return it == sockets_by_address_.end() ? 0 : it->second;
}

std::size_t Hub::session_count(const std::string& agent_id) const {
  std::size_t n = 0;
  for (auto it = sessions_.lower_bound({agent_id, ""});
       it != sessions_.end() && it->first.first == agent_id; ++it) {
    ++n;
  }
  return n;
}

bool Hub::has_session(const std::string& agent_id, const std::string& session_id) const {
  return sessions_.count({agent_id, session_id}) != 0;
}

std::optional<AgentLive> Hub::live(const std::string& agent_id) const {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end()) return std::nullopt;
  AgentLive l;
  l.connected_at = it->second->connected_at;
  l.last_ping = it->second->last_ping;
  l.os = it->second->hello.os;
  l.arch = it->second->hello.arch;
  if (!it->second->system_info.empty()) l.system_info = json::parse(it->second->system_info);
  if (it->second->stats)
    l.stats = json::parse(data_of(proto::encode(proto::UserMessage(*it->second->stats))));
  for (const auto& [key, s] : sessions_) {
    if (key.first == agent_id && !s->viewers.empty()) ++l.sessions;
  }
  return l;
}

std::set<std::string> Hub::terminal_agents(const std::string& user_id) const {
  std::set<std::string> out;
  for (const UserConn* u : users_) {
    if (!u->gone && u->user_id == user_id) out.insert(u->agent_id);
  }
  return out;
}

std::uint64_t Hub::start_exec(const std::string& agent_id, const std::string& user_id,
                              std::string command, std::optional<std::uint32_t> timeout_s,
                              ExecDone done) {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end()) return 0;
  ExecWaiter w;
  w.id = ++next_exec_;
  w.done = std::move(done);
  w.user_id = user_id;
  w.command = std::move(command);
  w.started = Clock::now();
  const std::uint64_t id = w.id;
  send_exec(*it->second, std::move(w), timeout_s);
  return id;
}

void Hub::cancel_exec(std::uint64_t id) {
  for (auto& [agent_id, a] : agents_) {
    for (ExecWaiter& w : a->exec_waiters) {
      if (w.id == id) {
        w.done = nullptr;
        return;
      }
    }
  }
}

std::size_t Hub::execs_running(const std::string& agent_id) const {
  const auto it = agents_.find(agent_id);
  return it == agents_.end() ? 0 : it->second->exec_waiters.size();
}

void Hub::send_exec(AgentConn& a, ExecWaiter w, std::optional<std::uint32_t> timeout_s) {
  proto::Exec m{w.command, timeout_s, std::nullopt};
  // Our agent copies the id into its result; v1 results are matched by their command.
  if (a.conn->is_v2()) m.exec_id = exec_id_of(w.id);
  a.exec_waiters.push_back(std::move(w));
  a.conn->send_text(proto::encode(proto::AgentMessage(m)));
}

void Hub::finish_exec(const AgentConn& a, const ExecWaiter& w, proto::ExecResult r, bool lost) {
  r.exec_id.reset();  // between agent and server only
  // The command and its output may hold secrets: only their sizes are recorded.
  json details = {
      {"command_bytes", w.command.size()},
      {"exit_code", r.exit_code},
      {"success", r.success},
      {"output_bytes", r.output.size()},
      {"duration_ms",
       std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - w.started).count()}};
  if (r.error) details["error"] = *r.error;
  if (!w.session_id) details["via"] = "http";
  sink_.audit("exec_run", w.user_id, a.user_id, a.id, w.session_id, details);
  if (w.user != nullptr && !w.user->gone) {
    w.user->conn->send_text(proto::encode(proto::UserMessage(r)));
  }
  if (!w.done) return;
  if (lost) {
    w.done(Error(Errc::kUnavailable, "agent disconnected"));
  } else {
    w.done(std::move(r));
  }
}

void Hub::fail_execs(AgentConn& a) {
  const std::vector<ExecWaiter> waiters = std::move(a.exec_waiters);
  a.exec_waiters.clear();
  for (const ExecWaiter& w : waiters) {
    proto::ExecResult r;
    r.command = w.command;
    r.exit_code = -1;
    r.error = "agent disconnected";
    finish_exec(a, w, std::move(r), true);
  }
}

void Hub::drop_agent(const std::string& agent_id) {
  for (UserConn* u : users_) {
    if (u->agent_id == agent_id && !u->gone) u->conn->close(4001, "agent not online");
  }
  if (auto it = agents_.find(agent_id); it != agents_.end()) {
    it->second->conn->close(4003, "agent deleted");
  }
}

Hub::Session& Hub::session(const std::string& agent_id, const std::string& session_id) {
  auto& slot = sessions_[{agent_id, session_id}];
  if (!slot) {
    slot = std::make_unique<Session>();
    slot->agent_id = agent_id;
    slot->id = session_id;
  }
  return *slot;
}

void Hub::send_to_agent(const std::string& agent_id, const std::string& text) {
  if (auto it = agents_.find(agent_id); it != agents_.end()) it->second->conn->send_text(text);
}

std::size_t Hub::agent_queued_bytes(const std::string& agent_id) const {
  const auto it = agents_.find(agent_id);
  return it == agents_.end() ? 0 : it->second->conn->queued_bytes();
}

bool Hub::send_agent_message(const std::string& agent_id, const proto::AgentMessage& m) {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end()) return false;
  it->second->conn->send_text(proto::encode(m));
  return true;
}

bool Hub::send_file_data(const std::string& agent_id, std::string_view transfer_id,
                         std::uint64_t seq, std::string_view bytes) {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end()) return false;
  WsConn& c = *it->second->conn;
  if (!c.is_v2()) {
    c.send_text(proto::encode(proto::FileData{std::string(transfer_id), seq, std::string(bytes)}));
    return true;
  }
  const std::size_t header = proto::file_frame_header_size(transfer_id);
  net::WsMessage msg = net::make_message(header + bytes.size(), true);
  char* out = msg.buffer.data() + LWS_PRE;
  proto::write_file_frame_header(transfer_id, seq, out);
  std::memcpy(out + header, bytes.data(), bytes.size());
  c.send(std::move(msg));
  return true;
}

void Hub::send_shell_start(const std::string& agent_id, const std::string& session_id,
                           bool new_session, std::uint64_t resume_offset) {
  const auto a = agents_.find(agent_id);
  if (a == agents_.end()) return;
  proto::ShellStart m;
  m.session_id = session_id;
  m.new_session = new_session;
  m.resume_offset = resume_offset;
  if (const auto it = sessions_.find({agent_id, session_id}); it != sessions_.end()) {
    Session& s = *it->second;
    // Our agent starts (or resizes) the shell at the viewers' size; a v1 agent may ignore it,
    // so on a v1 link the size also follows shell_started (release_held).
    if (s.size_set) {
      m.cols = s.cols;
      m.rows = s.rows;
    }
    if (s.start == Session::Start::kNone) s.start = Session::Start::kStarting;
  }
  a->second->conn->send_text(proto::encode(proto::AgentMessage(m)));
}

bool Hub::holds(const AgentConn& a, const Session& s) const {
  // Our agent spawns the shell before it reads the next message: nothing need wait on v2.
  return !a.conn->is_v2() && s.start != Session::Start::kStarted;
}

void Hub::release_held(AgentConn& a, Session& s) {
  if (s.size_set) {
    a.conn->send_text(proto::encode(proto::AgentMessage(proto::ShellResize{s.id, s.cols, s.rows})));
  }
  if (!s.held_input.empty()) {
    const std::string held = std::move(s.held_input);
    s.held_input.clear();
    forward_input(a, s.id, held);
  }
  drop_held(s);
}

void Hub::drop_held(Session& s) {
  s.held_input.clear();
  for (UserConn* u : s.held_senders) {
    if (!u->gone) u->conn->set_receiving(true);
  }
  s.held_senders.clear();
}

void Hub::send_input(UserConn& from, std::string_view bytes) {
  const auto it = agents_.find(from.agent_id);
  if (it == agents_.end() || bytes.empty()) return;
  AgentConn& a = *it->second;
  input_bytes_ += bytes.size();
  from.bytes_in += bytes.size();
  // Only a v1 link holds input (holds()): a v2 keystroke goes straight on.
  if (const auto sit =
          a.conn->is_v2() ? sessions_.end() : sessions_.find({from.agent_id, from.session_id});
      sit != sessions_.end() && holds(a, *sit->second)) {
    Session& s = *sit->second;
    if (s.start == Session::Start::kNone) {
      // This session has no shell on the link (it stopped, or never started): a v1 agent would
      // type the input into `main`.
      spdlog::debug("input dropped, no shell agent={} sid={} bytes={}", a.id, s.id, bytes.size());
      return;
    }
    s.held_input.append(bytes);
    if (s.held_input.size() > config_.agent_input_high_water &&
        s.held_senders.insert(&from).second) {
      from.conn->set_receiving(false);
    }
    return;
  }
  // Input (§7): above the mark, stop reading this user until the agent's queue drains.
  if (a.conn->queued_bytes() > config_.agent_input_high_water &&
      a.paused_senders.insert(&from).second) {
    from.conn->set_receiving(false);
  }
  forward_input(a, from.session_id, bytes);
}

void Hub::forward_input(AgentConn& a, const std::string& session_id, std::string_view bytes) {
  WsConn& c = *a.conn;
  // Pieces of at most 64 KiB: a user's largest message (a 1 MiB paste) must not become a frame
  // over the agent's limit once framed or base64-encoded.
  constexpr std::size_t kPiece = 64U * 1024U;
  for (std::size_t at = 0; at < bytes.size(); at += kPiece) {
    const std::string_view piece = bytes.substr(at, kPiece);
    if (c.is_v2()) {
      // The frame is built in place behind lws's headroom: one copy of the input bytes.
      const std::size_t header = proto::frame_header_size(session_id);
      net::WsMessage msg = net::make_message(header + piece.size(), true);
      char* out = msg.buffer.data() + LWS_PRE;
      proto::write_frame_header(proto::FrameKind::kShellInput, session_id, out);
      std::memcpy(out + header, piece.data(), piece.size());
      c.send(std::move(msg));
    } else {
      c.send_text(proto::encode_shell_input(session_id, piece));
    }
  }
}

bool Hub::send_user(UserConn& u, net::WsMessage message) {
  if (u.gone) return false;
  // Output of a session its agent was told to pause was on its way already (the agent's queue,
  // both sockets' kernel buffers): it is bounded, and this viewer is the reason for the pause,
  // so it gets twice the room before anything is dropped.
  const std::size_t limit =
      u.session_paused ? 2 * config_.user_queue_limit : config_.user_queue_limit;
  if (u.conn->queued_bytes() > limit) {
    // Slow consumer (§7): drop its output; close it once it has been stalled too long.
    const auto now = Clock::now();
    if (u.stalled_since == Clock::time_point{}) u.stalled_since = now;
    u.dropped_bytes += message.payload_size();
    user_dropped_bytes_ += message.payload_size();
    if (now - u.stalled_since > config_.slow_consumer_stall) {
      ++slow_consumers_closed_;
      spdlog::warn("slow consumer closed agent={} conn={} dropped_bytes={}", u.agent_id, u.conn_id,
                   u.dropped_bytes);
      u.gone = true;
      u.conn->close(1008, "slow consumer");
    }
    return false;
  }
  u.stalled_since = {};
  user_sent_bytes_ += message.payload_size();
  u.conn->send(std::move(message));
  return true;
}

void Hub::route_output(const std::string& agent_id, const std::string& session_id,
                       std::string_view bytes, std::optional<std::uint64_t> offset, bool replay) {
  output_bytes_ += bytes.size();
  const auto it = sessions_.find({agent_id, session_id});
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  // Live binary frames continue from the last byte received; JSON output and replays say where
  // they start. Either way each viewer gets each byte once (deliver()).
  const std::uint64_t start = offset.value_or(s.offset);
  s.offset = std::max(s.offset, start + bytes.size());
  // Under a `required` policy, output that could not be recorded is shown to nobody.
  if (s.recording_mode != RecordingMode::kOff && !record(s, start, bytes)) return;
  for (UserConn* u : s.viewers) {
    if (u->awaiting == replay) deliver(*u, start, bytes);
  }
  update_flow(s);
}

bool Hub::record(Session& s, std::uint64_t start, std::string_view bytes) {
  if (recordings_ == nullptr) return true;
  if (!s.recording) {
    auto r = recordings_->start(s.agent_id, s.id, s.cols, s.rows);
    if (!r) {
      spdlog::warn("recording not started agent={} sid={} error={}", s.agent_id, s.id,
                   r.error().message);
      if (s.recording_mode != RecordingMode::kRequired) return true;
      fail_recording(s, r.error().message);
      return false;
    }
    s.recording = std::move(r).value();
    s.recorded = start;  // from what the viewers are shown first (scrollback, or live output)
    spdlog::info("recording started agent={} sid={} name={}", s.agent_id, s.id,
                 s.recording->name());
  }
  // Each byte once, in order: a replay repeats what was recorded already.
  if (start + bytes.size() <= s.recorded) return true;
  if (start < s.recorded) bytes.remove_prefix(static_cast<std::size_t>(s.recorded - start));
  s.recorded = std::max(s.recorded, start) + bytes.size();
  if (auto st = s.recording->output(bytes); !st) {
    spdlog::warn("recording failed agent={} sid={} error={}", s.agent_id, s.id, st.error().message);
    s.recording.reset();
    if (s.recording_mode == RecordingMode::kRequired) {
      fail_recording(s, st.error().message);
      return false;
    }
    s.recording_mode = RecordingMode::kOff;  // not again for this session: one warning
  }
  return true;
}

void Hub::fail_recording(Session& s, const std::string& why) {
  // Fail closed: nobody sees output that is not recorded. The viewers are told and closed; the
  // session's shell is stopped as when its last viewer leaves.
  const std::string text = proto::encode(proto::UserMessage(
      proto::ShellError{s.id, "recording is required for this agent and failed: " + why}));
  std::vector<UserConn*> viewers(s.viewers.begin(), s.viewers.end());
  for (UserConn* u : viewers) {
    if (u->gone) continue;
    u->conn->send_text(text);
    u->conn->close(1011, "recording failed");
  }
  s.recording.reset();  // the policy stands: the next output tries again, or goes to nobody
}

void Hub::update_flow(Session& s) {
  const auto agent = agents_.find(s.agent_id);
  if (agent == agents_.end()) return;
  bool behind = false;
  for (const UserConn* u : s.viewers) {
    if (u->gone) continue;
    if (u->awaiting || (!u->client_paused && u->conn->queued_bytes() < config_.flow_pause_bytes)) {
      return set_flow(*agent->second, s, false);
    }
    behind = true;
  }
  if (behind && !s.flow_paused) {
    const auto now = Clock::now();
    for (UserConn* u : s.viewers) {
      if (u->behind_since == Clock::time_point{}) u->behind_since = now;
    }
  }
  set_flow(*agent->second, s, behind);
}

void Hub::set_flow(AgentConn& a, Session& s, bool paused) {
  if (s.flow_paused == paused) return;
  s.flow_paused = paused;
  for (UserConn* u : s.viewers) u->session_paused = paused;
  spdlog::debug("session {} agent={} sid={}", paused ? "paused, viewers behind" : "resumed", a.id,
                s.id);
  if (a.conn->is_v2()) {
    send_to_agent(a.id, proto::encode(proto::AgentMessage(proto::ShellFlow{s.id, paused})));
    return;
  }
  // A v1 agent has no shell_flow: stop reading its link while any of its sessions is paused.
  // Its other sessions wait too, for at most --slow-consumer-stall; nothing is lost.
  a.paused_sessions = paused ? a.paused_sessions + 1 : a.paused_sessions - 1;
  a.conn->set_receiving(a.paused_sessions == 0);
}

void Hub::close_stalled_viewers() {
  const auto now = Clock::now();
  for (UserConn* u : users_) {
    if (u->gone || u->behind_since == Clock::time_point{} ||
        now - u->behind_since <= config_.slow_consumer_stall) {
      continue;
    }
    // A viewer that asked for the pause is alive and reads what we send; it only draws slowly.
    // It holds nothing here, so it is not closed: its session waits for it, like a terminal
    // after Ctrl-S (and only while every other viewer is behind too).
    if (u->client_paused && u->conn->queued_bytes() < config_.flow_pause_bytes) continue;
    spdlog::warn("slow consumer closed agent={} conn={} queued_bytes={}", u->agent_id, u->conn_id,
                 u->conn->queued_bytes());
    u->gone = true;
    u->conn->close(1008, "slow consumer");
    if (auto it = sessions_.find({u->agent_id, u->session_id}); it != sessions_.end()) {
      update_flow(*it->second);  // the others (if any) may be keeping up
    }
  }
}

void Hub::deliver(UserConn& u, std::uint64_t start, std::string_view bytes) {
  const std::uint64_t end = start + bytes.size();
  if (end <= u.delivered) return;  // nothing this viewer lacks (also: an empty replay)
  if (start < u.delivered) {
    bytes.remove_prefix(static_cast<std::size_t>(u.delivered - start));
    start = u.delivered;
  } else if (start > u.delivered) {
    // Bytes this viewer never got are gone (older than the agent's ring, or dropped for a slow
    // socket): say so, never skip silently. While even the marker cannot be queued, the hole
    // just grows. A viewer that asked for nothing in particular starts where the scrollback
    // starts.
    if (u.explicit_offset || u.delivered > 0) {
      if (!send_user(
              u, net::make_message(
                     proto::encode(proto::UserMessage(proto::Gap{u.delivered, start})), false))) {
        return;
      }
    }
    u.utf8_tail.clear();
    u.offset_sent = false;
    u.delivered = start;
  }
  if (bytes.empty()) return;
  // Output dropped for a slow socket leaves the position where it was, so the next output that
  // does go out is preceded by a gap marker.
  const std::uint64_t before = u.delivered;
  u.delivered = end;
  if (u.conn->is_v2()) {
    if (!u.offset_sent) {
      u.offset_sent = send_user(
          u, net::make_message(proto::encode(proto::UserMessage(proto::OffsetMsg{start})), false));
    }
    if (!u.offset_sent || !send_user(u, net::make_message(bytes, true))) {
      u.delivered = before;
    } else {
      u.bytes_out += bytes.size();
    }
    return;
  }
  std::string text = std::move(u.utf8_tail);
  u.utf8_tail.clear();
  text.append(bytes);
  const std::size_t keep = proto::utf8_complete_prefix(text);
  u.utf8_tail = text.substr(keep);
  text.resize(keep);
  if (text.empty()) return;
  const std::uint64_t text_offset = end - u.utf8_tail.size() - text.size();
  if (!send_user(u, net::make_message(proto::encode_output(text, text_offset), false))) {
    u.delivered = before;
  } else {
    u.bytes_out += text.size();
  }
}

void Hub::on_user_drain(UserConn& u) {
  u.behind_since = {};
  if (u.gone) return;
  const auto it = sessions_.find({u.agent_id, u.session_id});
  if (it == sessions_.end()) return;
  update_flow(*it->second);
  // Output dropped while this socket was slow, with nothing after it to carry the gap marker:
  // report the hole now, so the viewer knows before the shell says anything more.
  if (u.awaiting || it->second->offset <= u.delivered) return;
  deliver(u, it->second->offset, {});
}

void Hub::on_agent_drain(AgentConn& a) {
  for (UserConn* u : a.paused_senders) {
    if (!u->gone) u->conn->set_receiving(true);
  }
  a.paused_senders.clear();
}

void Hub::reset_position(UserConn& u) {
  u.delivered = 0;
  u.explicit_offset = false;
  u.offset_sent = false;
  u.utf8_tail.clear();
}

void Hub::route_status(const std::string& agent_id, const std::string& session_id,
                       const std::string& text) {
  const auto it = sessions_.find({agent_id, session_id});
  if (it == sessions_.end()) return;
  for (UserConn* u : it->second->viewers) u->conn->send_text(text);
}

void Hub::broadcast_events(const std::string& user_id, const json& event) {
  if (events_observer_) events_observer_(user_id, event);
  const auto it = events_.find(user_id);
  if (it == events_.end()) return;
  const std::string text = event.dump();
  for (EventsConn* e : it->second) e->conn->send_text(text);
}

json Hub::sessions_json(const std::string& agent_id) const {
  std::vector<const Session*> list;
  for (auto it = sessions_.lower_bound({agent_id, ""});
       it != sessions_.end() && it->first.first == agent_id; ++it) {
    list.push_back(it->second.get());
  }
  std::stable_sort(list.begin(), list.end(), [](const Session* x, const Session* y) {
    return x->started_at < y->started_at;
  });
  json out = json::array();
  for (const Session* s : list) {
    json viewers = json::array();
    for (const UserConn* u : s->viewers) {
      if (!u->gone) viewers.push_back({{"conn_id", u->conn_id}, {"since", format_time(u->since)}});
    }
    out.push_back({{"id", s->id},
                   {"started_at", format_time(s->started_at)},
                   {"shell", s->has_shell},
                   {"lingering", s->linger != nullptr},
                   {"viewers", std::move(viewers)}});
  }
  return out;
}

void Hub::announce_sessions(const std::string& agent_id) {
  const auto owner = agent_owner_.find(agent_id);
  if (owner == agent_owner_.end()) return;  // never connected here: nobody to tell
  broadcast_events(owner->second,
                   {{"type", "agent_sessions"},
                    {"data", {{"agent_id", agent_id}, {"sessions", sessions_json(agent_id)}}}});
}

bool Hub::end_session(const std::string& agent_id, const std::string& session_id,
                      const std::string& user_id) {
  const auto it = sessions_.find({agent_id, session_id});
  if (it == sessions_.end()) return false;
  // Out of the table before any viewer closes: a close that reports back at once finds no
  // session to stop or linger.
  const std::unique_ptr<Session> ended = std::move(it->second);
  sessions_.erase(it);
  send_to_agent(agent_id, proto::encode(proto::AgentMessage(proto::ShellStopSession{session_id})));
  const std::string text =
      json{{"type", "session_ended"}, {"data", {{"session_id", session_id}}}}.dump();
  std::size_t viewers = 0;
  const std::vector<UserConn*> closing(ended->viewers.begin(), ended->viewers.end());
  for (UserConn* u : closing) {
    if (u->gone) continue;
    ++viewers;
    u->conn->send_text(text);
    u->gone = true;  // nothing more goes either way; on_user_closed finds no session
    u->conn->close(4002, "session ended");
  }
  const auto owner = agent_owner_.find(agent_id);
  spdlog::info("session ended agent={} sid={} viewers={}", agent_id, session_id, viewers);
  sink_.audit("session_ended", user_id, owner == agent_owner_.end() ? user_id : owner->second,
              agent_id, session_id, {{"viewers", viewers}});
  announce_sessions(agent_id);
  return true;
}

void Hub::deliver_events(const std::string& user_id, const std::string& text) {
  const auto it = events_.find(user_id);
  if (it == events_.end()) return;
  for (EventsConn* e : it->second) e->conn->send_text(text);
}

void Hub::on_agent_message(AgentConn& a, std::string_view payload, bool binary) {
  a.last_rx = Clock::now();
  a.last_ping = SysClock::now();
  if (binary) {
    auto frame = proto::decode_frame(payload);
    if (frame && frame->kind == proto::FrameKind::kFileData && file_hooks_.data) {
      if (auto chunk = proto::decode_file_payload(frame->payload)) {
        file_hooks_.data(a.id, frame->id, chunk->seq, chunk->data);
        return;
      }
    }
    if (!frame || frame->kind != proto::FrameKind::kShellOutput) {
      ++dropped_;
      spdlog::debug("agent frame dropped agent={} dropped_total={}", a.id, dropped_);
      return;
    }
    route_output(a.id, std::string(frame->id), frame->payload, std::nullopt, false);
    return;
  }
  proto::DecodeLimits limits;
  limits.max_frame_bytes = config_.max_frame_bytes;
  auto decoded = proto::decode_agent_message(payload, limits);
  if (!decoded) {
    ++dropped_;
    spdlog::debug("agent message dropped agent={} error={} dropped_total={}", a.id,
                  errc_name(decoded.error().code), dropped_);
    return;
  }
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::FileInfo> || std::is_same_v<T, proto::FileEnd> ||
                      std::is_same_v<T, proto::FileError> || std::is_same_v<T, proto::FileAck> ||
                      std::is_same_v<T, proto::FileListResult>) {
          if (file_hooks_.message) file_hooks_.message(a.id, m);
        } else if constexpr (std::is_same_v<T, proto::FileData>) {
          if (file_hooks_.data) file_hooks_.data(a.id, m.transfer_id, m.seq, m.data);
        } else if constexpr (std::is_same_v<T, proto::ShellOutput>) {
          route_output(a.id, m.session_id, m.data, m.offset, false);
        } else if constexpr (std::is_same_v<T, proto::ShellReplay>) {
          route_output(a.id, m.session_id, m.data, m.offset, true);
        } else if constexpr (std::is_same_v<T, proto::ShellStarting>) {
          route_status(a.id, m.session_id, proto::encode(proto::UserMessage(m)));
        } else if constexpr (std::is_same_v<T, proto::ShellStarted> ||
                             std::is_same_v<T, proto::ShellError>) {
          if (auto it = sessions_.find({a.id, m.session_id}); it != sessions_.end()) {
            bool fresh = false;
            if constexpr (std::is_same_v<T, proto::ShellStarted>) fresh = m.new_shell;
            // The replay (if any) came before this; a new shell numbers its output from 0.
            Session& sess = *it->second;
            if (fresh && sess.has_shell) {
              // The agent restarted and this session's shell died with it: say so before the
              // new shell's start, as if the old one had reported its end.
              route_status(a.id, m.session_id,
                           proto::encode(proto::UserMessage(
                               proto::ShellStopped{m.session_id, std::nullopt, std::nullopt})));
            }
            if (fresh) {
              sess.offset = 0;
              sess.recording.reset();
              sess.recorded = 0;
              sess.started_at = SysClock::now();
            }
            const bool had_shell = sess.has_shell;
            sess.has_shell = std::is_same_v<T, proto::ShellStarted>;
            if (had_shell != sess.has_shell || fresh) announce_sessions(a.id);
            for (UserConn* u : sess.viewers) {
              u->awaiting = false;
              if (fresh) reset_position(*u);
            }
            const bool was_starting = sess.start == Session::Start::kStarting;
            if constexpr (std::is_same_v<T, proto::ShellStarted>) {
              sess.start = Session::Start::kStarted;
              if (was_starting && !a.conn->is_v2()) release_held(a, sess);
            } else {
              sess.start = Session::Start::kNone;
              drop_held(sess);  // no shell to type into
            }
          }
          route_status(a.id, m.session_id, proto::encode(proto::UserMessage(m)));
        } else if constexpr (std::is_same_v<T, proto::ShellStopped>) {
          route_status(a.id, m.session_id, proto::encode(proto::UserMessage(m)));
          if (auto it = sessions_.find({a.id, m.session_id}); it != sessions_.end()) {
            it->second->offset = 0;  // a new shell numbers from 0 again
            const bool had_shell = it->second->has_shell;
            it->second->has_shell = false;
            it->second->start = Session::Start::kNone;
            drop_held(*it->second);
            if (had_shell) announce_sessions(a.id);
            it->second->recording.reset();  // one recording per shell
            it->second->recorded = 0;
            for (UserConn* u : it->second->viewers) reset_position(*u);
          }
        } else if constexpr (std::is_same_v<T, proto::Stats>) {
          on_stats(a, m);
        } else if constexpr (std::is_same_v<T, proto::SystemInfo>) {
          a.system_info = data_of(proto::encode(proto::AgentMessage(m)));
          sink_.agent_system_info(a.id, a.system_info);
        } else if constexpr (std::is_same_v<T, proto::ExecResult>) {
          // Commands run side by side, so results come in any order: ours carry the exec_id
          // they were sent with; a v1 agent's (no id) is the oldest waiter's for that command.
          auto& waiters = a.exec_waiters;
          const auto it = std::find_if(waiters.begin(), waiters.end(), [&](const ExecWaiter& w) {
            return m.exec_id ? exec_id_of(w.id) == *m.exec_id : w.command == m.command;
          });
          if (it == waiters.end()) {
            ++dropped_;
            spdlog::debug("exec result for no request dropped agent={}", a.id);
            return;
          }
          const ExecWaiter w = std::move(*it);
          waiters.erase(it);
          finish_exec(a, w, m, false);
        } else {
          // pong and anything else from an agent: the timestamp refresh above is all.
        }
      },
      *decoded);
}

// Every 5 s from every agent, so the common case (nobody watches, no sample due) only keeps
// the struct: encoding it was a third of an idle instance's CPU. Otherwise it is encoded once:
// its viewers get the message; the store gets a sample at most every stats_sample_interval; the
// owner's events sockets (on any instance) get it only when there are any.
void Hub::on_stats(AgentConn& a, const proto::Stats& m) {
  a.stats = m;
  std::string text;  // the user message, encoded on first use
  const auto encoded = [&]() -> const std::string& {
    if (text.empty()) text = proto::encode(proto::UserMessage(m));
    return text;
  };
  const auto now = Clock::now();
  if (a.stats_stored == Clock::time_point{} ||
      now - a.stats_stored >= config_.stats_sample_interval) {
    a.stats_stored = now;
    sink_.agent_stats(a.id, data_of(encoded()));
  }
  for (auto it = sessions_.lower_bound({a.id, ""});
       it != sessions_.end() && it->first.first == a.id; ++it) {
    for (UserConn* u : it->second->viewers) {
      if (!u->gone) u->conn->send_text(encoded());
    }
  }
  if (events_observer_ || events_.count(a.user_id) != 0) {
    broadcast_events(a.user_id,
                     {{"type", "agent_stats"},
                      {"data", {{"agent_id", a.id}, {"stats", json::parse(data_of(encoded()))}}}});
  }
}

void Hub::on_agent_closed(AgentConn& a) {
  if (a.gone) return;  // replaced: the new connection owns the state
  const std::string id = a.id;
  spdlog::info("agent disconnected agent={}", id);
  mark_offline(id, "closed");
}

void Hub::mark_offline(const std::string& agent_id, const char* reason) {
  const auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  const std::string user_id = it->second->user_id;
  fail_execs(*it->second);
  for (auto& [key, s] : sessions_) {
    if (key.first != agent_id) continue;
    s->start = Session::Start::kNone;
    drop_held(*s);  // meant for shells of a link that is gone
  }
  audit_agent(*it->second, "agent_disconnected", reason);
  on_agent_drain(*it->second);  // its queue is gone: read its senders again
  agents_.erase(it);
  if (file_hooks_.gone) file_hooks_.gone(agent_id);
  sink_.agent_offline(agent_id);
  broadcast_events(user_id, {{"type", "agent_disconnected"}, {"data", {{"agent_id", agent_id}}}});
  bool has_viewers = false;
  for (UserConn* u : users_) {
    if (u->agent_id != agent_id || u->gone) continue;
    has_viewers = true;
    u->conn->send_text(proto::encode(proto::UserMessage(proto::AgentDisconnected{agent_id})));
  }
  if (!has_viewers) return;
  auto timer = std::make_unique<uvx::Timer>(loop_);
  timer->start(config_.agent_grace, [this, agent_id] {
    if (!is_online(agent_id)) {
      for (UserConn* u : users_) {
        if (u->agent_id == agent_id && !u->gone) u->conn->close(4001, "agent not online");
      }
    }
    grace_.erase(agent_id);  // destroys this timer after its callback (Timer copies fn first)
  });
  grace_[agent_id] = std::move(timer);
}

void Hub::check_heartbeats() {
  const auto now = Clock::now();
  std::vector<std::string> dead;
  for (auto& [id, a] : agents_) {
    // A v1 link we stopped reading is silent because of us (for at most the stall).
    if (a->paused_sessions == 0 && now - a->last_rx > config_.pong_timeout) dead.push_back(id);
  }
  for (const auto& id : dead) {
    auto it = agents_.find(id);
    spdlog::warn("agent heartbeat lost agent={} timeout_ms={}", id, config_.pong_timeout.count());
    it->second->gone = true;  // its on_closed must not run mark_offline a second time
    it->second->conn->close(1001, "heartbeat timeout");
    mark_offline(id, "heartbeat_lost");
  }
}

HubStats Hub::stats() const {
  HubStats st;
  st.agents = agents_.size();
  st.sessions = sessions_.size();
  st.terminal_sockets = users_.size();
  for (const auto& [user, conns] : events_) st.events_sockets += conns.size();
  st.output_bytes = output_bytes_;
  st.input_bytes = input_bytes_;
  st.user_sent_bytes = user_sent_bytes_;
  st.user_dropped_bytes = user_dropped_bytes_;
  st.slow_consumers_closed = slow_consumers_closed_;
  st.dropped_messages = dropped_;
  const auto now = Clock::now();
  for (const auto& [id, a] : agents_) {
    st.heartbeat_lag_max =
        std::max(st.heartbeat_lag_max,
                 std::chrono::duration_cast<std::chrono::milliseconds>(now - a->last_rx));
  }
  return st;
}

void Hub::on_user_message(UserConn& u, std::string_view payload, bool binary) {
  if (u.gone) return;
  if (binary) {
    send_input(u, payload);
    return;
  }
  proto::DecodeLimits limits;
  limits.max_frame_bytes = config_.max_frame_bytes;
  auto decoded = proto::decode_user_message(payload, limits);
  if (!decoded) {
    ++dropped_;
    spdlog::debug("user message dropped error={}", errc_name(decoded.error().code));
    return;
  }
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::Input>) {
          send_input(u, m.data);
        } else if constexpr (std::is_same_v<T, proto::Resize>) {
          const auto it = sessions_.find({u.agent_id, u.session_id});
          if (it != sessions_.end()) {
            Session& sess = *it->second;
            sess.cols = m.cols;
            sess.rows = m.rows;
            sess.size_set = true;
            if (sess.recording) (void)sess.recording->resize(m.cols, m.rows);
          }
          const auto agent = agents_.find(u.agent_id);
          if (agent == agents_.end()) return;
          // Held: the latest size goes out once the shell has started (release_held).
          if (it != sessions_.end() && holds(*agent->second, *it->second)) return;
          agent->second->conn->send_text(
              proto::encode(proto::AgentMessage(proto::ShellResize{u.session_id, m.cols, m.rows})));
        } else if constexpr (std::is_same_v<T, proto::UserExec>) {
          const auto it = agents_.find(u.agent_id);
          if (it == agents_.end()) {
            proto::ExecResult r;
            r.command = m.command;
            r.exit_code = -1;
            r.error = "agent not online";
            u.conn->send_text(proto::encode(proto::UserMessage(r)));
            sink_.audit("exec_run", u.user_id, agent_owner(u), u.agent_id, u.session_id,
                        {{"command_bytes", m.command.size()},
                         {"exit_code", -1},
                         {"success", false},
                         {"error", "agent not online"}});
            return;
          }
          ExecWaiter w;
          w.id = ++next_exec_;
          w.user = &u;
          w.user_id = u.user_id;
          w.session_id = u.session_id;
          w.command = m.command;
          w.started = Clock::now();
          send_exec(*it->second, std::move(w), std::nullopt);
        } else if constexpr (std::is_same_v<T, proto::UserPing>) {
          u.conn->send_text(proto::encode(proto::UserMessage(proto::UserPong{})));
        } else if constexpr (std::is_same_v<T, proto::UserFlow>) {
          // The viewer has more than it can draw (v2 only; a v1 viewer never sends it).
          if (u.client_paused == m.paused) return;
          u.client_paused = m.paused;
          if (!m.paused) u.behind_since = {};
          if (auto it = sessions_.find({u.agent_id, u.session_id}); it != sessions_.end()) {
            update_flow(*it->second);
          }
        } else {
          ++dropped_;
        }
      },
      *decoded);
}

void Hub::on_user_closed(UserConn& u) {
  std::unique_ptr<UserConn> owned(&u);
  audit_terminal(u, "terminal_closed");
  users_.erase(&u);
  if (auto it = agents_.find(u.agent_id); it != agents_.end()) it->second->paused_senders.erase(&u);
  count_socket(u.user_id, u.address, false);
  if (auto it = agents_.find(u.agent_id); it != agents_.end()) {
    for (ExecWaiter& w : it->second->exec_waiters) {
      if (w.user == &u) w.user = nullptr;
    }
  }
  const auto sit = sessions_.find({u.agent_id, u.session_id});
  if (sit == sessions_.end()) return;
  Session& s = *sit->second;
  s.viewers.erase(&u);
  s.held_senders.erase(&u);
  spdlog::info("terminal closed agent={} sid={} conn={}", u.agent_id, u.session_id, u.conn_id);
  update_flow(s);  // the remaining viewers may all be keeping up, or there are none
  const std::string agent_id = u.agent_id;
  const std::string sid = u.session_id;
  if (!s.viewers.empty()) {
    announce_sessions(agent_id);
    return;
  }
  // A takeover replaced this viewer with another socket on the same session: nothing to stop.
  for (const UserConn* other : users_) {
    if (other->agent_id == u.agent_id && other->session_id == u.session_id) return;
  }
  if (sid != "main") {
    send_to_agent(agent_id, proto::encode(proto::AgentMessage(proto::ShellStopSession{sid})));
    sessions_.erase(sit);
    announce_sessions(agent_id);
    return;
  }
  // The main shell keeps running for session_linger after its last viewer (§4.3).
  s.linger = std::make_unique<uvx::Timer>(loop_);
  s.linger->start(config_.session_linger, [this, agent_id, sid] {
    const auto it = sessions_.find({agent_id, sid});
    if (it == sessions_.end() || !it->second->viewers.empty()) return;
    send_to_agent(agent_id, proto::encode(proto::AgentMessage(proto::ShellStopSession{sid})));
    sessions_.erase(it);  // destroys the timer running this callback: only copies from here on
    announce_sessions(agent_id);
  });
  announce_sessions(agent_id);
}

void Hub::audit_agent(const AgentConn& a, const char* type, const char* reason) {
  json details = {{"protocol", a.conn->is_v2() ? "v2" : "v1"}};
  if (!a.hello.version.empty()) details["version"] = a.hello.version;
  if (reason == nullptr) {
    details["peer"] = a.conn->peer_address();
  } else {
    details["reason"] = reason;
    details["connected_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(SysClock::now() - a.connected_at)
            .count();
  }
  sink_.audit(type, a.user_id, a.user_id, a.id, std::nullopt, details);
}

void Hub::audit_terminal(const UserConn& u, const char* type) {
  json details = {{"conn_id", u.conn_id}};
  if (std::string_view(type) == "terminal_opened") {
    details["protocol"] = u.conn->is_v2() ? "v2" : "v1";
    details["peer"] = u.address;
  } else {
    details["bytes_in"] = u.bytes_in;
    details["bytes_out"] = u.bytes_out;
    details["duration_ms"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - u.opened_at).count();
  }
  sink_.audit(type, u.user_id, agent_owner(u), u.agent_id, u.session_id, details);
}

std::string Hub::agent_owner(const UserConn& u) const {
  // Only an agent's owner may open its terminals (Api), so the viewer is the owner when the
  // agent never connected here.
  const auto it = agent_owner_.find(u.agent_id);
  return it != agent_owner_.end() ? it->second : u.user_id;
}

}  // namespace rx::server
