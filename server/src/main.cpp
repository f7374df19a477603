// SPDX-License-Identifier: MIT
// rexec-server: the reference server. `serve` runs it; `user add|list` and `token revoke`
// manage users and API tokens in its database.
#include "rexec/common/check.h"
#include "rexec/common/log.h"
#include "rexec/common/unique_fd.h"
#include "rexec/common/version.h"
#include "rexec/net/lws_context.h"
#include "rexec/server/api.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/auth/totp.h"
#include "rexec/server/relay_frame.h"
#include "rexec/server/storage/pg_store.h"
#include "rexec/server/storage/sqlite_store.h"
#include "rexec/uvx/uv_handle.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <tuple>

namespace {

using namespace rx::server;

int fail(const std::string& sentence) {
  std::fprintf(stderr, "rexec-server: %s\n", sentence.c_str());
  return 1;
}

// `--db`: a PostgreSQL URL, else a SQLite file.
rx::Result<std::unique_ptr<Store>> open_db(const std::string& db) {
  if (is_postgres_url(db)) {
    auto pg = PgStore::open(db);
    if (!pg) return std::move(pg).error();
    return std::unique_ptr<Store>(std::move(*pg));
  }
  auto lite = SqliteStore::open(db);
  if (!lite) return std::move(lite).error();
  return std::unique_ptr<Store>(std::move(*lite));
}

// The JWT key: the flag, else one generated once and kept in the database.
rx::Result<std::string> jwt_secret(Store& store, const std::string& flag) {
  if (!flag.empty()) {
    if (flag.size() < 32)
      return rx::Error(rx::Errc::kConfig, "--jwt-secret needs at least 32 bytes");
    return flag;
  }
  return store.init_setting("jwt_secret", random_hex(32));
}

int serve(ServerConfig config, const std::string& jwt_flag) {
  auto store = open_db(config.db_path);
  if (!store) return fail(store.error().message);
  (void)(*store)->set_all_offline();  // no agent is connected to a server that just started
  auto secret = jwt_secret(**store, jwt_flag);
  if (!secret) return fail(secret.error().message);
  Authenticator auth(**store, *secret);

  uv_loop_t loop;
  REXEC_CHECK(uv_loop_init(&loop) == 0);
  int rc = 0;
  {
    Api api(config, **store, auth);
    HubConfig hc;
    hc.ping_interval = config.ping_interval;
    hc.pong_timeout = config.pong_timeout;
    hc.session_linger = config.session_linger;
    hc.agent_grace = config.agent_grace;
    hc.max_frame_bytes = config.max_frame_bytes;
    hc.user_queue_limit = config.user_queue_limit;
    hc.slow_consumer_stall = config.slow_consumer_stall;
    hc.stats_sample_interval = config.stats_sample_interval;
    auto hub = std::make_unique<Hub>(&loop, hc, api);
    api.attach(*hub);
    std::unique_ptr<Cluster> cluster;
    if (!config.redis_url.empty()) {
      auto address = parse_redis_url(config.redis_url);
      if (!address) return fail(address.error().message);
      ClusterConfig cc;
      cc.instance_id = config.instance_id.empty() ? make_instance_id() : config.instance_id;
      if (cc.instance_id.size() > kRelayMaxIdBytes) {  // it names the sender of relay frames
        return fail("--instance-id: at most 255 bytes");
      }
      cc.agent_grace = config.agent_grace;
      cc.user_queue_limit = config.user_queue_limit;
      cc.binary_frames = !config.relay_json;
      spdlog::info("cluster mode instance={} redis={}:{}", cc.instance_id, address->host,
                   address->port);
      cluster = std::make_unique<Cluster>(&loop, cc, *address, *hub);
      api.attach_cluster(*cluster);
    }

    HttpServerOptions ho;
    ho.loop = &loop;
    ho.host = config.listen_host;
    ho.port = config.listen_port;
    ho.max_body_bytes = config.max_body_bytes;
    ho.max_frame_bytes = config.max_frame_bytes;
    ho.max_conns_per_ip = config.max_conns_per_ip;
    ho.header_timeout_s = static_cast<unsigned int>(config.header_timeout.count());
    ho.max_pending_requests = config.max_pending_requests;
    ho.trusted_proxies = config.trusted_proxies;
    ho.tls_cert_file = config.tls_cert_file;
    ho.tls_key_file = config.tls_key_file;
    HttpHandlers handlers;
    handlers.on_request = [&api](const HttpRequest& r) { return api.handle(r); };
    handlers.on_upgrade = [&api](const HttpRequest& r) { return api.upgrade(r); };
    handlers.on_stream = [&api](const HttpRequest& r, HttpStream& s) { return api.stream(r, s); };
    // The open-file limit goes to its hard limit (1,024 under systemd would hold that many
    // agents) before lws sizes its lookup table by it; a smaller table of lws's own
    // (ContextOptions::max_connections) would make it search connections one by one, which cost
    // most of the server's CPU at 18,000 agents. When accept() runs out of descriptors, lws stops
    // accepting until a connection closes (scripts/lws-patches/0005).
    spdlog::info("open-file limit {}: the connections this instance can hold",
                 rx::raise_open_file_limit());
    auto http = HttpServer::start(ho, std::move(handlers));
    if (!http) {
      rc = fail(http.error().message);
    } else {
      const std::string url = std::string(config.tls_cert_file.empty() ? "http" : "https") + "://" +
                              config.listen_host + ":" + std::to_string((*http)->port());
      if (config.public_url.empty()) api.set_public_url(url);  // port 0: known only now
      std::printf("rexec-server listening on %s\n", url.c_str());
      std::fflush(stdout);
      spdlog::info("server started url={} db={} version={}", url, (*store)->describe(),
                   REXEC_VERSION);

      std::vector<rx::uvx::UvHandle<uv_signal_t>> signals;

      struct Stop {
        std::unique_ptr<HttpServer>* http;
        std::unique_ptr<Hub>* hub;
        std::unique_ptr<Cluster>* cluster;
        Api* api;
        std::vector<rx::uvx::UvHandle<uv_signal_t>>* signals;
      } stop{&*http, &hub, &cluster, &api, &signals};

      for (int sig : {SIGTERM, SIGINT}) {
        auto* h = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
        uv_signal_init(&loop, h);
        h->data = &stop;
        uv_signal_start(
            h,
            [](uv_signal_t* s, int) {
              auto* st = static_cast<Stop*>(s->data);
              if (st == nullptr) return;
              spdlog::info("shutting down");
              // Shutdown order: stop accepting and close sockets (lws), then the hub's timers,
              // then our own handles; the loop then runs dry.
              st->http->reset();
              if (*st->cluster) (*st->cluster)->stop();
              (*st->hub)->shutdown();
              st->api->shutdown();
              for (auto& h2 : *st->signals) h2.reset();
            },
            sig);
        signals.emplace_back(h);
      }
      ::signal(SIGPIPE, SIG_IGN);  // NOLINT
      uv_run(&loop, UV_RUN_DEFAULT);
      http->reset();
    }
    cluster.reset();  // its viewers are the hub's: before the hub
    hub.reset();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  REXEC_CHECK(uv_loop_close(&loop) == 0);
  return rc;
}

// "500ms", "60s", "15m", "1h", "90d" (a bare number is seconds). nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  char* end = nullptr;
  const long long n = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || n < 0) return std::nullopt;
  const std::string unit(end);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit.empty() || unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  if (unit == "d") return std::chrono::days(n);
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rexec-server: the Rexec reference server"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  ServerConfig config;
  std::string db = config.db_path;
  std::string listen = "127.0.0.1:8080";
  std::string jwt_flag;
  std::string log_level = "info";
  long long ping_ms = config.ping_interval.count();
  long long pong_ms = config.pong_timeout.count();
  long long linger_ms = config.session_linger.count();
  long long grace_ms = config.agent_grace.count();
  std::vector<std::string> plan_limits;
  app.add_option("--db", db, "SQLite database file, or postgres://user@host:port/dbname")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");

  auto* serve_cmd = app.add_subcommand("serve", "Run the server");
  serve_cmd->add_option("--listen", listen, "host:port (port 0: any free port)")
      ->capture_default_str();
  serve_cmd->add_option("--jwt-secret", jwt_flag,
                        "HS256 key (≥ 32 bytes); default: kept in the DB");
  serve_cmd->add_option("--public-url", config.public_url, "The server's own origin");
  serve_cmd->add_option("--allowed-origin", config.allowed_origins, "Allowed Origin (repeatable)");
  serve_cmd->add_option(
      "--trusted-proxy", config.trusted_proxies,
      "Reverse proxy address whose X-Forwarded-For names the client (repeatable)");
  serve_cmd->add_flag("--block-empty-origin", config.block_empty_origin,
                      "Refuse sockets without an Origin header");
  serve_cmd->add_option("--ping-interval-ms", ping_ms, "Agent heartbeat ping period");
  serve_cmd->add_option("--pong-timeout-ms", pong_ms, "Silence before an agent is offline");
  std::string linger_text;
  std::string grace_text;
  serve_cmd->add_option("--session-linger-ms", linger_ms, "Main shell life after its last viewer");
  serve_cmd->add_option("--agent-grace-ms", grace_ms, "How long viewers wait for a lost agent");
  serve_cmd->add_option("--session-linger", linger_text,
                        "The same as a duration: 900s, 15m, 1h (default 15m)");
  serve_cmd->add_option("--agent-grace", grace_text, "The same as a duration (default 60s)");
  serve_cmd->add_option("--plan-limit", plan_limits, "TIER=N, e.g. free=5 (repeatable)");
  serve_cmd->add_option("--tls-cert", config.tls_cert_file, "Serve TLS: PEM certificate chain");
  serve_cmd->add_option("--tls-key", config.tls_key_file, "Serve TLS: PEM private key");
  serve_cmd->add_option("--redis", config.redis_url,
                        "Cluster mode: redis://[:password@]host:port[/db] (docs/deploy.md)");
  serve_cmd->add_option("--instance-id", config.instance_id,
                        "This instance's id in the cluster (default: hostname-random)");
  serve_cmd
      ->add_flag("--relay-json", config.relay_json,
                 "Cluster: relay terminal bytes as base64 JSON only (tests of mixed versions)")
      ->group("");  // hidden: for tests, not for users
  serve_cmd->add_option("--metrics-token", config.metrics_token,
                        "Bearer token GET /metrics requires (default: none, open to all)");
  serve_cmd->add_option("--downloads-dir", config.downloads_dir,
                        "Directory holding rexec-agent-linux-<arch> binaries to serve");
  serve_cmd
      ->add_option("--rate-limit", config.rate_limit_per_sec,
                   "Requests and upgrades per second per IP (burst: 3 s worth)")
      ->capture_default_str();

  serve_cmd
      ->add_option("--max-sessions-per-agent", config.max_sessions_per_agent,
                   "Sessions one agent may hold")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-sockets-per-user", config.max_sockets_per_user,
                   "Open terminal and events sockets per user")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-sockets-per-ip", config.max_sockets_per_ip,
                   "Open terminal and events sockets per client address")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-conns-per-ip", config.max_conns_per_ip,
                   "Open TCP connections per client address (0: no limit)")
      ->capture_default_str();
  std::string header_timeout_text;
  std::string audit_retention_text;
  serve_cmd->add_option("--audit-retention", audit_retention_text,
                        "Delete audit events older than this, e.g. 90d, 720h; 0: keep them all "
                        "(default 90d)");
  std::string stall_text;
  std::string stats_sample_text;
  serve_cmd->add_option("--stats-sample-interval", stats_sample_text,
                        "Store an agent's stats for its charts at most this often, e.g. 30s; 0: "
                        "every sample, 5 s apart (default 30s)");
  std::string web_ttl_text;
  std::string web_max_text;
  serve_cmd->add_option("--web-session", web_ttl_text,
                        "Life of the JWT the web page signs in for, e.g. 1h (default 1h)");
  serve_cmd->add_option("--web-session-max", web_max_text,
                        "How long the page may renew it after signing in (default 12h)");
  serve_cmd->add_option("--slow-consumer-stall", stall_text,
                        "How long a viewer may stay behind before it is closed 1008 (default 10s)");
  serve_cmd->add_option("--header-timeout", header_timeout_text,
                        "Time a client has to send a request head, e.g. 10s (slow-loris bound)");
  serve_cmd
      ->add_option("--max-pending-requests", config.max_pending_requests,
                   "Connections waiting for their request head at once; more wait in the "
                   "kernel's accept queue (0: no limit)")
      ->capture_default_str();
  serve_cmd->add_option("--max-body", config.max_body_bytes, "Largest HTTP request body, bytes")
      ->capture_default_str();
  serve_cmd
      ->add_option("--max-upload", config.max_upload_bytes,
                   "Largest file upload to an agent, bytes (PUT /api/agents/:id/files)")
      ->capture_default_str();
  serve_cmd->add_option("--recordings-dir", config.recordings_dir,
                        "Where session recordings go (default: recordings/ next to a SQLite "
                        "database; with PostgreSQL, in the database)");
  serve_cmd
      ->add_option("--recordings-keep", config.recordings_keep,
                   "Recordings kept per agent; the oldest go first")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  serve_cmd
      ->add_option("--max-message", config.max_frame_bytes,
                   "Largest WebSocket message, bytes (larger: close 1009)")
      ->capture_default_str();

  auto* user_cmd = app.add_subcommand("user", "Manage users");
  user_cmd->require_subcommand(1);
  auto* user_add = user_cmd->add_subcommand("add", "Create a user and print an API token");
  std::string name;
  std::string tier = "free";
  bool admin = false;
  user_add->add_option("name", name, "User name")->required();
  user_add->add_option("--tier", tier, "guest, free, pro or enterprise")
      ->check(CLI::IsMember({"guest", "free", "pro", "enterprise"}));
  user_add->add_flag("--admin", admin, "Exempt from every plan limit");
  std::string email;
  user_add->add_option("--email", email,
                       "E-mail address, shown to clients (GET /api/profile, whoami)");
  auto* user_list = user_cmd->add_subcommand("list", "List users");
  auto* user_mfa = user_cmd->add_subcommand(
      "mfa-enroll", "Enrol a user for TOTP (MFA lock); prints the otpauth URI and secret once");
  std::string mfa_name;
  user_mfa->add_option("name", mfa_name, "User name")->required();

  auto* token_cmd = app.add_subcommand("token", "Manage API tokens");
  token_cmd->require_subcommand(1);
  auto* token_revoke = token_cmd->add_subcommand("revoke", "Revoke a token by id");
  std::string token_id;
  std::string token_user;
  token_revoke->add_option("id", token_id, "Token id")->required();
  token_revoke->add_option("--user", token_user, "Owner user name")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  rx::LogOptions log;
  log.level = log_level;
  log.ident = "rexec-server";
  if (auto st = rx::init_logging(log); !st) return fail(st.error().message);
  rx::net::route_lws_logs(log_level);
  config.db_path = db;

  if (serve_cmd->parsed()) {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return fail("--listen must be host:port");
    config.listen_host = listen.substr(0, colon);
    try {
      config.listen_port = std::stoi(listen.substr(colon + 1));
    } catch (const std::exception&) {
      return fail("--listen must be host:port");
    }
    config.rate_limit_burst = config.rate_limit_per_sec * 3;
    config.ping_interval = std::chrono::milliseconds(ping_ms);
    config.pong_timeout = std::chrono::milliseconds(pong_ms);
    config.session_linger = std::chrono::milliseconds(linger_ms);
    config.agent_grace = std::chrono::milliseconds(grace_ms);
    if (!stall_text.empty()) {
      auto d = parse_duration(stall_text);
      if (!d) return fail("--slow-consumer-stall must be a duration like 10s");
      config.slow_consumer_stall = *d;
    }
    if (!stats_sample_text.empty()) {
      auto d = parse_duration(stats_sample_text);
      if (!d) return fail("--stats-sample-interval must be a duration like 30s");
      config.stats_sample_interval = *d;
    }
    if (!web_ttl_text.empty()) {
      auto d = parse_duration(web_ttl_text);
      if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::hours(24)) {
        return fail("--web-session must be a duration from 1m to 24h, like 1h");
      }
      config.web_session_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    if (!web_max_text.empty()) {
      auto d = parse_duration(web_max_text);
      if (!d || *d < std::chrono::minutes(1) || *d > std::chrono::days(30)) {
        return fail("--web-session-max must be a duration from 1m to 720h, like 12h");
      }
      config.web_session_max = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    if (!audit_retention_text.empty()) {
      auto d = parse_duration(audit_retention_text);
      if (!d || (d->count() != 0 && *d < std::chrono::hours(1))) {
        return fail("--audit-retention must be 0 or a duration of at least 1h, like 90d");
      }
      config.audit_retention = std::chrono::duration_cast<std::chrono::hours>(*d);
    }
    if (!header_timeout_text.empty()) {
      auto d = parse_duration(header_timeout_text);
      if (!d || *d < std::chrono::seconds(1)) {
        return fail("--header-timeout must be a duration of at least 1s, like 10s");
      }
      config.header_timeout = std::chrono::duration_cast<std::chrono::seconds>(*d);
    }
    for (auto [text, flag, out] :
         {std::tuple{&linger_text, "--session-linger", &config.session_linger},
          std::tuple{&grace_text, "--agent-grace", &config.agent_grace}}) {
      if (text->empty()) continue;
      auto d = parse_duration(*text);
      if (!d) return fail(std::string(flag) + " must be a duration like 500ms, 60s, 15m or 1h");
      *out = *d;
    }
    for (const auto& pl : plan_limits) {
      const auto eq = pl.find('=');
      if (eq == std::string::npos) return fail("--plan-limit must be TIER=N");
      try {
        config.plan_limits.by_tier[pl.substr(0, eq)] = std::stoi(pl.substr(eq + 1));
      } catch (const std::exception&) {
        return fail("--plan-limit must be TIER=N");
      }
    }
    if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
      return fail("--tls-cert and --tls-key go together");
    }
    if (config.public_url.empty() && config.listen_port != 0) {
      config.public_url = (config.tls_cert_file.empty() ? "http://" : "https://") + listen;
    }
    return serve(config, jwt_flag);
  }

  auto store = open_db(db);
  if (!store) return fail(store.error().message);
  if (user_add->parsed()) {
    const auto at = email.find('@');
    if (!email.empty() && (at == 0 || at == std::string::npos || at + 1 == email.size() ||
                           email.find_first_of(" \t\r\n<>\"") != std::string::npos)) {
      return fail("--email must be an address like name@example.com");
    }
    User u;
    u.id = new_uuid_v4();
    u.username = name;
    u.tier = tier;
    u.is_admin = admin;
    u.created_at = now_ms();
    u.email = email;
    if (auto st = (*store)->create_user(u); !st) {
      return fail(st.error().code == rx::Errc::kExists ? "user " + name + " already exists"
                                                       : st.error().message);
    }
    const std::string token = generate_api_token();
    ApiToken t;
    t.id = new_uuid_v4();
    t.user_id = u.id;
    t.name = "cli";
    t.token_hash = hash_token(token);
    t.token_prefix = token.substr(0, 12);
    t.scopes = {"read", "write"};
    t.created_at = u.created_at;
    if (auto st = (*store)->create_token(t); !st) return fail(st.error().message);
    Audit audit(**store, std::chrono::milliseconds(0));
    audit.record("token_created", u.id, u.id, std::nullopt, std::nullopt,
                 {{"token_id", t.id}, {"name", t.name}, {"scopes", t.scopes}, {"via", "cli"}});
    std::fprintf(stderr, "created user %s (%s%s); its API token, shown once:\n", name.c_str(),
                 tier.c_str(), admin ? ", admin" : "");
    std::printf("%s\n", token.c_str());
    return 0;
  }
  if (user_list->parsed()) {
    auto users = (*store)->list_users();
    if (!users) return fail(users.error().message);
    std::printf("%-36s  %-20s  %-10s  %-5s  %s\n", "ID", "NAME", "TIER", "ADMIN", "EMAIL");
    for (const auto& u : *users) {
      std::printf("%-36s  %-20s  %-10s  %-5s  %s\n", u.id.c_str(), u.username.c_str(),
                  u.tier.c_str(), u.is_admin ? "yes" : "no", u.email.c_str());
    }
    return 0;
  }
  if (user_mfa->parsed()) {
    auto user = (*store)->user_by_name(mfa_name);
    if (!user || !*user) return fail("no user named " + mfa_name);
    const std::string secret = rx::server::new_totp_secret();
    if (auto st = (*store)->set_mfa((*user)->id, secret, now_ms()); !st) {
      return fail(st.error().message);
    }
    std::fprintf(stderr,
                 "TOTP enrolled for %s (any earlier secret no longer works); add it to an "
                 "authenticator app, shown once:\n",
                 mfa_name.c_str());
    std::printf("%s\nsecret: %s\n", rx::server::totp_uri("Rexec", mfa_name, secret).c_str(),
                secret.c_str());
    return 0;
  }
  if (token_revoke->parsed()) {
    auto user = (*store)->user_by_name(token_user);
    if (!user || !*user) return fail("no user named " + token_user);
    auto ok = (*store)->revoke_token(token_id, (*user)->id, now_ms());
    if (!ok) return fail(ok.error().message);
    if (!*ok) return fail("no live token " + token_id + " of " + token_user);
    Audit audit(**store, std::chrono::milliseconds(0));
    audit.record("token_revoked", (*user)->id, (*user)->id, std::nullopt, std::nullopt,
                 {{"token_id", token_id}, {"via", "cli"}});
    std::printf("token %s revoked\n", token_id.c_str());
    return 0;
  }
  return 0;
}
