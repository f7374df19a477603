// SPDX-License-Identifier: MIT
// ClusterSystem: several real rexec-server instances in cluster mode (PROTOCOL §9) sharing one
// PostgreSQL database (a fresh one on the test cluster) and one real redis-server, started on a
// free loopback port for this test alone. Agents reach the instances either directly or through
// a TCP load balancer (fixtures/tcp_lb.py) that tries the instances in a given order, so an
// agent whose instance dies reconnects to the next one.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pg_test_db.h"
#include "process.h"
#include "test_client.h"

namespace rx::test {

class ClusterSystem {
 public:
  // Throws std::runtime_error when something cannot start (no test cluster, no redis-server).
  // `extra_args` go to every instance's `serve`.
  explicit ClusterSystem(int instances = 3, std::string log_level = "debug",
                         std::vector<std::string> extra_args = {});
  ~ClusterSystem();
  ClusterSystem(const ClusterSystem&) = delete;
  ClusterSystem& operator=(const ClusterSystem&) = delete;
  ClusterSystem(ClusterSystem&&) = delete;
  ClusterSystem& operator=(ClusterSystem&&) = delete;

  [[nodiscard]] std::string http_url(int instance, const std::string& path = "") const;
  [[nodiscard]] std::string ws_url(int instance, const std::string& path = "") const;
  [[nodiscard]] const std::string& instance_id(int instance) const;

  [[nodiscard]] const std::string& dir() const { return dir_; }

  // The database every instance shares.
  [[nodiscard]] const std::string& db_url() const;

  // `rexec-server user add`; returns the API token. Admins are exempt from plan limits.
  std::string add_user(const std::string& name, bool admin = false);

  struct Agent {
    std::string id;
    std::string config_path;
    std::unique_ptr<Process> process;
    std::unique_ptr<Process> balancer;  // when started behind one
  };

  // Registers through `instances.front()` and runs the agent against the first of `instances`
  // that accepts it (a load balancer in front of them when there are several).
  Agent start_agent(const std::string& token, const std::vector<int>& instances,
                    const std::string& name = "box");
  // Polls GET /api/agents/ID on `instance` until it says online.
  bool wait_online(const std::string& token, const std::string& agent_id, int instance,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // SIGKILL: the instance vanishes without cleaning anything up.
  void kill_instance(int instance);
  void start_instance(int instance);
  // SIGTERM, then start again with `extra_args` instead of the common ones.
  void restart_instance(int instance, const std::vector<std::string>& extra_args);
  void kill_redis();
  void start_redis();

  Process& instance(int i) { return *servers_.at(static_cast<std::size_t>(i)); }

  Process& redis() { return *redis_; }

  Loop& loop() { return loop_; }

  void dump_logs() const;

 private:
  std::string dir_;
  std::string log_level_;
  std::vector<std::string> extra_args_;
  std::vector<std::vector<std::string>> instance_args_;
  std::unique_ptr<PgTestDb> db_;
  int redis_port_ = 0;
  std::unique_ptr<Process> redis_;
  std::vector<int> ports_;
  std::vector<std::string> ids_;
  std::vector<std::unique_ptr<Process>> servers_;
  std::vector<std::string> logs_;
  int agents_started_ = 0;
  Loop loop_;
};

// A free TCP port on 127.0.0.1 (bound and released: a small race, fine for tests).
int free_port();

}  // namespace rx::test
