// SPDX-License-Identifier: MIT
// rexec-agent: command-line entry point. Subcommands register, run, status, unregister and
// version; the logic lives in rexec_agent_core.
#include "rexec/agent/agent.h"
#include "rexec/agent/config.h"
#include "rexec/common/check.h"
#include "rexec/common/log.h"
#include "rexec/common/version.h"
#include "rexec/net/http_client.h"
#include "rexec/net/lws_context.h"
#include "rexec/pty/pty_process.h"
#include "rexec/sysinfo/sysinfo.h"

#include <CLI/CLI.hpp>
#include <libwebsockets.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>

namespace {

using rx::agent::AgentConfig;

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): single-threaded start-up
  return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
}

std::string error_text(const rx::net::HttpResponse& r) {
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(r.status);
}

std::string redact(const std::string& token) {
  if (token.size() < 12) return token.empty() ? "(none)" : "(set)";
  return token.substr(0, 10) + "…";
}

struct Flags {
  std::string config_path;
  std::string server, token, name, description, shell, region, log_level, ca_file;
  std::string agent_id;      // register: already registered, only save
  bool token_stdin = false;  // read the token from the first line of stdin
  std::vector<std::string> tags;
  std::size_t max_sessions = rx::agent::RunOptions{}.max_sessions;
};

// The first line of stdin, without surrounding white space: how install.sh passes a token, so
// it never appears on a command line.
std::string read_token_line() {
  std::string line;
  int ch = 0;
  while ((ch = std::fgetc(stdin)) != EOF && ch != '\n' && line.size() < 4096) {
    line.push_back(static_cast<char>(ch));
  }
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  return first == std::string::npos ? std::string() : line.substr(first, last - first + 1);
}

// File, then environment, then flags (flags win).
rx::Result<AgentConfig> resolve(const Flags& f, bool must_exist) {
  AgentConfig c;
  auto loaded = rx::agent::load_config(f.config_path);
  if (loaded) {
    c = std::move(loaded).value();
  } else if (loaded.error().code != rx::Errc::kNotFound || must_exist) {
    return std::move(loaded).error();
  }
  rx::agent::apply_environment(c, env);
  if (!f.server.empty()) c.server = f.server;
  if (!f.token.empty()) c.token = f.token;
  if (!f.name.empty()) c.name = f.name;
  if (!f.description.empty()) c.description = f.description;
  if (!f.tags.empty()) c.tags = f.tags;
  if (!f.shell.empty()) c.shell = f.shell;
  if (!f.region.empty()) c.region = f.region;
  if (!f.log_level.empty()) c.log_level = f.log_level;
  if (!f.ca_file.empty()) c.ca_file = f.ca_file;
  return c;
}

int fail(const std::string& sentence) {
  std::fprintf(stderr, "rexec-agent: %s\n", sentence.c_str());
  return 1;
}

// register --agent-id: the agent exists; check that its token works, then save.
int save_registration(const Flags& flags, AgentConfig c, const std::string& server) {
  if (c.token.rfind("rexec_", 0) != 0) return fail("--agent-id needs the agent's own rexec_ token");
  rx::net::HttpRequest req;
  req.url = rx::net::Url::parse(server + "/api/tokens/validate").value();
  req.headers = {{"authorization", "Bearer " + c.token}};
  auto r = rx::net::fetch_blocking(req, c.ca_file);
  if (!r) return fail("cannot reach the server at " + server + ": " + r.error().message);
  if (r->status != 200) return fail("the server rejected the token (" + error_text(*r) + ")");
  c.server = server;
  c.agent_id = flags.agent_id;
  if (auto st = rx::agent::save_config(flags.config_path, c); !st) {
    return fail("could not save the config: " + st.error().message);
  }
  std::fprintf(stderr, "saved agent %s; config in %s\n", c.agent_id.c_str(),
               flags.config_path.c_str());
  std::printf("%s\n", c.agent_id.c_str());
  return 0;
}

int do_register(const Flags& flags) {
  auto cfg = resolve(flags, false);
  if (!cfg) return fail(cfg.error().message);
  AgentConfig c = std::move(cfg).value();
  auto server = rx::agent::normalized_server(c.server);
  if (!server) return fail(server.error().message);
  if (c.token.empty()) return fail("no token: pass --token or set REXEC_TOKEN");
  if (!flags.agent_id.empty()) return save_registration(flags, c, *server);
  if (c.name.empty()) c.name = rx::sysinfo::read_hostname();
  if (!c.shell.empty()) {
    if (auto sh = rx::pty::choose_shell(c.shell); !sh) return fail(sh.error().message);
  }
  const auto shell = rx::pty::choose_shell(c.shell);
  const auto kernel = rx::sysinfo::read_kernel();
  nlohmann::json body = {{"name", c.name},
                         {"description", c.description},
                         {"os", "linux"},
                         {"arch", rx::sysinfo::go_arch(kernel.machine)},
                         {"shell", shell ? *shell : ""},
                         {"tags", c.tags}};
  rx::net::HttpRequest req;
  req.method = "POST";
  req.url = rx::net::Url::parse(*server + "/api/agents/register").value();
  req.headers = {{"authorization", "Bearer " + c.token}};
  req.body = body.dump();
  auto r = rx::net::fetch_blocking(req, c.ca_file);
  if (!r) return fail("cannot reach the server at " + *server + ": " + r.error().message);
  if (r->status == 401) return fail("the server rejected the token (401 unauthorized)");
  if (r->status == 404) return fail("no agent registration at " + *server + " (404)");
  if (r->status != 201) return fail("registration refused: " + error_text(*r));
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("id") || !j.contains("token") || !j["id"].is_string() ||
      !j["token"].is_string()) {
    return fail("the server answered registration with an unexpected body");
  }
  c.server = *server;
  c.agent_id = j["id"].get<std::string>();
  c.token = j["token"].get<std::string>();
  if (auto st = rx::agent::save_config(flags.config_path, c); !st) {
    return fail("registered as " + c.agent_id +
                " but could not save the config: " + st.error().message);
  }
  std::fprintf(stderr, "registered agent '%s'; config saved to %s\n", c.name.c_str(),
               flags.config_path.c_str());
  std::printf("%s\n", c.agent_id.c_str());
  return 0;
}

int do_status(const Flags& flags) {
  auto cfg = resolve(flags, true);
  if (!cfg) return fail(cfg.error().message);
  const AgentConfig& c = *cfg;
  std::printf("config:   %s\nserver:   %s\nagent id: %s\ntoken:    %s\nname:     %s\n",
              flags.config_path.c_str(), c.server.c_str(),
              c.agent_id.empty() ? "(not registered)" : c.agent_id.c_str(), redact(c.token).c_str(),
              c.name.c_str());
  auto server = rx::agent::normalized_server(c.server);
  if (!server) return fail(server.error().message);
  rx::net::HttpRequest req;
  req.url = rx::net::Url::parse(*server + "/api/tokens/validate").value();
  req.headers = {{"authorization", "Bearer " + c.token}};
  auto r = rx::net::fetch_blocking(req, c.ca_file);
  if (!r) {
    std::printf("server:   unreachable (%s)\n", r.error().message.c_str());
    return 1;
  }
  if (r->status != 200) {
    std::printf("auth:     rejected (%s)\n", error_text(*r).c_str());
    return 1;
  }
  std::printf("auth:     ok\n");
  return 0;
}

int do_unregister(const Flags& flags) {
  auto cfg = resolve(flags, true);
  if (!cfg) return fail(cfg.error().message);
  const AgentConfig& c = *cfg;
  auto server = rx::agent::normalized_server(c.server);
  if (!server) return fail(server.error().message);
  rx::net::HttpRequest req;
  req.method = "DELETE";
  req.url = rx::net::Url::parse(*server + "/api/agents/" + c.agent_id).value();
  req.headers = {{"authorization", "Bearer " + c.token}};
  auto r = rx::net::fetch_blocking(req, c.ca_file);
  if (!r) return fail("cannot reach the server at " + *server + ": " + r.error().message);
  if (r->status != 200 && r->status != 404) {
    // Our server lets an agent's token delete its own agent; a server that does not needs the
    // owner's token.
    return fail("the server refused to delete the agent (" + error_text(*r) +
                "); pass --token with a user token");
  }
  if (::unlink(flags.config_path.c_str()) != 0) {
    return fail("agent deleted, but " + flags.config_path + " could not be removed");
  }
  std::printf("agent %s unregistered; %s removed\n", c.agent_id.c_str(), flags.config_path.c_str());
  return 0;
}

// A positive whole number from the environment; nullopt when unset or not one.
std::optional<long long> env_positive(const char* name) {
  if (auto v = env(name)) {
    char* end = nullptr;
    const long long n = std::strtoll(v->c_str(), &end, 10);
    if (end != v->c_str() && *end == '\0' && n > 0) return n;
  }
  return std::nullopt;
}

std::chrono::milliseconds env_ms(const char* name, std::chrono::milliseconds fallback) {
  if (auto n = env_positive(name)) return std::chrono::milliseconds(*n);
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rexec-agent: connects this machine to a Rexec server"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand
  Flags f;
  f.config_path = env("REXEC_CONFIG").value_or(rx::agent::default_config_path());
  app.add_option("--config", f.config_path, "Config file")->capture_default_str();
  app.add_option("--log-level", f.log_level, "trace, debug, info, warn, error");
  app.add_option("--ca-file", f.ca_file,
                 "PEM file of CA certificates to trust (default: SSL_CERT_FILE, SSL_CERT_DIR, then "
                 "the system bundle); saved by register");

  auto* reg = app.add_subcommand("register", "Register this machine and save its agent token");
  reg->add_option("--server", f.server, "Server URL, e.g. https://rexec.example.com");
  reg->add_option("--token", f.token, "Your rexec_ API token (or REXEC_TOKEN)");
  reg->add_option("--name", f.name, "Agent name (default: hostname)");
  reg->add_option("--description", f.description, "Description");
  reg->add_option("--tags", f.tags, "Tags")->delimiter(',');
  reg->add_option("--shell", f.shell, "Shell for terminals (default: $SHELL, zsh, bash, sh)");
  reg->add_option("--agent-id", f.agent_id,
                  "Already registered: save this id with its agent token (--token) instead");
  reg->add_flag("--token-stdin", f.token_stdin, "Read the token from the first line of stdin");

  auto* run = app.add_subcommand("run", "Connect and serve terminals (foreground)");
  run->add_option("--server", f.server, "Override the server URL");
  run->add_option("--shell", f.shell, "Override the shell");
  run->add_option("--region", f.region, "Region reported to the server (or REXEC_REGION)");
  if (auto n = env_positive("REXEC_MAX_SESSIONS")) f.max_sessions = static_cast<std::size_t>(*n);
  run->add_option("--max-sessions", f.max_sessions,
                  "Shells open at once; more get shell_error (or REXEC_MAX_SESSIONS)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  long long handover_s = env_positive("REXEC_HANDOVER_S").value_or(0);
  run->add_option("--handover", handover_s,
                  "Seconds shells outlive this process, for the next `run` to take them over "
                  "(0: they end with it; or REXEC_HANDOVER_S)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  rx::agent::RunOptions iso;  // session isolation, from flags or the environment
  iso.session_cgroups = env("REXEC_SESSION_CGROUPS").value_or("1") != "0";
  iso.cgroup_root = env("REXEC_CGROUP_ROOT").value_or("");
  iso.session_memory_max = env("REXEC_SESSION_MEMORY_MAX").value_or("");
  iso.session_pids_max = env("REXEC_SESSION_PIDS_MAX").value_or("");
  iso.session_cpu_max = env("REXEC_SESSION_CPU_MAX").value_or("");
  bool no_cgroups = false;
  run->add_flag("--no-session-cgroups", no_cgroups,
                "Isolate sessions by process group only (or REXEC_SESSION_CGROUPS=0)");
  run->add_option("--cgroup-root", iso.cgroup_root,
                  "cgroup v2 directory for session cgroups (default: our own; or "
                  "REXEC_CGROUP_ROOT)");
  run->add_option("--session-memory-max", iso.session_memory_max,
                  "memory.max of each session, e.g. 1G (or REXEC_SESSION_MEMORY_MAX)");
  run->add_option("--session-pids-max", iso.session_pids_max,
                  "pids.max of each session (or REXEC_SESSION_PIDS_MAX)");
  run->add_option("--session-cpu-max", iso.session_cpu_max,
                  "cpu.max of each session, e.g. \"50000 100000\" for half a CPU "
                  "(or REXEC_SESSION_CPU_MAX)");
  std::string keeper_agent_id;
  auto* keeper = app.add_subcommand("keeper", "");  // started by `run --handover`; no help entry
  keeper->add_option("--agent-id", keeper_agent_id)->required();

  auto* status = app.add_subcommand("status", "Show the config and check the server");
  auto* unreg = app.add_subcommand("unregister", "Delete this agent on the server and its config");
  unreg->add_option("--token", f.token,
                    "A user API token allowed to delete the agent (default: the agent's own "
                    "token, which a server may refuse)");
  unreg->add_flag("--token-stdin", f.token_stdin, "Read the token from the first line of stdin");
  auto* version = app.add_subcommand("version", "Print version, commit and build date");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (version->parsed()) {
    std::printf("rexec-agent %s (commit %s, built %s; libwebsockets %s, libuv %s)\n", REXEC_VERSION,
                REXEC_GIT_COMMIT, REXEC_BUILD_DATE, lws_get_library_version(), uv_version_string());
    return 0;
  }

  rx::LogOptions log;
  log.level = f.log_level.empty() ? env("REXEC_LOG_LEVEL").value_or("info") : f.log_level;
  log.sink = rx::is_under_journald() ? rx::LogSink::kSyslog : rx::LogSink::kStderr;
  log.ident = "rexec-agent";
  if (auto st = rx::init_logging(log); !st) return fail(st.error().message);
  rx::net::route_lws_logs(log.level);

  if (f.token_stdin) {
    f.token = read_token_line();
    if (f.token.empty()) return fail("--token-stdin: no token on stdin");
  }
  if (keeper->parsed()) return rx::agent::run_keeper(keeper_agent_id);
  if (reg->parsed()) return do_register(f);
  if (status->parsed()) return do_status(f);
  if (unreg->parsed()) return do_unregister(f);

  auto cfg = resolve(f, true);
  if (!cfg) {
    if (cfg.error().code == rx::Errc::kNotFound) {
      return fail("not registered: no config at " + f.config_path +
                  " (run `rexec-agent register` first)");
    }
    return fail(cfg.error().message);
  }
  rx::agent::RunOptions o;
  o.config = std::move(cfg).value();
  o.stats_interval = env_ms("REXEC_STATS_INTERVAL_MS", o.stats_interval);
  o.ping_interval = env_ms("REXEC_PING_INTERVAL_MS", o.ping_interval);
  o.idle_timeout = env_ms("REXEC_IDLE_TIMEOUT_MS", o.idle_timeout);
  o.handshake_timeout = env_ms("REXEC_HANDSHAKE_TIMEOUT_MS", o.handshake_timeout);
  o.backoff_base = env_ms("REXEC_BACKOFF_BASE_MS", o.backoff_base);
  o.backoff_cap = env_ms("REXEC_BACKOFF_CAP_MS", o.backoff_cap);
  o.max_sessions = f.max_sessions;
  o.handover = std::chrono::seconds(handover_s);
  o.session_cgroups = iso.session_cgroups && !no_cgroups;
  o.cgroup_root = iso.cgroup_root;
  o.session_memory_max = iso.session_memory_max;
  o.session_pids_max = iso.session_pids_max;
  o.session_cpu_max = iso.session_cpu_max;
  o.v1_only = env("REXEC_PROTOCOL").value_or("") == "v1";
  return rx::agent::run_agent(o);
}
