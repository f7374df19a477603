// SPDX-License-Identifier: MIT
#include "cluster_fixture.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <stdexcept>
#include <thread>

#include "fixture.h"

namespace rx::test {

namespace {

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

const char* kJwtSecret = "cluster-test-secret-0123456789abcdef0123";

bool wait_log(Process& p, const std::string& needle, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (p.log().find(needle) != std::string::npos) return true;
    if (!p.running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

ClusterSystem::ClusterSystem(int instances, std::string log_level,
                             std::vector<std::string> extra_args)
    : log_level_(std::move(log_level)), extra_args_(std::move(extra_args)) {
  char tmpl[] = "/tmp/rexec-cluster-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  const std::string cluster = pg_cluster_url();
  if (cluster.empty())
    throw std::runtime_error("no PostgreSQL test cluster (REXEC_TEST_PG_URL_FILE)");
  db_ = std::make_unique<PgTestDb>(cluster);
  redis_port_ = free_port();
  start_redis();
  for (int i = 0; i < instances; ++i) {
    ports_.push_back(free_port());
    ids_.push_back(std::string(1, static_cast<char>('A' + i)) + "-test");
    logs_.push_back(dir_ + "/server-" + ids_.back() + ".log");
    servers_.emplace_back();
    instance_args_.push_back(extra_args_);
    start_instance(i);
  }
}

const std::string& ClusterSystem::db_url() const { return db_->url(); }

ClusterSystem::~ClusterSystem() {
  servers_.clear();
  redis_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void ClusterSystem::start_redis() {
  redis_ = std::make_unique<Process>(
      Process::start({"/usr/bin/redis-server", "--port", std::to_string(redis_port_), "--bind",
                      "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"},
                     dir_ + "/redis.log"));
  if (!wait_log(*redis_, "Ready to accept connections", std::chrono::seconds(10))) {
    dump_logs();
    throw std::runtime_error("redis-server did not start");
  }
}

void ClusterSystem::kill_redis() { redis_.reset(); }

void ClusterSystem::start_instance(int i) {
  const auto n = static_cast<std::size_t>(i);
  const std::size_t before = read_file(logs_[n]).size();
  const std::vector<std::string> argv = {server_binary(),
                                         "serve",
                                         "--listen",
                                         "127.0.0.1:" + std::to_string(ports_[n]),
                                         "--db",
                                         db_->url(),
                                         "--redis",
                                         "redis://127.0.0.1:" + std::to_string(redis_port_),
                                         "--instance-id",
                                         ids_[n],
                                         "--jwt-secret",
                                         kJwtSecret,
                                         "--ping-interval-ms",
                                         "500",
                                         "--pong-timeout-ms",
                                         "2000",
                                         "--session-linger-ms",
                                         "3000",
                                         "--agent-grace-ms",
                                         "5000",
                                         "--rate-limit",
                                         "2000",
                                         "--max-sessions-per-agent",
                                         "5000",
                                         "--log-level",
                                         log_level_};
  std::vector<std::string> all = argv;
  all.insert(all.end(), instance_args_[n].begin(), instance_args_[n].end());
  servers_[n] = std::make_unique<Process>(Process::start(all, logs_[n]));
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (read_file(logs_[n]).find("listening on", before) == std::string::npos) {
    if (std::chrono::steady_clock::now() > end || !servers_[n]->running()) {
      dump_logs();
      throw std::runtime_error("rexec-server " + ids_[n] + " did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Ready once Redis answers too.
  loop_.run_until([&] { return http(loop_, "GET", http_url(i, "/readyz")).status == 200; },
                  std::chrono::seconds(10));
}

void ClusterSystem::restart_instance(int i, const std::vector<std::string>& extra_args) {
  auto& p = *servers_.at(static_cast<std::size_t>(i));
  p.signal(SIGTERM);
  if (!p.wait(std::chrono::seconds(10))) p.kill();
  instance_args_[static_cast<std::size_t>(i)] = extra_args;
  start_instance(i);
}

void ClusterSystem::kill_instance(int i) { servers_.at(static_cast<std::size_t>(i))->kill(); }

std::string ClusterSystem::http_url(int i, const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(ports_.at(static_cast<std::size_t>(i))) + path;
}

std::string ClusterSystem::ws_url(int i, const std::string& path) const {
  return "ws://127.0.0.1:" + std::to_string(ports_.at(static_cast<std::size_t>(i))) + path;
}

const std::string& ClusterSystem::instance_id(int i) const {
  return ids_.at(static_cast<std::size_t>(i));
}

std::string ClusterSystem::add_user(const std::string& name, bool admin) {
  std::vector<std::string> argv = {server_binary(), "user", "add", name, "--db", db_->url()};
  if (admin) argv.emplace_back("--admin");
  auto r = run_program(argv, dir_ + "/cli.log");
  if (r.exit_code != 0)
    throw std::runtime_error("user add failed: " + read_file(dir_ + "/cli.log"));
  return trim(r.out);
}

ClusterSystem::Agent ClusterSystem::start_agent(const std::string& token,
                                                const std::vector<int>& instances,
                                                const std::string& name) {
  Agent agent;
  const int n = ++agents_started_;
  agent.config_path = dir_ + "/agent-" + std::to_string(n) + ".json";
  const std::string log = dir_ + "/agent-" + std::to_string(n) + ".log";
  logs_.push_back(log);
  std::string url = http_url(instances.front());
  if (instances.size() > 1) {
    const int port = free_port();
    std::vector<std::string> argv = {
        "/usr/bin/python3", std::string(REXEC_FIXTURES_DIR) + "/tcp_lb.py", std::to_string(port)};
    for (int i : instances) argv.push_back(std::to_string(ports_.at(static_cast<std::size_t>(i))));
    agent.balancer = std::make_unique<Process>(Process::start(argv, log + ".lb"));
    if (!wait_log(*agent.balancer, "listening", std::chrono::seconds(10))) {
      throw std::runtime_error("tcp_lb.py did not start");
    }
    url = "http://127.0.0.1:" + std::to_string(port);
  }
  auto r = run_program({agent_binary(), "register", "--server", url, "--token", token, "--name",
                        name, "--config", agent.config_path},
                       log);
  if (r.exit_code != 0) {
    dump_logs();
    throw std::runtime_error("agent register failed");
  }
  agent.id = trim(r.out);
  agent.process = std::make_unique<Process>(Process::start(
      {agent_binary(), "run", "--config", agent.config_path}, log,
      {"REXEC_LOG_LEVEL=debug", "REXEC_STATS_INTERVAL_MS=500", "HOME=" + shell_home(dir_)}));
  return agent;
}

bool ClusterSystem::wait_online(const std::string& token, const std::string& agent_id, int instance,
                                std::chrono::milliseconds timeout) {
  return loop_.run_until(
      [&] {
        auto r = http(loop_, "GET", http_url(instance, "/api/agents/" + agent_id), token);
        return r.status == 200 && r.body.value("status", "") == "online";
      },
      timeout);
}

void ClusterSystem::dump_logs() const {
  std::fprintf(stderr, "===== redis =====\n%s\n", read_file(dir_ + "/redis.log").c_str());
  for (const auto& log : logs_) {
    std::fprintf(stderr, "===== %s =====\n%s\n", log.c_str(), read_file(log).c_str());
  }
}

}  // namespace rx::test
