// SPDX-License-Identifier: MIT
// ChildReaper: one per loop. Watches SIGCHLD with a uv_signal_t and reaps only the pids it was
// asked to watch, each with waitpid(pid, WNOHANG) — never waitpid(-1), which would steal other
// code's children (libuv's own uv_spawn children, for one).
#pragma once

#include "rexec/uvx/timer.h"
#include "rexec/uvx/uv_handle.h"

#include <sys/types.h>

#include <functional>
#include <map>

namespace rx::uvx {

struct ExitStatus {
  int exit_code = 0;    // WEXITSTATUS when the child exited normally
  int term_signal = 0;  // the signal that killed it, else 0
  bool operator==(const ExitStatus&) const = default;
};

// Loop thread only. The loop must outlive the reaper; children still watched when it is
// destroyed are no longer reaped by it.
class ChildReaper {
 public:
  explicit ChildReaper(uv_loop_t* loop);
  ~ChildReaper() = default;
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;
  ChildReaper(ChildReaper&&) = delete;
  ChildReaper& operator=(ChildReaper&&) = delete;

  // Calls `on_exit` once when `pid` exits (also if it already has). Replaces an earlier watch of
  // the same pid. The callback may call watch() and unwatch().
  void watch(pid_t pid, std::function<void(ExitStatus)> on_exit);
  // Stops watching; the child is then not reaped by this object.
  void unwatch(pid_t pid);

  [[nodiscard]] std::size_t watched() const { return watched_.size(); }

  // Checks every watched pid now (the SIGCHLD handler calls this).
  void poll();

 private:
  UvHandle<uv_signal_t> signal_;
  Timer recheck_;  // a poll right after watch(): the child may have exited already
  std::map<pid_t, std::function<void(ExitStatus)>> watched_;
};

}  // namespace rx::uvx
