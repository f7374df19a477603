// SPDX-License-Identifier: MIT
// ChildReaper: one per loop. Learns of a watched child's exit from its pidfd (Linux 5.3 and
// later) and from SIGCHLD (a uv_signal_t), and reaps only the pids it was asked to watch, each
// with waitpid(pid, WNOHANG), never waitpid(-1), which would steal other code's children
// (libuv's own uv_spawn children, for one).
#pragma once

#include "rexec/common/unique_fd.h"
#include "rexec/uvx/timer.h"
#include "rexec/uvx/uv_handle.h"

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>

namespace rx::uvx {

struct ExitStatus {
  int exit_code = 0;    // WEXITSTATUS when the child exited; -1 when its status was lost (ECHILD)
  int term_signal = 0;  // the signal that killed it, else 0

  bool operator==(const ExitStatus&) const = default;
};

// Reaps watched children and reports how they ended.
//
// Why a pidfd as well as SIGCHLD: a signal can be lost to the process's own signal plumbing, and
// a lost SIGCHLD would leave a shell unreaped and its session open for good. It happens under
// ThreadSanitizer, whose runtime intercepts signals: in about 1 run in 40 a child's SIGCHLD never
// reached libuv (caught_signals stayed 0) while the child sat as a zombie. A pidfd turns readable
// when its process exits and is watched like any other fd. SIGCHLD stays for kernels without
// pidfd_open (ENOSYS), such as the 3.10 and 4.x kernels the static agent still runs on.
//
// Ownership: owns its SIGCHLD signal handle, a timer, and a pidfd with its poll handle per
// watched child; holds the callbacks. The children stay the caller's: a child that is not
// watched is never waited for here.
// Thread/loop: loop thread only; the loop must outlive the reaper. There should be one reaper
// per loop (several would work, but each SIGCHLD would then be checked by all of them).
// Lifetime: children still watched when the reaper is destroyed are no longer reaped by it, so
// destroy it after the sessions that use it. While at least one pid is watched the reaper keeps
// the loop alive (like a uv_process_t); with none it does not.
class ChildReaper {
 public:
  using ExitCallback = std::function<void(ExitStatus)>;

  // Aborts (REXEC_CHECK) if libuv cannot set up its signal pipe, which happens only when the
  // process is out of fds at start-up.
  explicit ChildReaper(uv_loop_t* loop);
  ~ChildReaper() = default;
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;
  ChildReaper(ChildReaper&&) = delete;
  ChildReaper& operator=(ChildReaper&&) = delete;

  // Reaps `pid` when it exits and then calls `on_exit` (may be empty: reap only) once, on the
  // loop, never from inside watch(). A child that has already exited is caught by a check on the
  // next loop iteration, since its SIGCHLD may have come before the watch. Replaces an earlier
  // watch of the same pid. Precondition: `pid` is a child of this process.
  void watch(pid_t pid, ExitCallback on_exit);

  // Stops watching: the callback will not be called (even if the child already exited in the
  // current round of checks) and the child is not reaped by this object. Unknown pids are ignored.
  void unwatch(pid_t pid);

  [[nodiscard]] bool is_watching(pid_t pid) const { return watched_.contains(pid); }

  [[nodiscard]] std::size_t watched() const { return watched_.size(); }

  // Checks every watched pid now; the SIGCHLD handler calls this. Callbacks may call watch() and
  // unwatch() (a pid watched during the round is checked on the next loop iteration), and may
  // destroy the objects that own the watched children, but not the reaper itself.
  void poll();

 private:
  void update_ref();

  struct Watch {
    ExitCallback on_exit;
    UniqueFd pidfd;                // -1 where the kernel has no pidfd_open
    UvHandle<uv_poll_t> readable;  // declared after pidfd: closed (off epoll) before it
  };

  UvHandle<uv_signal_t> signal_;
  Timer recheck_;  // a poll right after watch(): the child may have exited already
  std::map<pid_t, Watch> watched_;
};

}  // namespace rx::uvx
