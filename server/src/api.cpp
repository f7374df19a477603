// SPDX-License-Identifier: MIT
// Routes of PROTOCOL §1–§5. Every handler authenticates, checks scope and ownership, and only
// then touches the store or the hub.
#include "rexec/server/api.h"

#include "rexec/common/version.h"
#include "rexec/proto/messages.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/auth/totp.h"
#include "rexec/server/exec_route.h"
#include "rexec/server/limits.h"
#include "rexec/server/views.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>

#include "api_internal.h"

namespace rx::server {

using api_detail::error;
using api_detail::reply;
using api_detail::rfc3339;
using api_detail::time_or_null;
using api_detail::valid_conn_id;
using api_detail::valid_session_id;

namespace {

using nlohmann::json;
using SysClock = std::chrono::system_clock;

UpgradeDecision refuse(int status, const json& body) {
  UpgradeDecision d;
  d.refusal = reply(status, body);
  return d;
}

UpgradeDecision refuse(int status, const char* text) {
  return refuse(status, json{{"error", text}});
}

// "/a/b/c" → {"a","b","c"}
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const std::size_t j = path.find('/', i);
    if (i < path.size()) parts.push_back(path.substr(i, j == std::string::npos ? j : j - i));
    i = j == std::string::npos ? path.size() : j;
  }
  return parts;
}

json agent_json(const Agent& a, bool online) {
  json j = {{"id", a.id},
            {"user_id", a.user_id},
            {"name", a.name},
            {"os", a.os},
            {"arch", a.arch},
            {"shell", a.shell},
            {"status", online ? "online" : "offline"},
            {"mfa_locked", a.mfa_locked},
            {"connected_at", time_or_null(a.connected_at)},
            {"last_ping", time_or_null(a.last_ping)},
            {"created_at", rfc3339(a.created_at)},
            {"updated_at", rfc3339(a.updated_at)}};
  if (!a.description.empty()) j["description"] = a.description;
  if (!a.distro.empty()) j["distro"] = a.distro;
  if (!a.tags.empty()) j["tags"] = a.tags;
  auto info = json::parse(a.system_info, nullptr, false);
  j["system_info"] = info.is_discarded() ? json(nullptr) : info;
  return j;
}

}  // namespace

Api::Api(const ServerConfig& config, Store& store, Authenticator& auth)
    : config_(config),
      store_(store),
      auth_(auth),
      audit_(store, config.audit_retention),
      limiter_(config.rate_limit_per_sec, config.rate_limit_burst),
      downloads_(config.downloads_dir) {}

Result<Principal> Api::authenticate(const HttpRequest& req) {
  const auto extracted =
      extract_token(req.header("authorization"), req.header("sec-websocket-protocol"),
                    req.query_param("token").value_or(""));
  if (!extracted) {
    ++auth_failures_;
    return Error(Errc::kUnauthorized, "no token");
  }
  auto p = auth_.authenticate(extracted->token);
  if (!p && p.error().code == Errc::kUnauthorized) ++auth_failures_;
  return p;
}

std::optional<HttpResponse> Api::operability(const HttpRequest& req) {
  if (req.path != "/healthz" && req.path != "/readyz" && req.path != "/metrics")
    return std::nullopt;
  if (req.method != "GET") return error(405, "method not allowed");
  if (req.path == "/healthz") return reply(200, {{"status", "ok"}});
  if (req.path == "/readyz") {
    // Ready when the database answers (and Redis, once configured).
    json body = {{"status", "ready"}, {"db", "ok"}};
    if (auto st = store_.ping(); !st) {
      spdlog::warn("not ready: database error={}", st.error().message);
      body["status"] = "not ready";
      body["db"] = "error";
    }
    if (cluster_ != nullptr) {
      body["redis"] = "ok";
      if (auto st = cluster_->ping(); !st) {
        spdlog::warn("not ready: redis error={}", st.error().message);
        body["status"] = "not ready";
        body["redis"] = "error";
      }
    }
    return reply(body["status"] == "ready" ? 200 : 503, body);
  }
  if (!config_.metrics_token.empty()) {
    const auto t = extract_token(req.header("authorization"), "", "");
    if (!t || !constant_time_equal(t->token, config_.metrics_token)) {
      return error(401, "unauthorized");
    }
  }
  const HubStats h = hub_ != nullptr ? hub_->stats() : HubStats{};
  MetricsText m;
  m.labelled("rexec_build_info", "gauge", "The running rexec-server build.",
             std::string("version=\"") + REXEC_VERSION + "\"", 1);
  m.gauge("rexec_process_start_time_seconds", "Start time of the process, Unix seconds.",
          std::chrono::duration<double>(started_.time_since_epoch()).count());
  m.gauge("rexec_process_resident_memory_bytes", "Resident memory of the process.",
          static_cast<double>(process_resident_bytes()));
  m.gauge("rexec_process_open_fds", "Open file descriptors of the process.",
          static_cast<double>(process_open_fds()));
  m.gauge("rexec_agents_connected", "Agents with a live socket on this instance.",
          static_cast<double>(h.agents));
  m.gauge("rexec_sessions_open", "Terminal sessions kept (viewed, or main lingering).",
          static_cast<double>(h.sessions));
  m.gauge("rexec_terminal_sockets", "Open user terminal sockets.",
          static_cast<double>(h.terminal_sockets));
  m.gauge("rexec_events_sockets", "Open events-hub sockets.",
          static_cast<double>(h.events_sockets));
  m.counter("rexec_terminal_output_bytes_total",
            "Terminal output received from agents (replays included).", h.output_bytes);
  m.counter("rexec_terminal_input_bytes_total", "Terminal input received from users.",
            h.input_bytes);
  m.counter("rexec_user_sent_bytes_total", "Terminal output queued to user sockets (fan-out).",
            h.user_sent_bytes);
  m.counter("rexec_user_dropped_bytes_total", "Output dropped for slow user sockets.",
            h.user_dropped_bytes);
  m.counter("rexec_slow_consumers_closed_total", "User sockets closed 1008 slow consumer.",
            h.slow_consumers_closed);
  m.counter("rexec_messages_dropped_total", "Undecodable frames and messages, dropped.",
            h.dropped_messages);
  m.counter("rexec_auth_failures_total", "Requests and upgrades refused for want of a valid token.",
            auth_failures_);
  m.counter("rexec_rate_limited_total", "Requests and upgrades refused by the rate limit.",
            rate_limited_);
  m.counter("rexec_db_errors_total", "Database operations that failed.", store_.error_count());
  m.counter("rexec_db_write_statements_total",
            "Statements that wrote to the database (INSERT, UPDATE, DELETE).",
            store_.write_statements());
  m.counter("rexec_db_commits_total", "Transactions committed, explicit or not.", store_.commits());
  if (files_ != nullptr) {
    const FileStats f = files_->stats();
    m.gauge("rexec_file_transfers", "File transfers in progress (PROTOCOL §8).",
            static_cast<double>(f.active));
    m.counter("rexec_file_upload_bytes_total", "File bytes relayed to agents.", f.uploaded_bytes);
    m.counter("rexec_file_download_bytes_total", "File bytes relayed to clients.",
              f.downloaded_bytes);
    m.counter("rexec_file_transfers_failed_total", "File transfers that failed or were cancelled.",
              f.failed);
  }
  if (cluster_ != nullptr) {
    m.counter("rexec_redis_errors_total", "Redis commands and lookups that failed, reconnections.",
              cluster_->error_count());
    m.gauge("rexec_cluster_relays", "User terminal sockets of this instance (cluster relays).",
            static_cast<double>(cluster_->relays()));
    m.gauge("rexec_cluster_remote_viewers",
            "Viewers from other instances on this instance's agents.",
            static_cast<double>(cluster_->remote_viewers()));
  }
  m.gauge("rexec_heartbeat_lag_max_seconds",
          "Longest silence of a connected agent (pings every 15 s; offline after 45 s).",
          std::chrono::duration<double>(h.heartbeat_lag_max).count());
  HttpResponse r;
  r.status = 200;
  r.body = m.take();
  r.content_type = std::string(kMetricsContentType);
  return r;
}

bool Api::origin_ok(const HttpRequest& req) const {
  return origin_allowed(req.header("origin"), config_.allowed_origins, config_.public_url,
                        config_.block_empty_origin);
}

HttpResponse Api::handle(const HttpRequest& req) {
  // Before the rate limit: a load balancer's health checks all come from one address.
  if (auto r = operability(req)) return std::move(*r);
  if (auto wait = limiter_.take(req.peer)) {
    ++rate_limited_;
    return reply(429, {{"error", "rate limit exceeded"}, {"retry_after", *wait}});
  }
  const auto parts = split_path(req.path);
  if (req.path == "/api/version" && req.method == "GET") {
    return reply(200, {{"version", REXEC_VERSION}, {"build", REXEC_BUILD_DATE}});
  }
  if (auto file = downloads_.handle(req, config_.public_url)) return std::move(*file);
  // A plain GET of a socket URL answers with the same checks as the upgrade would.
  const bool socket_path =
      (parts.size() == 3 && parts[0] == "ws" && parts[1] == "agent") ||
      (parts.size() == 4 && parts[0] == "ws" && parts[1] == "agent" && parts[3] == "terminal") ||
      (parts.size() == 4 && parts[0] == "api" && parts[1] == "agents" && parts[3] == "ws") ||
      req.path == "/api/events";
  if (socket_path && req.method == "GET") {
    UpgradeDecision d = route_socket(req);
    if (d.refusal) return *d.refusal;
    // &check=1: a browser asking whether the upgrade would pass (it cannot read the status of a
    // refused upgrade); 204 says yes without a console error.
    if (req.query_param("check") == "1") return HttpResponse{204, "", "text/plain", {}};
    return error(426, "websocket upgrade required");
  }
  if (auto page = web_response(req)) return std::move(*page);
  if (parts.empty() || parts[0] != "api") return error(404, "not found");
  auto principal = authenticate(req);
  if (!principal) {
    if (principal.error().code == Errc::kStorage) return error(500, "internal error");
    return error(401, "unauthorized");
  }
  const Principal& p = *principal;
  if (req.path == "/api/tokens/validate" && req.method == "GET") {
    auto user = store_.user_by_id(p.user_id);
    if (!user) return error(500, "internal error");
    return reply(200, validate_json(p, *user ? (*user)->email : ""));
  }
  if (p.is_agent_scoped()) {
    // The deployed agent's `unregister` deletes its own record with its own token: allowed for
    // exactly that agent (docs/protocol.md "Compatibility").
    if (req.method == "DELETE" && parts.size() == 3 && parts[1] == "agents" && p.agent_id &&
        parts[2] == *p.agent_id) {
      const OwnedAgent owned = owned_agent(p, parts[2]);
      return owned.agent ? delete_agent(p, *owned.agent) : owned.refusal;
    }
    return error(403, "token scope does not allow this");
  }
  if (p.is_register_scoped() && !(req.method == "POST" && (req.path == "/api/agents" ||
                                                           req.path == "/api/agents/register"))) {
    return error(403, "token scope does not allow this");
  }
  if (auto r = manage_route(p, req, parts)) return std::move(*r);
  if (req.path == "/api/profile") return profile(p, req);
  if (req.path == "/api/containers") return containers(p, req);
  if (req.path == "/api/auth/token") return exchange_token(p, req);
  if (req.path == "/api/audit") return audit_route(p, req);
  if (parts.size() >= 2 && parts[1] == "agents") {
    if (parts.size() == 2 && req.method == "GET") return list_agents(p);
    if ((parts.size() == 2 || (parts.size() == 3 && parts[2] == "register")) &&
        req.method == "POST") {
      return register_agent(p, req);
    }
    if (parts.size() >= 4 && (parts[3] == "recording" || parts[3] == "recordings") &&
        parts.size() <= 5) {
      return recording_route(p, req, parts[2], parts[3], parts.size() == 5 ? parts[4] : "");
    }
    if (parts.size() >= 3) return agent_route(p, req, parts[2], parts.size() == 4 ? parts[3] : "");
  }
  if (parts.size() >= 2 && parts[1] == "tokens") {
    return tokens_route(p, req, parts.size() == 3 ? parts[2] : "");
  }
  // /api/security/terminal/agent:<id>/mfa-{lock,unlock,verify,status} (§6)
  if (parts.size() == 5 && parts[1] == "security" && parts[2] == "terminal" &&
      parts[3].rfind("agent:", 0) == 0) {
    return mfa_route(p, req, parts[3].substr(6), parts[4]);
  }
  return error(404, "not found");
}

UpgradeDecision Api::upgrade(const HttpRequest& req) {
  if (auto wait = limiter_.take(req.peer)) {
    ++rate_limited_;
    return refuse(429, json{{"error", "rate limit exceeded"}, {"retry_after", *wait}});
  }
  return route_socket(req);
}

std::optional<UpgradeDecision> Api::socket_limit(const Principal& p, const HttpRequest& req,
                                                 const std::string& agent_id) {
  std::optional<json> over;
  if (hub_->user_sockets(p.user_id) >= config_.max_sockets_per_user) {
    over = json{{"error", "too many open sockets for this user"},
                {"code", "socket_limit_reached"},
                {"limit", config_.max_sockets_per_user}};
  } else if (hub_->address_sockets(req.peer) >= config_.max_sockets_per_ip) {
    over = json{{"error", "too many open sockets from this address"},
                {"code", "socket_limit_reached"},
                {"limit", config_.max_sockets_per_ip}};
  }
  if (!over) return std::nullopt;
  audit_refusal(p.user_id, agent_id, *over);
  return refuse(429, *over);
}

void Api::audit_refusal(const std::string& user_id, const std::string& agent_id,
                        const json& refusal) {
  json details = {{"code", refusal.value("code", "")}, {"error", refusal.value("error", "")}};
  if (refusal.contains("limit")) details["limit"] = refusal["limit"];
  audit_.record("limit_refused", user_id, user_id,
                agent_id.empty() ? std::nullopt : std::optional<std::string>(agent_id),
                std::nullopt, details);
}

UpgradeDecision Api::route_socket(const HttpRequest& req) {
  const auto parts = split_path(req.path);
  auto principal = authenticate(req);
  if (!principal) return refuse(401, "invalid token");
  const Principal& p = *principal;
  if (p.is_register_scoped()) return refuse(403, "not authorized");  // it registers, no more

  if (req.path == "/api/events") {
    if (p.is_agent_scoped()) return refuse(403, "not authorized");
    if (!origin_ok(req)) return refuse(403, "origin not allowed");
    if (auto over = socket_limit(p, req, "")) return std::move(*over);
    UpgradeDecision d;
    d.accept = [this, user = p.user_id](WsConn& c) { return hub_->accept_events(c, user); };
    return d;
  }
  const bool terminal = parts.size() == 4 && parts[3] == "terminal";
  const std::string agent_id = parts.size() >= 3 ? parts[2] : "";
  auto agent = store_.agent(agent_id);
  if (!agent) return refuse(500, "internal error");
  if (!*agent) return refuse(404, "agent not found");
  const Agent& a = **agent;
  if (a.user_id != p.user_id) return refuse(403, "not authorized");

  if (!terminal) {
    // The agent socket: the owner's user token (the deployed agent uses one) or an agent token
    // minted for this agent.
    if (p.is_agent_scoped() && p.agent_id != a.id) return refuse(403, "not authorized");
    if (!origin_ok(req)) return refuse(403, "origin not allowed");
    UpgradeDecision d;
    AgentHello hello{a.id,
                     a.user_id,
                     req.header("x-agent-os"),
                     req.header("x-agent-arch"),
                     req.header("x-agent-shell"),
                     req.header("x-agent-distro"),
                     req.header("x-agent-version")};
    d.accept = [this, hello](WsConn& c) { return hub_->accept_agent(c, hello); };
    return d;
  }

  if (p.is_agent_scoped()) return refuse(403, "not authorized");
  if (auto over = terminal_limit(p, a.id)) {
    UpgradeDecision d;
    d.refusal = std::move(*over);
    return d;
  }
  if (a.mfa_locked && !mfa_verified(p.user_id)) return refuse(423, "terminal is MFA protected");
  // Fail closed: an agent whose terminals must be recorded opens none that cannot be.
  if (recording_mode(a.id) == RecordingMode::kRequired) {
    if (auto st = recordings_->check(a.id); !st) {
      const json over = {{"error", "recording is required for this agent and cannot be written: " +
                                       st.error().message},
                         {"code", "recording_unavailable"}};
      audit_refusal(p.user_id, a.id, over);
      return refuse(503, over);
    }
  }
  // Where the agent is: this instance, another one (cluster mode), or nowhere.
  std::string where;
  if (cluster_ == nullptr) {
    if (!hub_->is_online(a.id)) return refuse(404, "agent not online");
  } else {
    auto located = cluster_->locate(a.id);
    if (!located) return refuse(503, "cluster unavailable");
    if (!*located) return refuse(404, "agent not online");
    where = **located;
  }
  const bool local = cluster_ == nullptr || where == cluster_->instance_id();
  if (!origin_ok(req)) return refuse(403, "origin not allowed");
  if (auto over = socket_limit(p, req, a.id)) return std::move(*over);
  const bool split = req.query_param("newSession").value_or("") == "true";
  std::string conn_id = req.query_param("id").value_or("");
  if (conn_id.empty()) conn_id = random_hex(8);
  if (!valid_conn_id(conn_id, split)) return refuse(400, "invalid connection id");
  // &session=ID: a viewer of a session that exists already (docs/protocol.md "Sessions").
  const auto attach = req.query_param("session");
  if (attach && !valid_session_id(*attach)) return refuse(400, "invalid session id");
  if (attach && local && !hub_->has_session(a.id, *attach)) return refuse(404, "session not found");
  const std::string sid = attach ? *attach : split ? "split-" + conn_id : "main";
  if (local && !hub_->has_session(a.id, sid) &&
      hub_->session_count(a.id) >= config_.max_sessions_per_agent) {
    const json over = {{"error", "session limit reached for this agent"},
                       {"code", "session_limit_reached"},
                       {"limit", config_.max_sessions_per_agent}};
    audit_refusal(p.user_id, a.id, over);
    return refuse(403, over);
  }
  UpgradeDecision d;
  TerminalRequest t{a.id, p.user_id, conn_id, split, std::nullopt, attach};
  if (auto o = req.query_param("offset")) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(o->c_str(), &end, 10);
    if (o->empty() || *end != '\0' || (*o)[0] == '-') return refuse(400, "invalid offset");
    t.offset = v;
  }
  if (cluster_ != nullptr) {
    d.accept = [this, t, where](WsConn& c) { return cluster_->accept_user(c, t, where); };
  } else {
    d.accept = [this, t](WsConn& c) { return hub_->accept_user(c, t); };
  }
  return d;
}

std::optional<HttpResponse> Api::terminal_limit(const Principal& p, const std::string& agent_id) {
  const auto limit = plan_limit(p.tier, p.is_admin, p.subscription_active, config_.plan_limits);
  if (!limit) return std::nullopt;
  std::set<std::string> open;
  if (cluster_ != nullptr) {
    auto everywhere = cluster_->terminal_agents(p.user_id);
    if (!everywhere) return error(503, "cluster unavailable");
    open = std::move(*everywhere);
  } else {
    open = hub_->terminal_agents(p.user_id);
  }
  std::optional<json> over;
  if (*limit == 0) {
    over = json{{"error", "agent terminals not available for your plan"},
                {"code", "agent_terminal_limit_reached"}};
  } else if (open.count(agent_id) == 0 && static_cast<int>(open.size()) >= *limit) {
    over = json{{"error", "agent terminal limit reached for your plan"},
                {"code", "agent_terminal_limit_reached"},
                {"limit", *limit}};
  }
  if (!over) return std::nullopt;
  audit_refusal(p.user_id, agent_id, *over);
  return reply(403, *over);
}

HttpResponse Api::register_agent(const Principal& p, const HttpRequest& req) {
  const json body = json::parse(req.body, nullptr, false);
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
      body["name"].get<std::string>().empty()) {
    return error(400, "name is required");
  }
  const auto limit = plan_limit(p.tier, p.is_admin, p.subscription_active, config_.plan_limits);
  if (limit) {
    std::optional<json> over;
    if (*limit == 0) {
      over = json{{"error", "agent registration not available for your plan"},
                  {"code", "agent_limit_reached"}};
    } else {
      auto count = store_.count_agents(p.user_id);
      if (!count) return error(500, "internal error");
      if (*count >= *limit) {
        over = json{{"error", "agent limit reached for your plan"},
                    {"code", "agent_limit_reached"},
                    {"limit", *limit}};
      }
    }
    if (over) {
      audit_refusal(p.user_id, "", *over);
      return reply(403, *over);
    }
  }
  const auto str = [&](const char* k) {
    return body.contains(k) && body[k].is_string() ? body[k].get<std::string>() : std::string();
  };
  const Millis now = now_ms();
  Agent a;
  a.id = new_uuid_v4();
  a.user_id = p.user_id;
  a.name = str("name");
  a.description = str("description");
  a.os = str("os");
  a.arch = str("arch");
  a.shell = str("shell");
  if (body.contains("tags") && body["tags"].is_array()) {
    for (const auto& t : body["tags"]) {
      if (t.is_string()) a.tags.push_back(t.get<std::string>());
    }
  }
  a.created_at = a.updated_at = now;
  const std::string token = generate_api_token();
  ApiToken t;
  t.id = new_uuid_v4();
  t.user_id = p.user_id;
  t.name = "agent-" + a.name;
  t.token_hash = hash_token(token);
  t.token_prefix = token.substr(0, 12);
  t.scopes = {"agent"};
  t.agent_id = a.id;
  t.created_at = now;
  a.token_id = t.id;
  if (!store_.create_agent(a) || !store_.create_token(t)) return error(500, "internal error");
  spdlog::info("agent registered agent={} user={}", a.id, p.user_id);
  audit_.record("agent_registered", p.user_id, p.user_id, a.id, std::nullopt,
                {{"name", a.name}, {"token_id", t.id}});
  json event = {{"agent_id", a.id}, {"name", a.name}};
  if (p.is_register_scoped() && p.token_id) {
    // A registration token works once: a copy of the one-liner left in a shell history or a
    // log registers nothing more.
    (void)store_.revoke_token(*p.token_id, p.user_id, now);
    auth_.invalidate_token(*p.token_id);
    if (cluster_ != nullptr) cluster_->revoked({*p.token_id});
    audit_.record("token_revoked", p.user_id, p.user_id, a.id, std::nullopt,
                  {{"token_id", *p.token_id}, {"reason", "used"}});
    event["registration_token_id"] = *p.token_id;
  }
  if (hub_ != nullptr) hub_->notify(p.user_id, {{"type", "agent_registered"}, {"data", event}});
  return reply(201, {{"id", a.id},
                     {"name", a.name},
                     {"token", token},
                     {"token_info",
                      {{"id", t.id},
                       {"name", t.name},
                       {"scopes", t.scopes},
                       {"note", "store this token now: it is shown only once"}}}});
}

HttpResponse Api::list_agents(const Principal& p) {
  auto agents = store_.agents_of(p.user_id);
  if (!agents) return error(500, "internal error");
  json out = json::array();
  const std::vector<bool> online = online_flags(*agents);
  for (std::size_t i = 0; i < agents->size(); ++i)
    out.push_back(agent_json((*agents)[i], online[i]));
  return reply(200, out);
}

Api::OwnedAgent Api::owned_agent(const Principal& p, const std::string& id) {
  auto agent = store_.agent(id);
  if (!agent) return {std::nullopt, error(500, "internal error")};
  // Someone else's agent does not exist for the caller (PROTOCOL §1).
  if (!*agent || (*agent)->user_id != p.user_id)
    return {std::nullopt, error(404, "agent not found")};
  return {std::move(*agent), {}};
}

RecordingMode Api::recording_mode(const std::string& agent_id) {
  auto v = store_.setting("recording/" + agent_id);
  if (!v) return RecordingMode::kOff;
  return parse_recording_mode(*v).value_or(RecordingMode::kOff);
}

HttpResponse Api::recording_route(const Principal& p, const HttpRequest& req,
                                  const std::string& agent_id, const std::string& rest,
                                  const std::string& name) {
  const OwnedAgent owned = owned_agent(p, agent_id);
  if (!owned.agent) return owned.refusal;
  const Agent& a = *owned.agent;
  if (rest == "recording" && name.empty() && req.method == "GET") {
    return reply(200, {{"mode", recording_mode_name(recording_mode(a.id))},
                       {"available", recordings_->available()},
                       {"keep", config_.recordings_keep}});
  }
  if (rest == "recording" && name.empty() && req.method == "PUT") {
    const json body = json::parse(req.body, nullptr, false);
    const auto mode = body.is_object() && body.contains("mode") && body["mode"].is_string()
                          ? parse_recording_mode(body["mode"].get<std::string>())
                          : std::nullopt;
    if (!mode) return error(400, "mode must be off, on or required");
    if (*mode != RecordingMode::kOff && !recordings_->available()) {
      return error(409, "recording is not configured on this server (--recordings-dir)");
    }
    if (!store_.set_setting("recording/" + a.id, std::string(recording_mode_name(*mode)))) {
      return error(500, "internal error");
    }
    spdlog::info("recording policy agent={} mode={}", a.id, recording_mode_name(*mode));
    audit_.record("recording_policy", p.user_id, a.user_id, a.id, std::nullopt,
                  {{"mode", recording_mode_name(*mode)}});
    return reply(200, {{"mode", recording_mode_name(*mode)}});
  }
  if (rest == "recordings" && name.empty() && req.method == "GET") {
    json list = json::array();
    for (const RecordingInfo& r : recordings_->list(a.id)) {
      list.push_back({{"name", r.name},
                      {"session_id", r.session_id},
                      {"started_at", r.started_ms},
                      {"bytes", r.bytes}});
    }
    return reply(200, {{"recordings", list}});
  }
  // GET .../recordings/NAME is streamed: stream() and RecordingDownload.
  return error(404, "not found");
}

HttpResponse Api::agent_route(const Principal& p, const HttpRequest& req, const std::string& id,
                              const std::string& rest) {
  const OwnedAgent owned = owned_agent(p, id);
  if (!owned.agent) return owned.refusal;
  const Agent& a = *owned.agent;
  if (rest.empty() && req.method == "GET") return reply(200, agent_json(a, is_online(a.id)));
  if (rest == "status" && req.method == "GET") {
    const auto live = hub_->live(a.id);
    json j = {{"status", live || is_online(a.id) ? "online" : "offline"},
              {"connected_at", time_or_null(a.connected_at)},
              {"last_ping", time_or_null(a.last_ping)},
              {"sessions", live ? live->sessions : 0},
              {"os", a.os},
              {"arch", a.arch}};
    if (live) {
      j["connected_at"] = format_time(live->connected_at);
      j["last_ping"] = format_time(live->last_ping);
      if (!live->system_info.is_null()) j["system_info"] = live->system_info;
      if (!live->stats.is_null()) j["stats"] = live->stats;
    }
    return reply(200, j);
  }
  if (rest.empty() && req.method == "PATCH") {
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) return error(400, "invalid JSON body");
    const std::string name = body.contains("name") && body["name"].is_string()
                                 ? body["name"].get<std::string>()
                                 : a.name;
    const std::string desc = body.contains("description") && body["description"].is_string()
                                 ? body["description"].get<std::string>()
                                 : a.description;
    if (name.empty()) return error(400, "name is required");
    // Tags (ours): replaced whole when given, as an array of strings.
    std::optional<std::vector<std::string>> tags;
    if (body.contains("tags")) {
      constexpr std::size_t kMaxTags = 32;
      constexpr std::size_t kMaxTagBytes = 64;
      const json& given = body["tags"];
      bool ok = given.is_array() && given.size() <= kMaxTags;
      tags.emplace();
      for (std::size_t i = 0; ok && i < given.size(); ++i) {
        ok = given[i].is_string() && !given[i].get<std::string>().empty() &&
             given[i].get<std::string>().size() <= kMaxTagBytes;
        if (ok) tags->push_back(given[i].get<std::string>());
      }
      if (!ok) return error(400, "tags must be at most 32 strings of 1 to 64 bytes");
    }
    const Millis now = now_ms();
    if (!store_.update_agent(a.id, name, desc, now)) return error(500, "internal error");
    if (tags && !store_.set_agent_tags(a.id, *tags, now)) return error(500, "internal error");
    json out = {{"id", a.id},
                {"name", name},
                {"description", desc},
                {"message", "Agent updated successfully"}};
    if (tags) out["tags"] = *tags;
    return reply(200, out);
  }
  if (rest.empty() && req.method == "DELETE") return delete_agent(p, a);
  return error(404, "not found");
}

HttpResponse Api::delete_agent(const Principal& p, const Agent& a) {
  auto revoked = store_.revoke_agent_tokens(a.id, now_ms());
  if (!revoked || !store_.delete_agent(a.id)) return error(500, "internal error");
  for (const auto& tid : *revoked) auth_.invalidate_token(tid);
  hub_->drop_agent(a.id);
  recordings_->remove_all(a.id);
  (void)store_.set_setting("recording/" + a.id, "");
  if (cluster_ != nullptr) cluster_->revoked(*revoked, a.id);
  spdlog::info("agent deleted agent={} user={} by={}", a.id, p.user_id,
               p.is_agent_scoped() ? "agent token" : "user");
  json details = {{"name", a.name}, {"revoked_tokens", revoked->size()}};
  if (p.is_agent_scoped()) details["via"] = "agent_token";
  audit_.record("agent_deleted", p.user_id, a.user_id, a.id, std::nullopt, details);
  return reply(200, {{"message", "agent deleted"}});
}

HttpResponse Api::profile(const Principal& p, const HttpRequest& req) {
  if (req.method != "GET") return error(405, "method not allowed");
  auto user = store_.user_by_id(p.user_id);
  auto mfa = store_.mfa_of(p.user_id);
  auto agents = store_.agents_of(p.user_id);
  if (!user || !*user || !mfa || !agents) return error(500, "internal error");
  ProfileFacts f;
  f.user = **user;
  f.mfa_enabled = mfa->has_value();
  f.agents = agents->size();
  const std::vector<bool> online = online_flags(*agents);
  f.agents_online = static_cast<std::size_t>(std::count(online.begin(), online.end(), true));
  f.agent_limit = plan_limit(p.tier, p.is_admin, p.subscription_active, config_.plan_limits);
  return reply(200, profile_json(f));
}

HttpResponse Api::containers(const Principal& p, const HttpRequest& req) {
  if (req.method != "GET") return error(405, "method not allowed");
  auto agents = store_.agents_of(p.user_id);
  if (!agents) return error(500, "internal error");
  const std::vector<bool> online = online_flags(*agents);
  json entries = json::array();
  for (std::size_t i = 0; i < agents->size(); ++i) {
    const Agent& a = (*agents)[i];
    json info = json::parse(a.system_info, nullptr, false);
    json stats;
    if (const auto live = hub_->live(a.id)) {  // connected here: what it sent last
      if (!live->system_info.is_null()) info = live->system_info;
      stats = live->stats;
    } else if (online[i]) {  // on another instance: the stored sample
      if (auto st = store_.stats_of(a.id, 1); st && !st->empty()) {
        stats = json::parse(st->front().second, nullptr, false);
      }
    }
    if (info.is_discarded()) info = nullptr;
    if (stats.is_discarded()) stats = nullptr;
    entries.push_back(container_json(a, online[i], info, stats));
  }
  return reply(
      200, containers_json(std::move(entries), plan_limit(p.tier, p.is_admin, p.subscription_active,
                                                          config_.plan_limits)));
}

std::vector<bool> Api::online_flags(const std::vector<Agent>& agents) {
  std::vector<bool> online(agents.size(), false);
  std::vector<bool> elsewhere;
  if (cluster_ != nullptr) {
    std::vector<std::string> ids;
    for (const Agent& a : agents) ids.push_back(a.id);
    if (auto r = cluster_->online(ids)) elsewhere = std::move(*r);
  }
  for (std::size_t i = 0; i < agents.size(); ++i) {
    online[i] = hub_->is_online(agents[i].id) || (i < elsewhere.size() && elsewhere[i]);
  }
  return online;
}

bool Api::mfa_verified(const std::string& user_id) const {
  const auto it = mfa_verified_until_.find(user_id);
  return it != mfa_verified_until_.end() && SteadyClock::now() < it->second;
}

HttpResponse Api::mfa_route(const Principal& p, const HttpRequest& req, const std::string& id,
                            const std::string& action) {
  const OwnedAgent owned = owned_agent(p, id);
  if (!owned.agent) return owned.refusal;
  const Agent& a = *owned.agent;
  auto mfa = store_.mfa_of(p.user_id);
  if (!mfa) return error(500, "internal error");
  if (action == "mfa-status" && req.method == "GET") {
    return reply(200, {{"agent_id", a.id},
                       {"locked", a.mfa_locked},
                       {"mfa_enabled", mfa->has_value()},
                       {"verified", mfa_verified(p.user_id)}});
  }
  if (req.method != "POST") return error(404, "not found");
  if (!*mfa) return error(400, "mfa_required");
  if (action == "mfa-lock") {
    if (!store_.set_mfa_locked(a.id, true)) return error(500, "internal error");
    spdlog::info("agent mfa locked agent={} user={}", a.id, p.user_id);
    audit_.record("mfa_locked", p.user_id, a.user_id, a.id, std::nullopt, json::object());
    return reply(200, {{"agent_id", a.id}, {"locked", true}, {"message", "terminal locked"}});
  }
  if (action != "mfa-unlock" && action != "mfa-verify") return error(404, "not found");

  // Wrong codes are rate-limited per user: a 6-digit code must not be guessable.
  auto& failures = mfa_failures_[p.user_id];
  const auto now = SteadyClock::now();
  while (!failures.empty() && now - failures.front() > kMfaFailureWindow) failures.pop_front();
  if (failures.size() >= kMfaMaxFailures) {
    const auto wait = std::chrono::duration_cast<std::chrono::seconds>(failures.front() +
                                                                       kMfaFailureWindow - now);
    return reply(429, {{"error", "too many MFA attempts"}, {"retry_after", wait.count() + 1}});
  }
  const json body = json::parse(req.body, nullptr, false);
  const std::string code = body.is_object() && body.contains("code") && body["code"].is_string()
                               ? body["code"].get<std::string>()
                               : "";
  auto step = totp_match((*mfa)->secret_base32, code, std::time(nullptr));
  if (!step) return error(500, "internal error");
  bool fresh = false;
  if (*step) {
    auto used = store_.use_mfa_step(p.user_id, **step);  // each code works once
    if (!used) return error(500, "internal error");
    fresh = *used;
  }
  if (!fresh) {
    failures.push_back(now);
    spdlog::warn("mfa code refused user={} agent={} action={}", p.user_id, a.id, action);
    audit_.record("mfa_refused", p.user_id, a.user_id, a.id, std::nullopt,
                  {{"action", action}, {"failures", failures.size()}});
    return error(401, "invalid MFA code");
  }
  failures.clear();
  if (action == "mfa-unlock") {
    if (!store_.set_mfa_locked(a.id, false)) return error(500, "internal error");
    spdlog::info("agent mfa unlocked agent={} user={}", a.id, p.user_id);
    audit_.record("mfa_unlocked", p.user_id, a.user_id, a.id, std::nullopt, json::object());
    return reply(200, {{"agent_id", a.id}, {"locked", false}, {"message", "terminal unlocked"}});
  }
  mfa_verified_until_[p.user_id] = now + kMfaVerifiedFor;
  spdlog::info("mfa verified user={}", p.user_id);
  audit_.record(
      "mfa_verified", p.user_id, a.user_id, a.id, std::nullopt,
      {{"expires_in", std::chrono::duration_cast<std::chrono::seconds>(kMfaVerifiedFor).count()}});
  return reply(200, {{"verified", true},
                     {"expires_in",
                      std::chrono::duration_cast<std::chrono::seconds>(kMfaVerifiedFor).count()}});
}

// The web page signs in with an API token and keeps only the short-lived JWT this returns (in
// sessionStorage); it renews the JWT with the JWT itself, up to --web-session-max after the
// sign-in, so a stolen JWT dies at the latest then.
HttpResponse Api::exchange_token(const Principal& p, const HttpRequest& req) {
  if (req.method != "POST") return error(405, "method not allowed");
  auto jwt = auth_.issue_session_jwt(p, config_.web_session_ttl, config_.web_session_max);
  if (!jwt) return error(403, "sign in with an API token");
  const auto exp = SysClock::time_point(std::chrono::seconds(jwt->second));
  // When renewals end: the page warns before then (docs/web.md).
  const auto signed_in = p.via_jwt && p.jwt_auth_time
                             ? SysClock::time_point(std::chrono::seconds(*p.jwt_auth_time))
                             : SysClock::now();
  return reply(200,
               {{"token", jwt->first},
                {"expires_at", format_time(exp)},
                {"expires_in",
                 std::chrono::duration_cast<std::chrono::seconds>(exp - SysClock::now()).count()},
                {"session_ends_at", format_time(signed_in + config_.web_session_max)},
                {"user",
                 {{"id", p.user_id},
                  {"username", p.username},
                  {"tier", p.tier},
                  {"is_admin", p.is_admin}}}});
}

HttpResponse Api::tokens_route(const Principal& p, const HttpRequest& req,
                               const std::string& rest) {
  if (rest.empty() && req.method == "GET") {
    auto tokens = store_.tokens_of(p.user_id);
    if (!tokens) return error(500, "internal error");
    json out = json::array();
    for (const auto& t : *tokens) {
      out.push_back({{"id", t.id},
                     {"name", t.name},
                     {"token_prefix", t.token_prefix},
                     {"scopes", t.scopes},
                     {"expires_at", time_or_null(t.expires_at)},
                     {"revoked_at", time_or_null(t.revoked_at)},
                     {"last_used_at", time_or_null(t.last_used_at)},
                     {"created_at", rfc3339(t.created_at)}});
    }
    return reply(200, out);
  }
  if (rest.empty() && req.method == "POST") {
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object() || !body.contains("name") || !body["name"].is_string()) {
      return error(400, "name is required");
    }
    const Millis now = now_ms();
    const std::string token = generate_api_token();
    ApiToken t;
    t.id = new_uuid_v4();
    t.user_id = p.user_id;
    t.name = body["name"];
    t.token_hash = hash_token(token);
    t.token_prefix = token.substr(0, 12);
    t.scopes = {"read", "write"};
    if (body.contains("scopes") && body["scopes"].is_array()) {
      t.scopes.clear();
      for (const auto& s : body["scopes"]) {
        if (s.is_string()) t.scopes.push_back(s);
      }
    }
    // A whole number from 1 to `max`, checked before any arithmetic: a huge count must not
    // overflow into the past.
    const auto whole = [&body](const char* key, std::int64_t max) -> std::optional<std::int64_t> {
      const json& v = body[key];
      const bool in_range =
          v.is_number_unsigned()
              ? v.get<std::uint64_t>() >= 1 &&
                    v.get<std::uint64_t>() <= static_cast<std::uint64_t>(max)
              : v.is_number_integer() && v.get<std::int64_t>() >= 1 && v.get<std::int64_t>() <= max;
      return in_range ? std::optional<std::int64_t>(v.get<std::int64_t>()) : std::nullopt;
    };
    const bool given_days = body.contains("expires_in") && !body["expires_in"].is_null();
    const bool given_minutes =
        body.contains("expires_in_minutes") && !body["expires_in_minutes"].is_null();
    if (given_days && given_minutes) {
      return error(400, "give expires_in or expires_in_minutes, not both");
    }
    if (given_days) {
      const auto days = whole("expires_in", 36'500);
      if (!days) return error(400, "expires_in must be a whole number of days from 1 to 36500");
      t.expires_at = now + *days * 86'400'000;
    }
    if (given_minutes) {
      const auto minutes = whole("expires_in_minutes", kMaxTokenMinutes);
      if (!minutes) {
        return error(400, "expires_in_minutes must be a whole number from 1 to 1440");
      }
      t.expires_at = now + *minutes * 60'000;
    }
    // Registration tokens (docs/protocol.md): scope "register" alone, short-lived, one use.
    const bool registration = t.scopes == std::vector<std::string>{"register"};
    if (!registration &&
        std::find(t.scopes.begin(), t.scopes.end(), "register") != t.scopes.end()) {
      return error(400, "the register scope cannot be combined with others");
    }
    if (registration) {
      if (!t.expires_at) t.expires_at = now + kRegistrationTokenMinutes * 60'000;
      if (*t.expires_at > now + kMaxTokenMinutes * 60'000) {
        return error(400, "a registration token expires within 24 hours (expires_in_minutes)");
      }
    }
    // A web session may mint a lasting credential only soon after its sign-in with an API token:
    // a stolen session JWT must not outlive --web-session-max by becoming an API token.
    if (!registration && p.via_jwt && p.jwt_auth_time &&
        std::chrono::seconds(now / 1000 - *p.jwt_auth_time) > kFreshSignIn) {
      return reply(403, {{"error",
                          "creating an API token needs a recent sign-in: sign in again with an API "
                          "token, then create it within 15 minutes"},
                         {"code", "fresh_sign_in_required"}});
    }
    t.created_at = now;
    if (!store_.create_token(t)) return error(500, "internal error");
    audit_.record("token_created", p.user_id, p.user_id, std::nullopt, std::nullopt,
                  {{"token_id", t.id},
                   {"name", t.name},
                   {"scopes", t.scopes},
                   {"expires_at", t.expires_at ? json(*t.expires_at) : json(nullptr)}});
    return reply(201, {{"token", token},
                       {"id", t.id},
                       {"name", t.name},
                       {"token_prefix", t.token_prefix},
                       {"scopes", t.scopes},
                       {"expires_at", time_or_null(t.expires_at)},
                       {"created_at", rfc3339(t.created_at)}});
  }
  if (!rest.empty() && req.method == "DELETE") {
    auto ok = store_.revoke_token(rest, p.user_id, now_ms());
    if (!ok) return error(500, "internal error");
    if (!*ok) return error(404, "token not found");
    auth_.invalidate_token(rest);
    if (cluster_ != nullptr) cluster_->revoked({rest});
    audit_.record("token_revoked", p.user_id, p.user_id, std::nullopt, std::nullopt,
                  {{"token_id", rest}});
    return reply(200, {{"message", "token revoked"}});
  }
  return error(404, "not found");
}

void Api::agent_online(const std::string& agent_id) {
  (void)store_.set_online(agent_id, now_ms());
  if (cluster_ != nullptr) cluster_->agent_online(agent_id);
}

void Api::attach(Hub& hub) {
  hub_ = &hub;
  std::string dir = config_.recordings_dir;
  if (dir.empty() && store_.recording_rows() != nullptr) {
    // PostgreSQL: in the database every instance shares, so any instance lists and plays what
    // any other recorded (docs/protocol.md "Session recordings").
    recordings_ = std::make_unique<Recordings>(store_, hub.loop(), config_.recordings_keep);
  } else {
    if (dir.empty()) {
      dir = (std::filesystem::path(config_.db_path).parent_path() / "recordings").string();
      if (dir == "recordings" || dir.empty()) dir = "./recordings";
    }
    recordings_ = std::make_unique<Recordings>(dir, config_.recordings_keep);
  }
  spdlog::info("recordings in {}", recordings_->where());
  hub.set_recordings(recordings_.get(),
                     [this](const std::string& agent_id) { return recording_mode(agent_id); });
  FileServiceConfig fc;
  fc.max_upload = config_.max_upload_bytes;
  files_ = std::make_unique<FileService>(hub.loop(), hub, fc);
  files_->set_outcome_observer([this](const FileOutcome& o) {
    json details = {
        {"direction", o.kind}, {"path", o.path}, {"bytes", o.bytes}, {"status", o.status}};
    if (!o.error.empty()) details["error"] = o.error;
    if (!o.sha256.empty()) details["sha256"] = o.sha256;
    // Only an agent's owner may move its files, so the user is the owner. A request relayed by
    // an instance that predates the user id in file_start is recorded without one.
    audit_.record("file_transferred", o.user_id, o.user_id, o.agent_id, std::nullopt, details);
  });
  Hub::FileHooks hooks;
  hooks.message = [this](const std::string& agent, const proto::AgentMessage& m) {
    files_->on_agent_message(agent, m);
  };
  hooks.data = [this](const std::string& agent, std::string_view id, std::uint64_t seq,
                      std::string_view bytes) { files_->on_agent_data(agent, id, seq, bytes); };
  hooks.gone = [this](const std::string& agent) { files_->on_agent_gone(agent); };
  hooks.room = [this](const std::string& agent) { files_->on_agent_room(agent); };
  hub.set_file_hooks(std::move(hooks));
}

namespace {

// The handler of an exchange answered at once (an error): the body, if any, is discarded.
class Answered final : public HttpStreamHandler {
 public:
  void on_body(std::string_view /*bytes*/) override {}

  void on_body_end() override {}

  void on_written(std::uint64_t /*total*/) override {}

  void on_closed() override {}
};

// GET /api/agents/:id/recordings/NAME: the recording streamed, read a piece at a time as the
// client's socket drains, so a download holds at most about kWindow of it in memory, however
// large the recording.
class RecordingDownload final : public HttpStreamHandler {
 public:
  RecordingDownload(std::unique_ptr<RecordingReader> reader, HttpStream& stream)
      : reader_(std::move(reader)), stream_(stream) {}

  // The head, then the first pieces.
  void start(const std::string& name) {
    HttpResponse head{200, "", "application/x-asciicast", {}};
    head.headers.emplace_back("content-disposition", "attachment; filename=\"" + name + "\"");
    stream_.respond_head(std::move(head), reader_->size());
    pump();
  }

  void on_body(std::string_view /*bytes*/) override {}

  void on_body_end() override {}

  void on_written(std::uint64_t /*total*/) override { pump(); }

  void on_closed() override { reader_.reset(); }

 private:
  // bytes queued to the socket at most; a reader's piece is up to 256 KiB.
  static constexpr std::size_t kWindow = 512U * 1024U;

  void pump() {
    while (reader_ && given_ < reader_->size() && stream_.queued_bytes() < kWindow) {
      auto piece = reader_->next();
      if (!piece || piece->empty()) {
        spdlog::warn("recording download cut error={}",
                     piece ? "the recording ended early" : piece.error().message);
        reader_.reset();
        stream_.abort();  // the client sees fewer bytes than announced
        return;
      }
      given_ += piece->size();
      stream_.write(std::move(*piece));
    }
  }

  std::unique_ptr<RecordingReader> reader_;
  HttpStream& stream_;
  std::uint64_t given_ = 0;
};

std::optional<std::uint32_t> parse_mode(const std::string& text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  std::uint32_t mode = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    mode = mode * 8 + static_cast<std::uint32_t>(c - '0');
  }
  return mode;
}

}  // namespace

std::unique_ptr<HttpStreamHandler> Api::stream(const HttpRequest& req, HttpStream& s) {
  const auto parts = split_path(req.path);
  const bool agent_route = parts.size() >= 4 && parts[0] == "api" && parts[1] == "agents";
  const bool files = agent_route && parts[3] == "files" &&
                     (parts.size() == 4 || (parts.size() == 5 && parts[4] == "list"));
  // A command waits for the agent's answer, so it is an exchange of its own too.
  const bool exec = agent_route && parts.size() == 4 && parts[3] == "exec";
  // A recording's download streams out of a file or the database.
  const bool recording = agent_route && parts.size() == 5 && parts[3] == "recordings" &&
                         req.method == "GET" && recordings_ != nullptr;
  if (!recording && ((!files && !exec) || files_ == nullptr)) return nullptr;
  const bool listing = parts.size() == 5;
  auto answer = [&s](HttpResponse r) -> std::unique_ptr<HttpStreamHandler> {
    s.respond(std::move(r));
    return std::make_unique<Answered>();
  };
  if (auto wait = limiter_.take(req.peer)) {
    ++rate_limited_;
    return answer(reply(429, {{"error", "rate limit exceeded"}, {"retry_after", *wait}}));
  }
  const bool allowed =
      exec ? req.method == "POST" : req.method == "GET" || (req.method == "PUT" && !listing);
  if (!allowed) return answer(error(405, "method not allowed"));
  auto principal = authenticate(req);
  if (!principal) {
    if (principal.error().code == Errc::kStorage) return answer(error(500, "internal error"));
    return answer(error(401, "unauthorized"));
  }
  const Principal& p = *principal;
  if (p.is_agent_scoped() || p.is_register_scoped()) {
    return answer(error(403, "token scope does not allow this"));
  }
  const OwnedAgent owned = owned_agent(p, parts[2]);
  if (!owned.agent) return answer(owned.refusal);
  const Agent& a = *owned.agent;
  if (recording) {
    auto reader = recordings_->open(a.id, parts[4]);
    if (!reader) {
      const Errc code = reader.error().code;
      if (code != Errc::kInvalidArgument && code != Errc::kNotFound) {
        spdlog::warn("recording download failed agent={} error={}", a.id, reader.error().message);
        return answer(error(500, "cannot read the recording"));
      }
      return answer(error(code == Errc::kInvalidArgument ? 400 : 404, reader.error().message));
    }
    auto download = std::make_unique<RecordingDownload>(std::move(*reader), s);
    download->start(parts[4]);
    return download;
  }
  // A command counts against the plan like a terminal on the agent (PROTOCOL §4.1 order).
  if (exec) {
    if (auto over = terminal_limit(p, a.id)) return answer(std::move(*over));
  }
  if (a.mfa_locked && !mfa_verified(p.user_id)) {
    return answer(error(423, "terminal is MFA protected"));
  }
  const std::string path = req.query_param("path").value_or("");
  if (!exec && (path.empty() || path.front() != '/')) {
    return answer(error(400, "path must be absolute"));
  }
  // Where the agent is: here, on another instance (cluster mode), or nowhere.
  std::string elsewhere;
  if (!hub_->is_online(a.id)) {
    if (cluster_ == nullptr) return answer(error(404, "agent not online"));
    auto located = cluster_->locate(a.id);
    if (!located) return answer(error(503, "cluster unavailable"));
    if (!*located || **located == cluster_->instance_id()) {
      return answer(error(404, "agent not online"));
    }
    elsewhere = **located;
  }
  if (exec) {
    if (elsewhere.empty()) {
      return exec_here(
          FileRequest{"exec", a.id, "", 0, std::nullopt, p.user_id, std::chrono::seconds(0)}, s);
    }
    return make_relayed_exec(*file_relay_, elsewhere, a.id, p.user_id, s);
  }
  FileRequest request{listing ? "list" : (req.method == "GET" ? "get" : "put"),
                      a.id,
                      path,
                      0,
                      std::nullopt,
                      p.user_id,
                      std::chrono::seconds(0)};
  if (request.kind != "put") {
    return elsewhere.empty() ? start_file(request, s) : file_relay_->forward(request, elsewhere, s);
  }
  // An upload: its size is known before any byte is read, so the limit is checked up front.
  const std::string length = req.header("content-length");
  char* end = nullptr;
  const unsigned long long size = std::strtoull(length.c_str(), &end, 10);
  if (length.empty() || *end != '\0' || length[0] == '-') {
    return answer(error(411, "content-length required"));
  }
  if (size > config_.max_upload_bytes) {
    const json over = {{"error", "file too large: the limit is " +
                                     std::to_string(config_.max_upload_bytes) + " bytes"},
                       {"limit", config_.max_upload_bytes}};
    audit_refusal(p.user_id, a.id,
                  json{{"code", "upload_too_large"},
                       {"error", over["error"]},
                       {"limit", config_.max_upload_bytes}});
    return answer(reply(413, over));
  }
  if (auto m = req.query_param("mode")) {
    request.mode = parse_mode(*m);
    if (!request.mode) return answer(error(400, "mode must be octal permission bits, e.g. 0644"));
  }
  request.size = size;
  return elsewhere.empty() ? start_file(request, s) : file_relay_->forward(request, elsewhere, s);
}

std::unique_ptr<HttpStreamHandler> Api::start_file(const FileRequest& r, HttpStream& s) {
  if (r.kind == "exec") return exec_here(r, s);
  if (r.kind == "list") return files_->list(r.agent_id, r.path, s);
  if (r.kind == "get") return files_->download(r.agent_id, r.path, r.user_id, s);
  if (r.kind == "put") return files_->upload(r.agent_id, r.path, r.size, r.mode, r.user_id, s);
  s.respond(error(400, "unknown file request"));
  return std::make_unique<Answered>();
}

std::unique_ptr<HttpStreamHandler> Api::exec_here(const FileRequest& r, HttpStream& s) {
  if (!hub_->is_online(r.agent_id)) {
    s.respond(error(404, "agent not online"));
    return std::make_unique<Answered>();
  }
  // A command holds a process on the agent as a shell does: both count against the limit.
  if (hub_->session_count(r.agent_id) + hub_->execs_running(r.agent_id) >=
      config_.max_sessions_per_agent) {
    const json over = {{"error", "session limit reached for this agent"},
                       {"code", "session_limit_reached"},
                       {"limit", config_.max_sessions_per_agent}};
    audit_refusal(r.user_id, r.agent_id, over);
    s.respond(reply(403, over));
    return std::make_unique<Answered>();
  }
  return make_local_exec(*hub_, r.agent_id, r.user_id, s);
}

void Api::shutdown() {
  if (files_) files_->stop();
  if (file_relay_) file_relay_->stop();
}

void Api::attach_cluster(Cluster& cluster) {
  cluster_ = &cluster;
  file_relay_ = std::make_unique<FileRelay>(
      hub_->loop(),
      [&cluster](const std::string& target, json payload) {
        cluster.publish_file(target, std::move(payload));
      },
      [this](const FileRequest& r, HttpStream& s) { return start_file(r, s); });
  cluster.set_file_handler([this](const std::string& from, const json& payload) {
    file_relay_->on_message(from, payload);
  });
  cluster.set_revocation_handler(
      [this](const std::vector<std::string>& token_ids, const std::string& deleted_agent_id) {
        for (const auto& id : token_ids) auth_.invalidate_token(id);
        if (!deleted_agent_id.empty() && hub_ != nullptr) hub_->drop_agent(deleted_agent_id);
      });
}

bool Api::is_online(const std::string& agent_id) {
  if (hub_->is_online(agent_id)) return true;
  if (cluster_ == nullptr) return false;
  auto where = cluster_->locate(agent_id);
  return where && where->has_value();
}

void Api::agent_offline(const std::string& agent_id) {
  (void)store_.set_offline(agent_id, now_ms());
  if (cluster_ != nullptr) cluster_->agent_offline(agent_id);
}

void Api::agent_heartbeats(const std::vector<std::string>& agent_ids) {
  (void)store_.touch_agents(agent_ids, now_ms());
  if (cluster_ != nullptr) cluster_->agent_heartbeats(agent_ids);
}

void Api::agent_system_info(const std::string& agent_id, const std::string& info) {
  (void)store_.set_system_info(agent_id, info);
}

void Api::agent_stats(const std::string& agent_id, const std::string& stats) {
  const Millis now = now_ms();
  (void)store_.add_stats(agent_id, now, stats);
  // Every agent's old samples go in one statement, once a minute. A sample is kept for
  // --stats-retention, or for --stats-history-max sample intervals if that is shorter: the hub
  // stores one per interval per agent, so that bounds each agent's count too.
  constexpr Millis kPruneEveryMs = 60'000;
  if (now - last_stats_prune_ < kPruneEveryMs) return;
  last_stats_prune_ = now;
  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  const Millis interval = std::max<Millis>(ms(config_.stats_sample_interval), 5000);
  const Millis keep = std::min<Millis>(ms(config_.stats_retention),
                                       interval * static_cast<Millis>(config_.stats_history_max));
  (void)store_.prune_stats(now - keep);
}

void Api::audit(const std::string& type, const std::string& user_id, const std::string& owner_id,
                const std::string& agent_id, const std::optional<std::string>& session_id,
                const nlohmann::json& details) {
  audit_.record(type, user_id, owner_id, agent_id, session_id, details);
}

HttpResponse Api::audit_route(const Principal& p, const HttpRequest& req) {
  if (req.method != "GET") return error(405, "method not allowed");
  constexpr std::size_t kDefaultLimit = 100;
  constexpr std::size_t kMaxLimit = 1000;
  // A positive whole number of at most 18 digits, else nullopt.
  const auto positive = [](const std::string& text) {
    return api_detail::parse_count(text, 1, 999'999'999'999'999'999);
  };
  AuditQuery q;
  q.limit = kDefaultLimit;
  if (auto l = req.query_param("limit")) {
    const auto v = positive(*l);
    if (!v || *v > static_cast<std::int64_t>(kMaxLimit)) {
      return error(400, "limit must be a whole number from 1 to 1000");
    }
    q.limit = static_cast<std::size_t>(*v);
  }
  if (auto b = req.query_param("before")) {
    q.before = positive(*b);
    if (!q.before) return error(400, "before must be an event id");
  }
  if (auto id = req.query_param("agent_id"); id && !id->empty()) q.agent_id = *id;
  if (auto t = req.query_param("type"); t && !t->empty()) q.type = *t;
  if (auto u = req.query_param("user_id"); u && !u->empty()) q.user_id = *u;
  // A time range, in Unix milliseconds: since <= at < until.
  for (auto [name, slot] : {std::pair{"since", &q.since}, std::pair{"until", &q.until}}) {
    if (auto v = req.query_param(name); v && !v->empty()) {
      *slot = positive(*v);
      if (!*slot) return error(400, std::string(name) + " must be a time in Unix milliseconds");
    }
  }
  // A user reads the events of their own agents and records; an admin reads everyone's.
  if (!p.is_admin) q.owner_id = p.user_id;
  auto events = store_.audit_events(q);
  if (!events) return error(500, "internal error");
  nlohmann::ordered_json out = {{"events", nlohmann::ordered_json::array()}};
  for (const AuditEvent& e : *events) {
    nlohmann::ordered_json j = {{"id", e.id}};
    j.update(Audit::to_json(e));
    out["events"].push_back(std::move(j));
  }
  out["next_before"] = events->size() == q.limit && !events->empty()
                           ? nlohmann::ordered_json(events->back().id)
                           : nlohmann::ordered_json(nullptr);
  return HttpResponse::json(200, out.dump(-1, ' ', false, json::error_handler_t::replace));
}

}  // namespace rx::server
