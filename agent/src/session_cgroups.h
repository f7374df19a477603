// SPDX-License-Identifier: MIT
// Per-session cgroups (cgroup v2): each shell and everything it starts lives in its own child
// cgroup under the agent's, with optional memory.max, pids.max and cpu.max; closing the session
// kills the whole cgroup (cgroup.kill), so no grandchild, nohup'ed or daemonised process outlives
// it; and each session's CPU and memory are read from it for `stats`. Where cgroup v2 cannot be
// used, sessions fall back to their process group (docs/architecture.md, "Session isolation").
#pragma once

#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"

#include <cstdint>
#include <optional>
#include <string>

namespace rx::agent {

// Values written as they are to the session cgroup's files; empty: not set.
struct CgroupLimits {
  std::string memory_max;  // memory.max: bytes, or "max"
  std::string pids_max;    // pids.max: a count, or "max"
  std::string cpu_max;     // cpu.max: "QUOTA PERIOD" in µs, e.g. "50000 100000" for half a CPU

  [[nodiscard]] bool any() const {
    return !memory_max.empty() || !pids_max.empty() || !cpu_max.empty();
  }
};

class SessionCgroups {
 public:
  // Session cgroups go under `root` (a directory on a cgroup v2 mount), or under this process's
  // own cgroup when `root` is empty. Checks that a child cgroup can be made and removed there.
  // With limits, enables their controllers for the children (cgroup.subtree_control); since
  // cgroup v2 allows that only in a cgroup with no process of its own, this process first moves
  // into "<root>/agent" when it is in `root` itself (under systemd with Delegate=yes, the service's
  // cgroup is `root`). Errors: kUnavailable with the reason (no cgroup v2, not writable, a
  // controller the limits need is missing, ...).
  [[nodiscard]] static Result<SessionCgroups> open(std::string root, CgroupLimits limits);

  struct Made {
    std::string path;  // the session's cgroup directory
    UniqueFd procs;    // its cgroup.procs, open for writing: the child writes "0" to join
  };

  // mkdir "<root>/session-<id>-<pid>-<n>", then the limits. Errors: kSystem with the file that
  // failed (the directory is removed again).
  [[nodiscard]] Result<Made> create(const std::string& session_id);

  [[nodiscard]] const std::string& root() const { return root_; }

 private:
  SessionCgroups(std::string root, CgroupLimits limits)
      : root_(std::move(root)), limits_(std::move(limits)) {}

  std::string root_;
  CgroupLimits limits_;
  std::uint64_t next_ = 0;
};

// This process's cgroup v2 directory (under the cgroup2 mount). Errors: kUnavailable when no
// cgroup v2 hierarchy is mounted or we are not in one.
[[nodiscard]] Result<std::string> own_cgroup();

// Moves this process into `path`, a cgroup v2 directory made if missing. Errors: kSystem.
[[nodiscard]] Status join_cgroup(const std::string& path);

// Sends `sig` to every process in the cgroup at `path` (read from cgroup.procs; best effort).
void signal_cgroup(const std::string& path, int sig);

// Kills every process in the cgroup at `path`: writes "1" to cgroup.kill (Linux 5.14), else
// sends SIGKILL to each pid in cgroup.procs. Errors: kSystem when neither works.
Status kill_cgroup(const std::string& path);

// Removes the (empty) cgroup at `path`: true when it is gone; false while processes remain in
// it (EBUSY: they are still dying) or on another error.
bool remove_cgroup(const std::string& path);

struct CgroupUsage {
  std::uint64_t cpu_usec = 0;           // cpu.stat usage_usec
  std::optional<std::uint64_t> memory;  // memory.current, when the memory controller is on
  std::uint32_t pids = 0;               // lines of cgroup.procs
};

// Reads the cgroup's usage. Errors: kSystem / kNotFound when cpu.stat cannot be read.
Result<CgroupUsage> read_cgroup_usage(const std::string& path);

}  // namespace rx::agent
