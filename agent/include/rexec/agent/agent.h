// SPDX-License-Identifier: MIT
// The agent's run loop (`rexec-agent run`): dials the server (PROTOCOL §3), reconnects forever
// with backoff, serves PTY shells and exec requests, and reports system_info and stats.
#pragma once

#include "rexec/agent/config.h"
#include "rexec/common/result.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace rx::agent {

// Exit status for a permanent refusal (401/403/404 on the handshake, PROTOCOL §3.1). Distinct
// so a service manager can stop restarting (EX_CONFIG from sysexits.h).
inline constexpr int kExitPermanent = 78;

struct RunOptions {
  AgentConfig config;
  std::chrono::milliseconds stats_interval{5000};  // PROTOCOL §3.2
  std::chrono::milliseconds ping_interval{15000};  // our own keepalive pings
  std::chrono::milliseconds idle_timeout{45000};   // silence from the server → reconnect (§3.3)
  std::chrono::milliseconds stop_grace{5000};      // SIGHUP → SIGKILL for shells
  std::chrono::milliseconds handshake_timeout{30000};
  std::chrono::milliseconds backoff_base{1000};  // reconnect delay window: base·2^n, full jitter
  std::chrono::milliseconds backoff_cap{60000};
  std::string disk_path = "/";
  std::size_t max_frame_bytes = 1U << 20U;
  std::size_t link_high_water = 512U * 1024U;  // bytes queued to the server before PTYs pause
  std::size_t link_low_water = 128U * 1024U;
  std::size_t exec_output_limit = 1U << 20U;
  std::size_t max_sessions = 64;  // shells open at once; a shell_start past it gets shell_error
  bool v1_only = false;           // offer only rexec.v1 (REXEC_PROTOCOL=v1: tests, benchmarks)
  // Shell handover: when non-zero, shells are children of a keeper process and outlive this one
  // by this long, for the next `rexec-agent run` to take them over (docs/architecture.md, "Shell
  // handover"). Zero: shells end with the agent.
  std::chrono::milliseconds handover{0};
  // Session isolation (docs/architecture.md, "Session isolation"): each shell in its own cgroup
  // v2 under `cgroup_root` (empty: our own cgroup), killed whole when the session closes, with
  // these limits when set (memory.max, pids.max, cpu.max syntax). Without cgroup v2: process
  // groups, and stats say "process_group".
  bool session_cgroups = true;
  std::string cgroup_root;
  std::string session_memory_max;
  std::string session_pids_max;
  std::string session_cpu_max;
};

// Runs until SIGTERM or SIGINT (returns 0 after an orderly shutdown: shells get SIGHUP, the
// loop closes with no handle left) or a permanent refusal (returns kExitPermanent). Never
// returns because the server is down or slow. Must be called on the main thread.
int run_agent(const RunOptions& options);

// The shell keeper's process (`rexec-agent keeper --agent-id ID`, started by run_agent when
// handover is on). Returns its exit status.
int run_keeper(const std::string& agent_id);

// Asks the running agent of `agent_id` how it is, on its status socket (`rexec-agent status`;
// docs/install.md lists the fields). Errors: kUnavailable (no agent of that id runs here),
// kPermission (it answers only its own user: root under systemd), kTimeout, kBadValue, kSystem.
[[nodiscard]] Result<nlohmann::json> query_status(const std::string& agent_id,
                                                  std::chrono::milliseconds timeout);

}  // namespace rx::agent
