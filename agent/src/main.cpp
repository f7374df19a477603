// SPDX-License-Identifier: MIT
// rexec-agent: command-line entry point. Subcommands register, run, status, unregister and
// version (rexec/agent/command_line.h); the logic lives in rexec_agent_core.
#include "rexec/agent/agent.h"
#include "rexec/agent/command_line.h"
#include "rexec/agent/config.h"
#include "rexec/common/check.h"
#include "rexec/common/log.h"
#include "rexec/common/version.h"
#include "rexec/net/http_client.h"
#include "rexec/net/lws_context.h"
#include "rexec/pty/pty_process.h"
#include "rexec/sysinfo/sysinfo.h"

#include <libwebsockets.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
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

using rx::agent::CommandLine;

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
rx::Result<AgentConfig> resolve(const CommandLine& f, bool must_exist) {
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
int save_registration(const CommandLine& flags, AgentConfig c, const std::string& server) {
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

int do_register(const CommandLine& flags) {
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

// "2026-01-02 03:04:05 UTC" for seconds since the epoch, in the local time zone.
std::string local_time(std::int64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  std::array<char, 64> buf{};
  if (::localtime_r(&t, &tm) == nullptr ||
      std::strftime(buf.data(), buf.size(), "%Y-%m-%d %H:%M:%S %Z", &tm) == 0) {
    return std::to_string(seconds);
  }
  return buf.data();
}

// The running agent, from its status socket: what an operator asks first.
void print_live_status(const nlohmann::json& s) {
  const auto num = [&s](const char* k) { return s.value(k, std::int64_t{0}); };
  std::printf("agent:      running, pid %lld, version %s, since %s\n",
              static_cast<long long>(num("pid")), s.value("version", "?").c_str(),
              local_time(num("started_at")).c_str());
  if (s.value("state", "") == "connected") {
    std::printf("connection: connected to %s since %s, protocol %s\n",
                s.value("server", "?").c_str(), local_time(num("connected_since")).c_str(),
                s.value("protocol", "?").c_str());
  } else {
    std::printf("connection: %s (not connected to %s)\n", s.value("state", "?").c_str(),
                s.value("server", "?").c_str());
  }
  std::string list;
  if (s.contains("sessions") && s["sessions"].is_array()) {
    for (const auto& x : s["sessions"]) {
      if (!x.is_object()) continue;
      list += (list.empty() ? "" : ", ") + x.value("id", "?") + " (pid " +
              std::to_string(x.value("pid", 0)) + (x.value("kept", false) ? ", kept" : "") + ")";
    }
  }
  const std::size_t n = s.contains("sessions") ? s["sessions"].size() : 0;
  std::printf("sessions:   %zu open%s%s\n", n, n > 0 ? ": " : "", list.c_str());
  const auto h = s.value("handover", nlohmann::json::object());
  const std::string keeper = h.value("keeper", "?");
  if (keeper == "off") {
    std::printf("handover:   off (shells end with the agent)\n");
  } else {
    std::string state = keeper;
    if (keeper == "attached") state += ", pid " + std::to_string(h.value("keeper_pid", 0));
    if (keeper == "none") state = "not started (no shell yet)";
    std::printf("handover:   %lld s; keeper %s; %lld shell(s) taken over at start\n",
                static_cast<long long>(h.value("seconds", std::int64_t{0})), state.c_str(),
                static_cast<long long>(h.value("taken_over", std::int64_t{0})));
  }
  const std::string cg = s.value("session_cgroups", "");
  std::printf("isolation:  %s\n",
              cg.empty() ? "process groups" : ("session cgroups under " + cg).c_str());
  if (s.contains("last_error") && s["last_error"].is_object()) {
    std::printf("last error: %s (%s)\n", s["last_error"].value("message", "?").c_str(),
                local_time(s["last_error"].value("at", std::int64_t{0})).c_str());
  } else {
    std::printf("last error: none\n");
  }
}

// Exit status: 0 when the agent runs and the server accepts its token, 3 when no agent runs
// (as `systemctl status`), 1 otherwise.
int do_status(const CommandLine& flags) {
  auto cfg = resolve(flags, true);
  if (!cfg) return fail(cfg.error().message);
  const AgentConfig& c = *cfg;
  int rc = 0;
  auto live = rx::agent::query_status(c.agent_id, std::chrono::seconds(2));
  if (live) {
    print_live_status(*live);
  } else {
    std::printf("agent:      not running (%s)\n", live.error().message.c_str());
    rc = live.error().code == rx::Errc::kUnavailable ? 3 : 1;
  }
  std::printf("config:     %s\nserver:     %s\nagent id:   %s\ntoken:      %s\nname:       %s\n",
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
    std::printf("server:     unreachable (%s)\n", r.error().message.c_str());
    return rc != 0 ? rc : 1;
  }
  if (r->status != 200) {
    std::printf("auth:       rejected (%s)\n", error_text(*r).c_str());
    return rc != 0 ? rc : 1;
  }
  std::printf("auth:       ok\n");
  return rc;
}

int do_unregister(const CommandLine& flags) {
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
  // The environment gives the defaults; flags win.
  CommandLine defaults;
  defaults.config_path = env("REXEC_CONFIG").value_or(rx::agent::default_config_path());
  defaults.max_sessions = static_cast<std::size_t>(
      env_positive("REXEC_MAX_SESSIONS").value_or(rx::agent::RunOptions{}.max_sessions));
  defaults.handover_s = env_positive("REXEC_HANDOVER_S").value_or(0);
  defaults.no_session_cgroups = env("REXEC_SESSION_CGROUPS").value_or("1") == "0";
  defaults.cgroup_root = env("REXEC_CGROUP_ROOT").value_or("");
  defaults.session_memory_max = env("REXEC_SESSION_MEMORY_MAX").value_or("");
  defaults.session_pids_max = env("REXEC_SESSION_PIDS_MAX").value_or("");
  defaults.session_cpu_max = env("REXEC_SESSION_CPU_MAX").value_or("");
  auto parsed = rx::agent::parse_command_line(argc, argv, defaults);
  if (!parsed) {
    std::fprintf(stderr, "rexec-agent: %s\n", parsed.error().message.c_str());
    return 2;
  }
  CommandLine f = std::move(parsed).value();
  using rx::agent::Command;
  if (f.command == Command::kHelp) {
    std::fputs(f.help_text.c_str(), stdout);
    return 0;
  }
  if (f.command == Command::kVersion) {
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
  switch (f.command) {
    case Command::kKeeper:
      return rx::agent::run_keeper(f.agent_id);
    case Command::kRegister:
      return do_register(f);
    case Command::kStatus:
      return do_status(f);
    case Command::kUnregister:
      return do_unregister(f);
    default:
      break;
  }

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
  o.handover = std::chrono::seconds(f.handover_s);
  o.session_cgroups = !f.no_session_cgroups;
  o.cgroup_root = f.cgroup_root;
  o.session_memory_max = f.session_memory_max;
  o.session_pids_max = f.session_pids_max;
  o.session_cpu_max = f.session_cpu_max;
  o.v1_only = env("REXEC_PROTOCOL").value_or("") == "v1";
  return rx::agent::run_agent(o);
}
