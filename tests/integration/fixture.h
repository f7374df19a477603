// SPDX-License-Identifier: MIT
// System fixture: a real rexec-server on 127.0.0.1 (port chosen by the kernel) with a temp
// database (SQLite; PostgreSQL when REXEC_TEST_PG_URL_FILE names a test cluster: a fresh
// database on it) and short heartbeat timers, users made through its CLI, and real rexec-agent
// processes registered and running against it. On failure, the children's logs are printed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pg_test_db.h"
#include "process.h"
#include "test_certs.h"
#include "test_client.h"

namespace rx::test {

struct ServerOptions {
  std::chrono::milliseconds ping_interval{500};
  std::chrono::milliseconds pong_timeout{2000};
  std::chrono::milliseconds session_linger{2000};
  std::chrono::milliseconds agent_grace{1500};
  std::vector<std::string> extra_args;
  std::string listen_host = "127.0.0.1";
  std::string log_level = "debug";
  // Every test client, agent and user shares 127.0.0.1, and tests poll.
  int rate_limit = 2000;
  // Serve HTTPS/WSS with this certificate; the System's loop and its agents trust its CA. Must
  // outlive the System.
  const TestCerts* tls = nullptr;
};

class System {
 public:
  explicit System(ServerOptions options = {});
  ~System();
  System(const System&) = delete;
  System& operator=(const System&) = delete;
  System(System&&) = delete;
  System& operator=(System&&) = delete;

  [[nodiscard]] const std::string& dir() const { return dir_; }

  [[nodiscard]] int port() const { return port_; }

  [[nodiscard]] std::string http_url(const std::string& path = "") const;
  [[nodiscard]] std::string ws_url(const std::string& path = "") const;

  [[nodiscard]] const std::string& jwt_secret() const { return jwt_secret_; }

  // The server's --db: a SQLite file, or a PostgreSQL URL when on_postgres().
  [[nodiscard]] const std::string& db_path() const { return db_path_; }

  [[nodiscard]] bool on_postgres() const { return pg_ != nullptr; }

  // `rexec-server user add NAME --tier TIER [--admin] [--email EMAIL]`; returns the API token
  // it prints.
  std::string add_user(const std::string& name, const std::string& tier = "free",
                       bool admin = false, const std::string& email = "");

  struct Agent {
    std::string id;
    std::string config_path;
    std::unique_ptr<Process> process;
  };

  // `rexec-agent register` (with `token`) then `rexec-agent run` in the background.
  // `run_prefix` goes in front of the `rexec-agent run` command line (e.g. `ip netns exec NS`).
  Agent start_agent(const std::string& token, const std::string& name = "test-agent",
                    const std::vector<std::string>& run_env = {},
                    const std::vector<std::string>& run_prefix = {});
  // Polls GET /api/agents/ID (with `token`) until it says online; false after `timeout`.
  bool wait_online(const std::string& token, const std::string& agent_id,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Starts `rexec-agent run` again for an already registered agent, with `run_env`, and from
  // `binary` when given (an upgrade) instead of the built agent.
  void restart_agent(Agent& agent, const std::vector<std::string>& run_env = {},
                     const std::string& binary = "");

  Process& server() { return *server_; }

  // Stops the server (SIGTERM) and starts it again on the same port and database, with the
  // original arguments plus `extra_args` replacing ServerOptions::extra_args.
  // `hard`: SIGKILL instead of SIGTERM (no clean-up at all).
  void restart_server(const std::vector<std::string>& extra_args, bool hard = false);
  // Prints every child log (server, agents) to stderr; call on failure.
  void dump_logs() const;

  Loop& loop() { return loop_; }

  // The cgroup v2 directory this system's agents put their session cgroups under (they get
  // REXEC_CGROUP_ROOT), made for this System and removed with it, processes and all; empty when
  // no cgroup v2 is writable here (the agents then use process groups).
  [[nodiscard]] const std::string& cgroup_root() const { return cgroup_root_; }

 private:
  std::string cgroup_root_;
  std::string dir_;
  std::unique_ptr<PgTestDb> pg_;
  std::string db_path_;
  std::string jwt_secret_;
  int port_ = 0;
  std::string scheme_ = "http";
  std::string host_ = "127.0.0.1";
  std::string ca_file_;                 // the CA agents trust, when serving TLS
  std::vector<std::string> base_args_;  // serve arguments without --listen and extra_args
  void start_server(const std::string& listen, const std::vector<std::string>& extra_args);
  std::unique_ptr<Process> server_;
  std::vector<std::string> agent_logs_;
  int agents_started_ = 0;
  Loop loop_;
};

// A new empty cgroup v2 directory for a test ("<mount>/rexec-test-<pid>-<n>"), or "" when none
// can be made here. remove_test_cgroup() kills whatever is in it and below, and removes it.
std::string make_test_cgroup();
void remove_test_cgroup(const std::string& path);

// The HOME a test's agents give their shells: an empty directory under `dir` (made if needed),
// so that what they do does not hang on the dotfiles of the machine that runs the tests (a
// version manager's hook that waits on a lock, say). A test that wants its own sets HOME in
// the agent's environment, which comes first.
std::string shell_home(const std::string& dir);

// Paths of the built programs (set by CMake).
std::string server_binary();
std::string agent_binary();
std::string client_binary();

}  // namespace rx::test
