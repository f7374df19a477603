// SPDX-License-Identifier: MIT
// rexec: a terminal client for Rexec servers. `login` saves the server and token; `agents`
// lists agents with live stats; `term` opens a shell; `exec` runs one command; `cp` copies a
// file to or from an agent.
#include "rexec/common/check.h"
#include "rexec/common/log.h"
#include "rexec/net/http_client.h"
#include "rexec/net/lws_context.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <uv.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "copy.h"
#include "copy_format.h"
#include "exec.h"
#include "terminal.h"

namespace {

using nlohmann::json;

std::string config_path() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): single-threaded start-up
  if (const char* p = std::getenv("REXEC_CLIENT_CONFIG"); p != nullptr && *p != '\0') return p;
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe)
  return std::string(home != nullptr ? home : ".") + "/.config/rexec/client.json";
}

int fail(const std::string& sentence) {
  std::fprintf(stderr, "rexec: %s\n", sentence.c_str());
  return 1;
}

rx::Result<rx::net::HttpResponse> http_get(const std::string& server, const std::string& token,
                                           const std::string& path) {
  auto url = rx::net::Url::parse(server + path);
  if (!url) return std::move(url).error();
  rx::net::HttpRequest req;
  req.url = *url;
  req.headers = {{"authorization", "Bearer " + token}};
  return rx::net::fetch_blocking(std::move(req));
}

std::string error_of(const rx::net::HttpResponse& r) {
  return rx::client::server_error_text(r.status, r.body);
}

struct Login {
  std::string server;
  std::string token;
};

rx::Result<Login> load_login() {
  std::ifstream in(config_path());
  if (!in) return rx::Error(rx::Errc::kNotFound, "not logged in: run `rexec login` first");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = json::parse(ss.str(), nullptr, false);
  if (!j.is_object()) return rx::Error(rx::Errc::kConfig, config_path() + " is not valid JSON");
  return Login{j.value("server", ""), j.value("token", "")};
}

int do_login(const std::string& server_in, const std::string& token) {
  std::string server = server_in;
  while (!server.empty() && server.back() == '/') server.pop_back();
  auto r = http_get(server, token, "/api/tokens/validate");
  if (!r) return fail("cannot reach " + server + ": " + r.error().message);
  if (r->status != 200) return fail("the server rejected the token: " + error_of(*r));
  const std::string path = config_path();
  const std::string dir = path.substr(0, path.rfind('/'));
  std::string partial;
  for (std::size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0700);
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot write " + path);
  const std::string text = json{{"server", server}, {"token", token}}.dump(2) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) return fail("cannot write " + path);
  auto who = json::parse(r->body, nullptr, false);
  std::printf("logged in to %s as %s\n", server.c_str(),
              who.is_object() ? who.value("username", "?").c_str() : "?");
  return 0;
}

rx::Result<json> list_agents(const Login& l) {
  auto r = http_get(l.server, l.token, "/api/agents");
  if (!r) return std::move(r).error();
  if (r->status != 200) return rx::Error(rx::Errc::kUnavailable, error_of(*r));
  auto j = json::parse(r->body, nullptr, false);
  if (!j.is_array()) return rx::Error(rx::Errc::kUnavailable, "unexpected agent list");
  return j;
}

// An agent id, or a unique agent name.
rx::Result<std::string> resolve_agent(const Login& l, const std::string& what) {
  auto agents = list_agents(l);
  if (!agents) return std::move(agents).error();
  std::vector<std::string> by_name;
  for (const auto& a : *agents) {
    if (a.value("id", "") == what) return what;
    if (a.value("name", "") == what) by_name.push_back(a.value("id", ""));
  }
  if (by_name.size() == 1) return by_name[0];
  if (by_name.empty()) return rx::Error(rx::Errc::kNotFound, "no agent named " + what);
  return rx::Error(rx::Errc::kInvalidArgument, "several agents are named " + what + ": use the id");
}

int do_agents() {
  auto l = load_login();
  if (!l) return fail(l.error().message);
  auto agents = list_agents(*l);
  if (!agents) return fail(agents.error().message);
  std::printf("%-36s  %-20s  %-7s  %6s  %-21s  %s\n", "ID", "NAME", "STATUS", "CPU%", "MEMORY",
              "LAST SEEN");
  for (const auto& a : *agents) {
    std::string cpu = "-";
    std::string mem = "-";
    const std::string id = a.value("id", "");
    if (a.value("status", "") == "online") {
      if (auto s = http_get(l->server, l->token, "/api/agents/" + id + "/status");
          s && s->status == 200) {
        auto j = json::parse(s->body, nullptr, false);
        if (j.is_object() && j.contains("stats") && j["stats"].is_object()) {
          const auto& st = j["stats"];
          char buf[16];
          std::snprintf(buf, sizeof buf, "%.1f", st.value("cpu_percent", 0.0));
          cpu = buf;
          mem = rx::client::human_bytes(st.value("memory", 0.0)) + "/" +
                rx::client::human_bytes(st.value("memory_limit", 0.0));
        }
      }
    }
    const auto& last =
        a.contains("last_ping") && a["last_ping"].is_string() ? a["last_ping"] : json("-");
    std::printf("%-36s  %-20s  %-7s  %6s  %-21s  %s\n", id.c_str(),
                a.value("name", "").substr(0, 20).c_str(), a.value("status", "").c_str(),
                cpu.c_str(), mem.c_str(), last.get<std::string>().c_str());
  }
  return 0;
}

// `rexec cp FROM TO`: exactly one side is AGENT:PATH.
int do_copy(const Login& l, const std::string& from, const std::string& to) {
  const auto remote_from = rx::client::parse_remote(from);
  const auto remote_to = rx::client::parse_remote(to);
  if (remote_from && remote_to) {
    return fail("cp copies between this machine and an agent: one side must be a local path");
  }
  if (!remote_from && !remote_to) return fail("cp needs AGENT:PATH on one side");
  const rx::client::RemotePath& remote = remote_from ? *remote_from : *remote_to;
  if (remote.path.empty() || remote.path[0] != '/') {
    return fail("the path on the agent must be absolute: " + remote.agent + ":" + remote.path);
  }
  auto id = resolve_agent(l, remote.agent);
  if (!id) return fail(id.error().message);
  const rx::client::Target t{l.server, l.token, *id};
  auto st = remote_to ? rx::client::upload_file(t, from, remote.path)
                      : rx::client::download_file(t, remote.path, to);
  return st ? 0 : fail(st.error().message);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rexec: terminals on your machines through a Rexec server"};
  app.require_subcommand(1);
  std::string server;
  std::string token;
  std::string agent;
  bool split = false;
  std::vector<std::string> command;

  auto* login = app.add_subcommand("login", "Save the server URL and your API token");
  login->add_option("--server", server, "Server URL")->required();
  login->add_option("--token", token, "API token (rexec_...)")->required();
  auto* agents = app.add_subcommand("agents", "List your agents with status and live stats");
  auto* term = app.add_subcommand("term", "Open a terminal on an agent");
  term->add_option("agent", agent, "Agent id or name")->required();
  term->add_flag("--split", split, "Open a new independent session instead of main");
  auto* exec = app.add_subcommand(
      "exec", "Run a command on an agent (no terminal): its output, and its exit code");
  exec->add_option("agent", agent, "Agent id or name")->required();
  exec->add_option("command", command, "Command (after --)")->required();
  std::uint32_t exec_timeout = 60;
  exec->add_option("--timeout", exec_timeout, "Seconds the command may run")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  std::string cp_from;
  std::string cp_to;
  auto* cp = app.add_subcommand(
      "cp",
      "Copy a file to or from an agent: rexec cp FILE AGENT:/PATH, rexec cp AGENT:/PATH FILE");
  cp->add_option("from", cp_from, "Local file or AGENT:PATH")->required();
  cp->add_option("to", cp_to, "AGENT:PATH (a trailing / keeps the name) or local path")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  rx::LogOptions log;
  log.level = "warn";
  (void)rx::init_logging(log);
  rx::net::route_lws_logs("error");

  if (login->parsed()) return do_login(server, token);
  if (agents->parsed()) return do_agents();
  // `exec` keeps 255 for its own failures, so that a script can tell them from the command's.
  const int not_run = exec->parsed() ? 255 : 1;
  auto l = load_login();
  if (!l) {
    (void)fail(l.error().message);
    return not_run;
  }
  if (cp->parsed()) return do_copy(*l, cp_from, cp_to);
  auto id = resolve_agent(*l, agent);
  if (!id) {
    (void)fail(id.error().message);
    return not_run;
  }
  rx::client::Target t{l->server, l->token, *id};
  if (term->parsed()) return rx::client::run_terminal(t, split);
  std::string joined;
  for (const auto& part : command) joined += (joined.empty() ? "" : " ") + part;
  return rx::client::run_exec(t, joined, exec_timeout);
}
