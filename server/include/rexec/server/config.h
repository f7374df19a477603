// SPDX-License-Identifier: MIT
// ServerConfig: every rexec-server setting, with the defaults of PROTOCOL.md. Filled from flags
// by main.cpp; tests shorten the timers.
#pragma once

#include "rexec/server/limits.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rx::server {

struct ServerConfig {
  std::string listen_host = "127.0.0.1";
  int listen_port = 8080;  // 0: any free port (the bound port is printed)
  std::string db_path = "./rexec.db";
  std::string jwt_secret;                    // HS256 key; generated and stored in the DB when empty
  std::string public_url;                    // the server's own origin, e.g. http://127.0.0.1:8080
  std::vector<std::string> allowed_origins;  // exact matches; empty: own origin + localhost
  bool block_empty_origin = false;
  // Reverse proxies whose X-Forwarded-For is believed (HttpServerOptions::trusted_proxies).
  std::vector<std::string> trusted_proxies;
  std::chrono::milliseconds ping_interval{15000};            // control ping to every agent (§3.3)
  std::chrono::milliseconds pong_timeout{45000};             // no traffic this long: agent offline
  std::chrono::milliseconds session_linger{15 * 60 * 1000};  // main shell after its last viewer
  std::chrono::milliseconds agent_grace{60000};  // user sockets wait this long for the agent
  std::chrono::hours stats_retention{24};
  // Stats samples stored per agent at most this often (the charts' history); the latest sample
  // still reaches viewers and events sockets every 5 s. 0: every sample.
  std::chrono::milliseconds stats_sample_interval{30000};
  // Audit events older than this are deleted (docs/security.md "Audit"); 0 keeps them all.
  std::chrono::hours audit_retention{90 * 24};
  std::size_t stats_history_max = 1000;          // samples kept per agent
  std::size_t max_frame_bytes = 1U << 20U;       // larger incoming frames close with 1009
  std::size_t max_body_bytes = 1U << 20U;        // HTTP request bodies
  std::uint64_t max_upload_bytes = 100U << 20U;  // PUT /api/agents/:id/files: 413 past this
  // Session recordings (asciicast v2): where, and how many are kept per agent. Empty dir: next to
  // a SQLite database ("<db dir>/recordings"), or in a PostgreSQL database (every instance reads
  // them); a dir given with PostgreSQL keeps them in files there instead.
  std::string recordings_dir;
  std::size_t recordings_keep = 100;
  std::size_t user_queue_limit = 8U << 20U;  // bytes queued to a user socket before dropping
  std::chrono::milliseconds slow_consumer_stall{10000};  // then close 1008 "slow consumer"
  double rate_limit_per_sec = 20;                        // per IP, HTTP requests and upgrades
  double rate_limit_burst = 60;
  std::size_t max_sessions_per_agent = 32;  // new sessions past this: 403 session_limit_reached
  std::size_t max_sockets_per_user = 64;    // open terminal + events sockets: 429 past this
  std::size_t max_sockets_per_ip = 256;     // the same, per client address
  std::size_t max_conns_per_ip = 512;       // TCP connections; more are closed at accept
  std::chrono::seconds header_timeout{10};  // to send a request head (slow-loris bound)
  // Connections waiting for their request head at once; more stay in the kernel's accept queue.
  unsigned int max_pending_requests = 1024;
  PlanLimits plan_limits;
  std::string log_level = "info";
  std::string tls_cert_file;  // PEM chain; with tls_key_file, the server speaks only TLS
  std::string tls_key_file;
  std::chrono::seconds web_session_ttl{3600};       // JWTs issued by POST /api/auth/token
  std::chrono::seconds web_session_max{12 * 3600};  // renewals end this long after sign-in
  std::string redis_url;      // cluster mode (PROTOCOL §9) when set: redis://[:password@]host:port
  std::string instance_id;    // this instance's name in the cluster; generated when empty
  bool relay_json = false;    // cluster: terminal bytes as base64 JSON only, as before relay frames
  std::string metrics_token;  // when set, GET /metrics needs it as a Bearer token
  std::string downloads_dir;  // serves rexec-agent-linux-<arch> (+ .sha256) from here; empty: 404
};

}  // namespace rx::server
