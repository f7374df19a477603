// SPDX-License-Identifier: MIT
// Cluster: several rexec-server instances behind a load balancer, joined through Redis
// (PROTOCOL §9, `--redis`). An agent is connected to one instance; users may be on any.
//
// - Location: `rexec:agent:location:<id>` names the agent's instance, with a TTL refreshed on
//   every heartbeat and deleted (only by its owner) on disconnect. It is the routing signal.
// - Terminals: in cluster mode every user terminal socket is a Relay. A Relay attaches to the
//   hub of the agent's instance as one more viewer: directly when that is this instance,
//   through `rexec:terminal_proxy` otherwise, where the far instance gives its hub a
//   RemoteConn. Terminal bytes (`output`, `input`) go as binary relay frames (relay_frame.h) on
//   the receiving instance's own channel `rexec:relay:<instance>` once both sides said they can,
//   and as JSON on `rexec:terminal_proxy` otherwise. The hub therefore does everything for a remote
//   viewer that it does for a local one (replay, flow control, status, exec, takeover, limits), and
//   the Relay only copies frames, acknowledging what reached the user so that the far hub's flow
//   control sees the user's pace. It always speaks v2 to the hub and keeps the viewer's output
//   position, so when the agent moves to another instance, or messages were lost, it attaches there
//   again at that position and the hub replays exactly what is missing. v1 users get v1 frames from
//   it.
// - Events: what a hub tells its events sockets is published on `rexec:agent_events` for the
//   other instances' sockets of that user; `agent_connected` also moves the Relays.
// - Revocation: revoked tokens and deleted agents are published on `rexec:token_revoked`, so no
//   instance keeps accepting a token from its cache, or an agent's socket, after either.
// - Liveness: `rexec:instance:<id>` (TTL 15 s) says an instance is alive; viewers whose origin
//   instance died are dropped, and Relays whose agent's location expired are closed 4001 once
//   the grace period has passed.
#pragma once

#include "rexec/common/result.h"
#include "rexec/server/hub.h"
#include "rexec/server/redis_link.h"
#include "rexec/server/relay_frame.h"
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

struct ClusterConfig {
  std::string instance_id;  // <hostname>-<6 random [a-z0-9]>, from make_instance_id()
  std::chrono::seconds location_ttl{60};
  std::chrono::seconds instance_ttl{15};
  std::chrono::milliseconds check_interval{5000};  // liveness and location checks
  std::chrono::milliseconds agent_grace{60000};    // as HubConfig::agent_grace
  // A Relay stops acknowledging output while its user's socket has more than this queued, so
  // the far hub sees the viewer fall behind (flow control, PROTOCOL §7).
  std::size_t flow_pause_bytes = 1U << 20U;
  std::size_t user_queue_limit = 8U << 20U;  // a user socket past this is closed 1008
  // Offer and accept binary relay frames. Off, the instance behaves as one that predates them
  // (base64 JSON only): the tests of the compatibility path run a cluster of both kinds.
  bool binary_frames = true;
};

std::string make_instance_id();

class Cluster {
 public:
  Cluster(uv_loop_t* loop, ClusterConfig config, RedisAddress redis, Hub& hub);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;
  Cluster(Cluster&&) = delete;
  Cluster& operator=(Cluster&&) = delete;

  [[nodiscard]] const std::string& instance_id() const { return config_.instance_id; }

  // The instance the agent is connected to (this one's id when local), or nullopt when none.
  // Blocking (RedisLink::kLookupTimeout) unless the agent is local. Errors: kUnavailable.
  Result<std::optional<std::string>> locate(const std::string& agent_id);
  // Whether each agent is connected to some instance (one MGET).
  Result<std::vector<bool>> online(const std::vector<std::string>& agent_ids);

  // The handler of a user terminal socket, attached to the agent on `instance`.
  std::unique_ptr<WsHandler> accept_user(WsConn& conn, const TerminalRequest& request,
                                         const std::string& instance);

  // From the hub (through Api, the HubSink): the agent's location follows its socket.
  void agent_online(const std::string& agent_id);
  void agent_offline(const std::string& agent_id);
  void agent_heartbeats(const std::vector<std::string>& agent_ids);

  // Tokens revoked (and an agent deleted) on this instance: the others drop them from their
  // caches (and close that agent's socket) through `rexec:token_revoked`.
  void revoked(const std::vector<std::string>& token_ids, const std::string& deleted_agent_id = "");
  using RevokedFn = std::function<void(const std::vector<std::string>& token_ids,
                                       const std::string& deleted_agent_id)>;

  void set_revocation_handler(RevokedFn fn) { on_revoked_ = std::move(fn); }

  // Distinct agents on which the user has open terminal sockets, on every live instance (plan
  // limits). Blocking (an HGETALL and an MGET). Errors: kUnavailable.
  Result<std::set<std::string>> terminal_agents(const std::string& user_id);

  // File transfers across instances (FileRelay): messages of `rexec:file_proxy` addressed to
  // this instance go to `fn`; publish_file() sends one to `target`.
  void set_file_handler(std::function<void(const std::string& from, const nlohmann::json&)> fn) {
    on_file_ = std::move(fn);
  }

  void publish_file(const std::string& target, nlohmann::json payload);

  // OK when Redis answers and the subscription is live (GET /readyz).
  Status ping();

  [[nodiscard]] std::uint64_t error_count() const { return redis_->error_count(); }

  [[nodiscard]] std::size_t relays() const { return relays_.size(); }

  [[nodiscard]] std::size_t remote_viewers() const { return remote_.size(); }

  // Detaches every viewer and closes Redis; call before the hub shuts down.
  void stop();

  class Relay;
  class LocalConn;
  class RemoteConn;
  struct RemoteViewer;

 private:
  void on_message(const std::string& channel, std::string_view text);
  void on_proxy(const std::string& from, const nlohmann::json& m);
  void on_frame(std::string_view bytes);
  // Where `output`/`input` (JSON or relay frame) and the other per-viewer messages go.
  // The viewer attached here from another instance; nullptr when it is gone or closing.
  RemoteViewer* open_remote(std::string_view wire);
  // The Relay of `wire`. nullptr when the attachment is over and its stop was lost: `from` is
  // then told again to stop it, if `tell`.
  Relay* relay_or_stop(std::string_view wire, std::string_view from, bool tell);
  void on_ready();
  void check();
  void publish(const std::string& channel, const std::string& type, nlohmann::json payload);
  // A binary relay frame to f.target's own channel; f.origin is this instance.
  void publish_frame(RelayFrame f);
  // Moves every Relay of `agent_id` that is not attached to `instance` there.
  void follow(const std::string& agent_id, const std::string& instance);
  void set_location(const std::string& agent_id);
  void count_terminal(const std::string& user_id, const std::string& agent_id, int delta);
  void drop_remote(const std::string& viewer);  // soon, outside the hub's call stack
  // Work that must not run inside the hub's call stack: viewers to drop, agents to follow.
  void reap();
  void retry_starts();

  std::string incarnation_;  // this process's run of the instance id (rexec:instance:<id> holds it)
  ClusterConfig config_;
  Hub& hub_;
  std::unique_ptr<RedisLink> redis_;
  uvx::Timer check_timer_;
  uvx::Timer reap_timer_;
  uvx::Timer retry_timer_;  // while a remote start is not yet confirmed
  std::set<std::string> local_agents_;
  std::map<std::string, Relay*, std::less<>> relays_;  // by wire id (viewer.generation); lws owns
  std::map<std::string, std::unique_ptr<RemoteViewer>, std::less<>> remote_;  // by wire id
  std::vector<std::string> to_reap_;
  std::vector<std::string> to_follow_;
  RevokedFn on_revoked_;
  std::function<void(const std::string&, const nlohmann::json&)> on_file_;
  bool stopped_ = false;
};

}  // namespace rx::server
