// SPDX-License-Identifier: MIT
// Api: every HTTP route and WebSocket upgrade of PROTOCOL §1–§5, as plain functions of an
// HttpRequest. Authentication, ownership, scopes, plan limits, origin checks and rate limits
// happen here, before any side effect; the live state is the Hub's, the records the Store's.
#pragma once

#include "rexec/server/audit.h"
#include "rexec/server/auth/authenticator.h"
#include "rexec/server/auth/request_auth.h"
#include "rexec/server/cluster.h"
#include "rexec/server/config.h"
#include "rexec/server/downloads.h"
#include "rexec/server/file_relay.h"
#include "rexec/server/files.h"
#include "rexec/server/http_server.h"
#include "rexec/server/hub.h"
#include "rexec/server/metrics.h"
#include "rexec/server/storage/store.h"
#include "rexec/server/web.h"

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace rx::server {

// Loop thread only. `store`, `auth` and `hub` must outlive the Api.
class Api final : public HubSink {
 public:
  Api(const ServerConfig& config, Store& store, Authenticator& auth);

  // The hub and the file transfers that go through it.
  void attach(Hub& hub);

  // Cluster mode (--redis): terminals go through the cluster, agents are located through it.
  void attach_cluster(Cluster& cluster);

  // Stops the file transfers' timers (server shutdown, after the HttpServer is gone).
  void shutdown();

  // The server's own origin, once the listening port is known (default origin check, §2).
  void set_public_url(std::string url) { config_.public_url = std::move(url); }

  HttpResponse handle(const HttpRequest& req);
  UpgradeDecision upgrade(const HttpRequest& req);
  // File transfers (PROTOCOL §8), commands and recording downloads: a handler for
  // /api/agents/:id/files[/list], .../exec and GET .../recordings/NAME, else nullptr.
  std::unique_ptr<HttpStreamHandler> stream(const HttpRequest& req, HttpStream& s);
  // A file request run on this instance, from stream() or from another instance (FileRelay).
  std::unique_ptr<HttpStreamHandler> start_file(const FileRequest& r, HttpStream& s);

  // HubSink: persist what the hub reports.
  void agent_online(const std::string& agent_id) override;
  void agent_offline(const std::string& agent_id) override;
  void agent_heartbeats(const std::vector<std::string>& agent_ids) override;
  void agent_system_info(const std::string& agent_id, const std::string& info) override;
  void agent_stats(const std::string& agent_id, const std::string& stats) override;
  void audit(const std::string& type, const std::string& user_id, const std::string& owner_id,
             const std::string& agent_id, const std::optional<std::string>& session_id,
             const nlohmann::json& details) override;

 private:
  // The checks shared by a WebSocket upgrade and a plain GET of the same URL: either a refusal
  // or the decision to accept.
  UpgradeDecision route_socket(const HttpRequest& req);
  // The 429 refusal when the caller already holds its share of user sockets, else nullopt.
  // `agent_id`: the terminal's agent, for the audit event ("" for the events socket).
  std::optional<UpgradeDecision> socket_limit(const Principal& p, const HttpRequest& req,
                                              const std::string& agent_id);
  Result<Principal> authenticate(const HttpRequest& req);
  bool origin_ok(const HttpRequest& req) const;
  // Connected to this instance, or (cluster mode) to another one.
  bool is_online(const std::string& agent_id);

  // The caller's agent `id`, or the response that refuses it (500, or 404 when missing or not
  // the caller's).
  struct OwnedAgent {
    std::optional<Agent> agent;
    HttpResponse refusal;
  };

  OwnedAgent owned_agent(const Principal& p, const std::string& id);

  // The routes of the web page's management views (api_manage.cpp): an agent's stats history
  // and its sessions. nullopt for any other path.
  std::optional<HttpResponse> manage_route(const Principal& p, const HttpRequest& req,
                                           const std::vector<std::string>& parts);
  HttpResponse register_agent(const Principal& p, const HttpRequest& req);
  HttpResponse list_agents(const Principal& p);
  HttpResponse agent_route(const Principal& p, const HttpRequest& req, const std::string& id,
                           const std::string& rest);
  HttpResponse exchange_token(const Principal& p, const HttpRequest& req);
  // GET /healthz, /readyz and /metrics (docs/deploy.md); nullopt for other paths.
  std::optional<HttpResponse> operability(const HttpRequest& req);
  HttpResponse tokens_route(const Principal& p, const HttpRequest& req, const std::string& rest);
  // GET /api/audit: the caller's events (every owner's for an admin), newest first.
  HttpResponse audit_route(const Principal& p, const HttpRequest& req);
  // Records a refusal by a limit (limit_refused); `refusal` is the JSON body sent.
  void audit_refusal(const std::string& user_id, const std::string& agent_id,
                     const nlohmann::json& refusal);
  // The plan limit of PROTOCOL §4.1 for a terminal, or a command (exec), on `agent_id`: the
  // refusal (403, or 503 when the cluster cannot count), recorded; nullopt when allowed.
  std::optional<HttpResponse> terminal_limit(const Principal& p, const std::string& agent_id);
  // DELETE /api/agents/:id, by its owner or by the agent's own token.
  HttpResponse delete_agent(const Principal& p, const Agent& a);
  // GET /api/profile and GET /api/containers: what the deployed server's CLI reads
  // (docs/protocol.md "Compatibility").
  HttpResponse profile(const Principal& p, const HttpRequest& req);
  HttpResponse containers(const Principal& p, const HttpRequest& req);
  // Whether each agent is connected to this or (cluster mode) another instance.
  std::vector<bool> online_flags(const std::vector<Agent>& agents);
  // POST /api/agents/:id/exec on the agent's instance (this one), once the caller's checks
  // passed here or on the instance that relayed it: the session limit, then the command.
  std::unique_ptr<HttpStreamHandler> exec_here(const FileRequest& r, HttpStream& s);
  HttpResponse mfa_route(const Principal& p, const HttpRequest& req, const std::string& agent_id,
                         const std::string& action);
  // GET/PUT /api/agents/:id/recording (the policy) and GET .../recordings (the list); a
  // download (GET .../recordings/NAME) is streamed (stream()). docs/protocol.md, "Session
  // recordings".
  HttpResponse recording_route(const Principal& p, const HttpRequest& req,
                               const std::string& agent_id, const std::string& rest,
                               const std::string& name);
  // An agent's recording policy (the setting "recording/<agent id>"; off when unset).
  [[nodiscard]] RecordingMode recording_mode(const std::string& agent_id);
  // A code given to mfa-verify within kMfaVerifiedFor opens the user's locked terminals.
  [[nodiscard]] bool mfa_verified(const std::string& user_id) const;

  ServerConfig config_;
  Store& store_;
  Authenticator& auth_;
  Audit audit_;
  Hub* hub_ = nullptr;
  std::unique_ptr<FileService> files_;
  std::unique_ptr<FileRelay> file_relay_;  // cluster mode
  std::unique_ptr<Recordings> recordings_;
  Cluster* cluster_ = nullptr;
  Millis last_stats_prune_ = 0;  // when agent_stats last pruned the old samples
  RateLimiter limiter_;
  Downloads downloads_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::uint64_t auth_failures_ = 0;  // requests and upgrades refused 401
  std::uint64_t rate_limited_ = 0;   // answered 429 by the rate limiter

  // Tokens (docs/protocol.md "Registration tokens"): a registration token lives this long unless
  // asked otherwise, and no token made with expires_in_minutes longer than the maximum; a web
  // session creates other tokens only this soon after its sign-in.
  static constexpr std::int64_t kRegistrationTokenMinutes = 60;
  static constexpr std::int64_t kMaxTokenMinutes = 24 * 60;
  static constexpr std::chrono::minutes kFreshSignIn{15};

  using SteadyClock = std::chrono::steady_clock;
  static constexpr std::chrono::minutes kMfaVerifiedFor{10};
  static constexpr std::chrono::minutes kMfaFailureWindow{5};
  static constexpr std::size_t kMfaMaxFailures = 5;
  // In memory: a restart asks for a code again, which is the safe side.
  std::map<std::string, SteadyClock::time_point> mfa_verified_until_;
  std::map<std::string, std::deque<SteadyClock::time_point>> mfa_failures_;
};

}  // namespace rx::server
