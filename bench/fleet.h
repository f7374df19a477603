// SPDX-License-Identifier: MIT
// Fleet: a crowd of simulated agents for rexec-bench's server-scale parts (docs/performance.md,
// "Scale"). It runs in a child process of its own (`rexec-bench --fleet FILE`), so that its work
// never lands in the bench's own loop, where the keystroke echo is timed. Each simulated agent
// dials /ws/agent/<id> with its own agent token, sends system_info, then stats every 5 s as a
// real agent does, answers the server's pings, and reconnects with the agent's own backoff
// (rx::agent::Backoff: full jitter, 1 s base, 60 s cap, an immediate first retry after a
// connection that lasted over 60 s). Connections are spread over several loopback source
// addresses, so that 100,000 of them do not run out of client ports.
//
// The parent drives the child with one-line commands and reads one JSON line back for each:
// `ramp` (connect everyone, at most a few thousand handshakes at a time), `status`, `drop`
// (reset every connection at once, as a load balancer that flaps does), `quit`.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace rx::bench {

struct FleetAgent {
  std::string id;
  std::string token;  // the agent's own rexec_ token (scope "agent")
};

// The child: `rexec-bench --fleet FILE`. FILE holds, one a line: "host port sources
// stats_interval_ms" and then "id token" per agent. Returns the exit code.
int fleet_main(const std::string& file);

// The parent's handle on the child. Loop thread of the bench only. The destructor ends the child.
class FleetProcess {
 public:
  // Writes the agents' file under `dir` and starts `self` (the bench binary) in fleet mode.
  // `sources`: how many loopback source addresses (127.0.0.2 onwards). Throws on failure.
  FleetProcess(const std::string& self, const std::string& dir, const std::string& host, int port,
               const std::vector<FleetAgent>& agents, int sources,
               std::chrono::milliseconds stats_interval);
  ~FleetProcess();
  FleetProcess(const FleetProcess&) = delete;
  FleetProcess& operator=(const FleetProcess&) = delete;
  FleetProcess(FleetProcess&&) = delete;
  FleetProcess& operator=(FleetProcess&&) = delete;

  // Sends a command and returns the child's answer (a JSON object). Throws when the child does
  // not answer within `timeout`.
  nlohmann::json command(const std::string& line,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string pending_;  // bytes read after the last answer line
};

}  // namespace rx::bench
