// SPDX-License-Identifier: MIT
#include "fixture.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rx::test {

namespace {

std::string make_temp_dir() {
  char tmpl[] = "/tmp/rexec-it-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()); }

}  // namespace

std::string server_binary() { return REXEC_SERVER_BINARY; }

std::string agent_binary() {
  // The bench measures another build of the agent (the static release) with this.
  const char* other = std::getenv("REXEC_AGENT_BINARY");  // NOLINT(concurrency-mt-unsafe)
  return other != nullptr && *other != '\0' ? other : REXEC_AGENT_BINARY;
}

std::string client_binary() { return REXEC_CLIENT_BINARY; }

std::string make_test_cgroup() {
  static int made = 0;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const auto dash = line.find(" - cgroup2 ");
    if (dash == std::string::npos) continue;
    std::istringstream fields(line.substr(0, dash));
    std::string f;
    std::string mount;
    for (int i = 0; i < 5 && fields >> f; ++i) mount = f;
    const std::string dir =
        mount + "/rexec-test-" + std::to_string(::getpid()) + "-" + std::to_string(++made);
    if (::mkdir(dir.c_str(), 0755) == 0) return dir;
    return "";
  }
  return "";
}

void remove_test_cgroup(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  std::vector<std::string> dirs;  // deepest first
  for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) dirs.insert(dirs.begin(), it->path().string());
  }
  dirs.push_back(path);
  std::ofstream(path + "/cgroup.kill") << "1";
  for (const auto& d : dirs) {
    for (int i = 0; i < 200 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

std::string shell_home(const std::string& dir) {
  const std::string home = dir + "/home";
  ::mkdir(home.c_str(), 0700);  // made once; EEXIST after
  return home;
}

System::System(ServerOptions options)
    : cgroup_root_(make_test_cgroup()),
      dir_(make_temp_dir()),
      host_(options.listen_host),
      ca_file_(options.tls != nullptr ? options.tls->ca() : ""),
      loop_(ca_file_) {
  db_path_ = dir_ + "/rexec.db";
  if (std::getenv("REXEC_TEST_PG_URL_FILE") != nullptr) {  // NOLINT(concurrency-mt-unsafe)
    const std::string cluster = pg_cluster_url();
    if (cluster.empty())
      throw std::runtime_error("REXEC_TEST_PG_URL_FILE names no running cluster");
    pg_ = std::make_unique<PgTestDb>(cluster);
    db_path_ = pg_->url();
  }
  jwt_secret_ = "integration-test-secret-0123456789abcdef";
  base_args_ = {"--db", db_path_, "--jwt-secret", jwt_secret_, "--ping-interval-ms",
                ms(options.ping_interval), "--pong-timeout-ms", ms(options.pong_timeout),
                "--session-linger-ms", ms(options.session_linger), "--agent-grace-ms",
                ms(options.agent_grace), "--log-level", options.log_level,
                // Every test client, agent and user shares 127.0.0.1, and tests poll.
                "--rate-limit", std::to_string(options.rate_limit)};
  if (options.tls != nullptr) {
    base_args_.insert(base_args_.end(),
                      {"--tls-cert", options.tls->cert(), "--tls-key", options.tls->key()});
  }
  start_server(host_ + ":0", options.extra_args);
}

void System::start_server(const std::string& listen, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {server_binary(), "serve", "--listen", listen};
  argv.insert(argv.end(), base_args_.begin(), base_args_.end());
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  const std::string log_path = dir_ + "/server.log";
  const std::size_t log_start = read_file(log_path).size();
  server_ = std::make_unique<Process>(Process::start(argv, log_path));
  const std::regex listening(R"(listening on (https?)://[0-9.]+:(\d+))");
  std::smatch m;
  int port = 0;
  const bool up = wait_until(
      [&] {
        const std::string log = read_file(log_path).substr(log_start);
        if (std::regex_search(log, m, listening)) {
          scheme_ = m[1].str();
          port = std::stoi(m[2].str());
          return true;
        }
        return !server_->running();
      },
      std::chrono::seconds(15));
  if (!up || port == 0) {
    dump_logs();
    throw std::runtime_error("rexec-server did not start");
  }
  port_ = port;
}

void System::restart_server(const std::vector<std::string>& extra_args, bool hard) {
  if (hard) {
    server_->kill();
  } else {
    server_->signal(SIGTERM);
    if (!server_->wait(std::chrono::seconds(10))) server_->kill();
  }
  start_server(host_ + ":" + std::to_string(port_), extra_args);
}

System::~System() {
  server_.reset();
  remove_test_cgroup(cgroup_root_);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string System::http_url(const std::string& path) const {
  return scheme_ + "://" + host_ + ":" + std::to_string(port_) + path;
}

std::string System::ws_url(const std::string& path) const {
  return (scheme_ == "https" ? "wss://" : "ws://") + host_ + ":" + std::to_string(port_) + path;
}

std::string System::add_user(const std::string& name, const std::string& tier, bool admin,
                             const std::string& email) {
  std::vector<std::string> argv = {server_binary(), "user", "add",  name,
                                   "--tier",        tier,   "--db", db_path_};
  if (admin) argv.emplace_back("--admin");
  if (!email.empty()) argv.insert(argv.end(), {"--email", email});
  auto r = run_program(argv, dir_ + "/cli.log");
  if (r.exit_code != 0) {
    dump_logs();
    throw std::runtime_error("user add failed: " + read_file(dir_ + "/cli.log"));
  }
  return trim(r.out);
}

System::Agent System::start_agent(const std::string& token, const std::string& name,
                                  const std::vector<std::string>& run_env,
                                  const std::vector<std::string>& run_prefix) {
  Agent agent;
  const int n = ++agents_started_;
  agent.config_path = dir_ + "/agent-" + std::to_string(n) + ".json";
  const std::string log = dir_ + "/agent-" + std::to_string(n) + ".log";
  agent_logs_.push_back(log);
  std::vector<std::string> reg = {
      agent_binary(), "register", "--server", http_url(), "--token",
      token,          "--name",   name,       "--config", agent.config_path};
  if (!ca_file_.empty()) reg.insert(reg.end(), {"--ca-file", ca_file_});  // saved for `run`
  auto r = run_program(reg, log);
  if (r.exit_code != 0) {
    dump_logs();
    throw std::runtime_error("agent register failed (exit " + std::to_string(r.exit_code) + ")");
  }
  agent.id = trim(r.out);
  std::vector<std::string> env = run_env;  // first: getenv() takes the first of duplicates
  env.emplace_back("REXEC_LOG_LEVEL=debug");
  env.emplace_back("HOME=" + shell_home(dir_));
  if (!cgroup_root_.empty()) env.emplace_back("REXEC_CGROUP_ROOT=" + cgroup_root_);
  std::vector<std::string> argv = run_prefix;
  argv.insert(argv.end(), {agent_binary(), "run", "--config", agent.config_path});
  agent.process = std::make_unique<Process>(Process::start(argv, log, env));
  return agent;
}

bool System::wait_online(const std::string& token, const std::string& agent_id,
                         std::chrono::milliseconds timeout) {
  return loop_.run_until(
      [&] {
        auto r = http(loop_, "GET", http_url("/api/agents/" + agent_id), token);
        return r.status == 200 && r.body.value("status", "") == "online";
      },
      timeout);
}

void System::restart_agent(Agent& agent, const std::vector<std::string>& run_env,
                           const std::string& binary) {
  const std::string log = agent.process->log_path();
  agent.process.reset();
  std::vector<std::string> env = run_env;
  env.emplace_back("REXEC_LOG_LEVEL=debug");
  env.emplace_back("HOME=" + shell_home(dir_));
  if (!cgroup_root_.empty()) env.emplace_back("REXEC_CGROUP_ROOT=" + cgroup_root_);
  agent.process = std::make_unique<Process>(Process::start(
      {binary.empty() ? agent_binary() : binary, "run", "--config", agent.config_path}, log, env));
}

void System::dump_logs() const {
  std::fprintf(stderr, "===== server log =====\n%s\n", read_file(dir_ + "/server.log").c_str());
  for (const auto& log : agent_logs_) {
    std::fprintf(stderr, "===== %s =====\n%s\n", log.c_str(), read_file(log).c_str());
  }
}

}  // namespace rx::test
