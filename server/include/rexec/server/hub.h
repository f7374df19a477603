// SPDX-License-Identifier: MIT
// Hub: the server's live state (PROTOCOL §3–§4). Agent sockets, user terminal sockets and
// events-hub sockets meet here: terminal output fans out to every viewer of a session, input
// and resizes go to the agent, heartbeats mark agents offline, and the grace and linger timers
// run. A passive object over WsConn, so tests drive it with in-memory connections.
#pragma once

#include "rexec/common/result.h"
#include "rexec/proto/messages.h"
#include "rexec/server/recordings.h"
#include "rexec/server/ws_conn.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace rx::server {

struct HubConfig {
  std::chrono::milliseconds ping_interval{15000};  // control ping to every agent (§3.3)
  std::chrono::milliseconds pong_timeout{45000};   // silence this long: offline
  std::chrono::milliseconds session_linger{15 * 60 * 1000};
  std::chrono::milliseconds agent_grace{60000};
  std::size_t max_frame_bytes = 1U << 20U;
  std::size_t user_queue_limit = 8U << 20U;  // bytes queued to one user socket, at most
  std::chrono::milliseconds slow_consumer_stall{10000};
  // v2 agents: a session is paused (shell_flow) while every viewer has this much queued.
  std::size_t flow_pause_bytes = 1U << 20U;
  // Input queued to an agent above this: stop reading the users that send it until it drains.
  std::size_t agent_input_high_water = 1U << 20U;
  // An agent's stats (every 5 s) go to its viewers and events sockets as they come, and to the
  // store (the charts' history) at most this often (--stats-sample-interval; 0: every one).
  std::chrono::milliseconds stats_sample_interval{30000};
};

// Where the hub reports what must be persisted. Called on the loop thread; must not throw.
class HubSink {
 public:
  virtual ~HubSink() = default;
  virtual void agent_online(const std::string& agent_id) = 0;
  virtual void agent_offline(const std::string& agent_id) = 0;
  // Agents that answered a ping since the last call (called once per ping interval).
  virtual void agent_heartbeats(const std::vector<std::string>& agent_ids) = 0;
  // The agent's system_info and a stats sample: their `data` objects as JSON text.
  virtual void agent_system_info(const std::string& agent_id, const std::string& info) = 0;
  virtual void agent_stats(const std::string& agent_id, const std::string& stats) = 0;
  // An audit event (Audit::record): agent_connected, agent_disconnected, terminal_opened,
  // terminal_closed, exec_run. `user_id` acted on `owner_id`'s agent; `details` is an object.
  virtual void audit(const std::string& type, const std::string& user_id,
                     const std::string& owner_id, const std::string& agent_id,
                     const std::optional<std::string>& session_id,
                     const nlohmann::json& details) = 0;

 protected:
  HubSink() = default;
  HubSink(const HubSink&) = default;
  HubSink& operator=(const HubSink&) = default;
  HubSink(HubSink&&) = default;
  HubSink& operator=(HubSink&&) = default;
};

struct AgentLive {
  std::chrono::system_clock::time_point connected_at;
  std::chrono::system_clock::time_point last_ping;
  std::size_t sessions = 0;
  std::string os, arch;
  nlohmann::json system_info;  // null until the agent sent it
  nlohmann::json stats;        // latest, null until the first sample
};

struct AgentHello {
  std::string agent_id;
  std::string user_id;
  std::string os, arch, shell, distro, version;  // X-Agent-* headers
};

struct TerminalRequest {
  std::string agent_id;
  std::string user_id;
  std::string conn_id;  // [A-Za-z0-9_-], ≤ 58 characters for splits
  bool new_session = false;
  std::optional<std::uint64_t> offset;  // &offset=N: output bytes this viewer has shown (§4.3)
  // &session=ID: view this existing session ("main" or "split-<connId>" of another socket)
  // instead of the one `conn_id` and `new_session` name (docs/protocol.md "Sessions").
  std::optional<std::string> session;
};

// What the hub holds now and has moved since start (GET /metrics).
struct HubStats {
  std::size_t agents = 0;            // connected agent sockets
  std::size_t sessions = 0;          // sessions kept: viewed, or `main` lingering
  std::size_t terminal_sockets = 0;  // user terminal sockets
  std::size_t events_sockets = 0;
  std::uint64_t output_bytes = 0;        // terminal output received from agents (replays included)
  std::uint64_t input_bytes = 0;         // terminal input received from users
  std::uint64_t user_sent_bytes = 0;     // terminal output queued to user sockets, after fan-out
  std::uint64_t user_dropped_bytes = 0;  // output dropped for slow consumers (§7)
  std::uint64_t slow_consumers_closed = 0;
  std::uint64_t dropped_messages = 0;              // undecodable frames and messages, from anyone
  std::chrono::milliseconds heartbeat_lag_max{0};  // the longest silence of a connected agent
};

// Loop thread only; the loop and the sink must outlive the hub. Handlers returned by accept_*
// refer to the hub: destroy connections before the hub (HttpServer first).
class Hub {
 public:
  Hub(uv_loop_t* loop, HubConfig config, HubSink& sink);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;
  Hub(Hub&&) = delete;
  Hub& operator=(Hub&&) = delete;

  std::unique_ptr<WsHandler> accept_agent(WsConn& conn, AgentHello hello);
  std::unique_ptr<WsHandler> accept_user(WsConn& conn, TerminalRequest request);
  std::unique_ptr<WsHandler> accept_events(WsConn& conn, std::string user_id);

  [[nodiscard]] uv_loop_t* loop() const { return loop_; }

  [[nodiscard]] bool is_online(const std::string& agent_id) const;
  [[nodiscard]] std::optional<AgentLive> live(const std::string& agent_id) const;
  // Distinct agents on which `user_id` has an open terminal socket.
  [[nodiscard]] std::set<std::string> terminal_agents(const std::string& user_id) const;
  // Open user sockets (terminals and events) of a user, and from one address.
  [[nodiscard]] std::size_t user_sockets(const std::string& user_id) const;
  [[nodiscard]] std::size_t address_sockets(const std::string& address) const;
  // Sessions on an agent that the hub keeps (viewed, or `main` lingering), and whether one is.
  [[nodiscard]] std::size_t session_count(const std::string& agent_id) const;
  [[nodiscard]] bool has_session(const std::string& agent_id, const std::string& session_id) const;
  // The sessions the hub keeps on an agent, oldest first, as the page shows them:
  // [{"id","started_at","shell","lingering","viewers":[{"conn_id","since"}]}] (docs/protocol.md
  // "Sessions"). Every change is also sent to the owner's events sockets as `agent_sessions`.
  [[nodiscard]] nlohmann::json sessions_json(const std::string& agent_id) const;
  // Ends a session: its shell is stopped, its viewers get {"type":"session_ended"} and close
  // with 4002. False when the hub keeps no such session. `user_id` acted (audit).
  bool end_session(const std::string& agent_id, const std::string& session_id,
                   const std::string& user_id);

  // Sends `event` to the events sockets of `user_id` (here, and through the cluster elsewhere).
  void notify(const std::string& user_id, const nlohmann::json& event) {
    broadcast_events(user_id, event);
  }

  // Events-hub messages this hub sends its own sockets go to `fn` too (the cluster publishes
  // them for the other instances' sockets).
  void set_events_observer(
      std::function<void(const std::string& user_id, const nlohmann::json&)> fn) {
    events_observer_ = std::move(fn);
  }

  // Session recordings: `recordings` writes them, `mode_of` gives an agent's policy (asked when a
  // viewer opens a terminal). Without this call nothing is recorded. Both outlive the hub.
  void set_recordings(Recordings* recordings,
                      std::function<RecordingMode(const std::string& agent_id)> mode_of) {
    recordings_ = recordings;
    recording_mode_ = std::move(mode_of);
  }

  // An events-hub message from another instance, for this instance's sockets of `user_id`.
  void deliver_events(const std::string& user_id, const std::string& text);

  // File transfers (FileService): the agent's file messages and chunks, and the end of its
  // connection (connection lost or replaced), go to these hooks.
  struct FileHooks {
    std::function<void(const std::string& agent_id, const proto::AgentMessage&)> message;
    std::function<void(const std::string& agent_id, std::string_view transfer_id, std::uint64_t seq,
                       std::string_view bytes)>
        data;
    std::function<void(const std::string& agent_id)> gone;
    // The agent's socket has less than kFileRoom queued again (after having had more).
    std::function<void(const std::string& agent_id)> room;
  };

  // File data goes on an agent's socket only while less than this is queued there, so the
  // terminal input behind it waits for at most about one chunk.
  static constexpr std::size_t kFileRoom = 64U * 1024U;
  [[nodiscard]] std::size_t agent_queued_bytes(const std::string& agent_id) const;

  void set_file_hooks(FileHooks hooks) { file_hooks_ = std::move(hooks); }

  // To an agent connected here; false when it is not.
  bool send_agent_message(const std::string& agent_id, const proto::AgentMessage& m);
  // A file chunk: a binary frame (kind 0x03) on a v2 link, file_data JSON on a v1 link.
  bool send_file_data(const std::string& agent_id, std::string_view transfer_id, std::uint64_t seq,
                      std::string_view bytes);

  // A command without a terminal (POST /api/agents/:id/exec): sends `exec` to the agent, which
  // must be connected here, and gives `done` its exec_result, or kUnavailable "agent
  // disconnected" when the link goes first. `user_id` ran it (audit). Returns an id for
  // cancel_exec, or 0 when the agent is not connected here; `done` is never called then.
  using ExecDone = std::function<void(Result<proto::ExecResult>)>;
  std::uint64_t start_exec(const std::string& agent_id, const std::string& user_id,
                           std::string command, std::optional<std::uint32_t> timeout_s,
                           ExecDone done);
  // `done` of that exec is never called after this (its client went away, or stopped waiting).
  // The command goes on; its result, when it comes, is recorded and dropped.
  void cancel_exec(std::uint64_t id);
  // Commands an agent connected here is running for the server (from terminal sockets and
  // start_exec, cancelled ones included: they still run).
  [[nodiscard]] std::size_t execs_running(const std::string& agent_id) const;

  // Closes the agent's socket and every terminal on it (the agent was deleted).
  void drop_agent(const std::string& agent_id);
  // Stops timers and closes every socket (server shutdown).
  void shutdown();

  // Counters, for logs and tests.
  [[nodiscard]] std::uint64_t dropped_messages() const { return dropped_; }

  [[nodiscard]] HubStats stats() const;

  struct AgentConn;
  struct UserConn;
  struct EventsConn;
  struct Session;

 private:
  friend struct AgentHandler;
  friend struct UserHandler;
  friend struct EventsHandler;

  void on_agent_message(AgentConn& a, std::string_view payload, bool binary);
  void on_agent_closed(AgentConn& a);
  void on_user_message(UserConn& u, std::string_view payload, bool binary);
  void on_user_closed(UserConn& u);
  // `reason` goes into the agent_disconnected audit event: closed, heartbeat_lost.
  void mark_offline(const std::string& agent_id, const char* reason);
  void check_heartbeats();
  void on_stats(AgentConn& a, const proto::Stats& m);
  void send_to_agent(const std::string& agent_id, const std::string& text);
  // Input from a viewer to its session's shell: to the agent, or held (below).
  void send_input(UserConn& from, std::string_view bytes);
  void forward_input(AgentConn& a, const std::string& session_id, std::string_view bytes);
  void send_shell_start(const std::string& agent_id, const std::string& session_id,
                        bool new_session, std::uint64_t resume_offset);
  // v1 agent links (docs/protocol.md "Compatibility"): a session's input and resizes wait from
  // its shell_start until the agent's shell_started for it. holds() says whether they wait now;
  // release_held() sends the latest size and the held input once the shell has started, and
  // drop_held() forgets them when it cannot (the shell failed, the link went).
  [[nodiscard]] bool holds(const AgentConn& a, const Session& s) const;
  void release_held(AgentConn& a, Session& s);
  void drop_held(Session& s);
  // Exec (terminal sockets' and start_exec's): send one, and hand a result to its waiter.
  struct ExecWaiter;
  void send_exec(AgentConn& a, ExecWaiter w, std::optional<std::uint32_t> timeout_s);
  // `lost`: `r` says the link went (a terminal socket is told so; start_exec's caller gets an
  // Error).
  void finish_exec(const AgentConn& a, const ExecWaiter& w, proto::ExecResult r, bool lost);
  // Every exec waiting on this link gets a result with error "agent disconnected".
  void fail_execs(AgentConn& a);
  // Live output (`replay` false) goes to viewers that are not waiting for a replay; a replay
  // only to those that are. `offset`: where the bytes start; nullopt: after the last received.
  void route_output(const std::string& agent_id, const std::string& session_id,
                    std::string_view bytes, std::optional<std::uint64_t> offset, bool replay);
  // Sends `bytes` (starting at `start`) to `u`, minus what it has, after a gap marker if it
  // misses some.
  void deliver(UserConn& u, std::uint64_t start, std::string_view bytes);
  // Writes the part of `bytes` (starting at `start`) its recording lacks, starting the recording
  // first when the agent's policy asks for one; a failure under `required` closes the session's
  // viewers (fail_recording) and returns false: the bytes must then go to nobody.
  bool record(Session& s, std::uint64_t start, std::string_view bytes);
  void fail_recording(Session& s, const std::string& why);
  void reset_position(UserConn& u);
  void on_user_drain(UserConn& u);
  void on_agent_drain(AgentConn& a);
  // Pauses a session while all its viewers are behind, resumes it when one catches up: a v2
  // agent stops reading that PTY (shell_flow); a v1 agent's link is not read meanwhile.
  void update_flow(Session& s);
  void set_flow(AgentConn& a, Session& s, bool paused);
  void close_stalled_viewers();
  void route_status(const std::string& agent_id, const std::string& session_id,
                    const std::string& text);
  // False when the message was dropped (slow consumer, §7) or the socket is gone.
  bool send_user(UserConn& u, net::WsMessage message);
  void broadcast_events(const std::string& user_id, const nlohmann::json& event);
  // `agent_sessions` with the agent's sessions_json() to its owner's events sockets.
  void announce_sessions(const std::string& agent_id);
  Session& session(const std::string& agent_id, const std::string& session_id);
  void count_socket(const std::string& user_id, const std::string& address, bool opened);
  // The audit events of agent sockets, terminal sockets and execs (HubSink::audit).
  void audit_agent(const AgentConn& a, const char* type, const char* reason);
  void audit_terminal(const UserConn& u, const char* type);
  [[nodiscard]] std::string agent_owner(const UserConn& u) const;

  uv_loop_t* loop_;
  HubConfig config_;
  HubSink& sink_;
  uvx::Timer ping_timer_;
  uvx::Timer check_timer_;                                    // stalled viewers
  uvx::Timer heartbeat_timer_;                                // agents silent for pong_timeout
  std::map<std::string, std::shared_ptr<AgentConn>> agents_;  // shared with its AgentHandler
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Session>> sessions_;
  std::set<UserConn*> users_;
  std::map<std::string, std::set<EventsConn*>> events_;
  std::map<std::string, std::unique_ptr<uvx::Timer>> grace_;
  std::map<std::string, std::string> agent_owner_;  // agent id → user id, for events
  std::map<std::string, std::size_t> sockets_by_user_;
  std::map<std::string, std::size_t> sockets_by_address_;
  std::function<void(const std::string&, const nlohmann::json&)> events_observer_;
  FileHooks file_hooks_;
  Recordings* recordings_ = nullptr;
  std::function<RecordingMode(const std::string&)> recording_mode_;
  std::uint64_t dropped_ = 0;
  std::uint64_t next_exec_ = 0;
  std::uint64_t output_bytes_ = 0;
  std::uint64_t input_bytes_ = 0;
  std::uint64_t user_sent_bytes_ = 0;
  std::uint64_t user_dropped_bytes_ = 0;
  std::uint64_t slow_consumers_closed_ = 0;
};

// RFC 3339 UTC with seconds, e.g. 2026-11-24T02:30:00Z.
std::string format_time(std::chrono::system_clock::time_point t);

}  // namespace rx::server
