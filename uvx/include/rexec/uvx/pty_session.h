// SPDX-License-Identifier: MIT
// PtySession: one shell on a PTY, driven by the loop. Output is read from the master with a uv
// pipe (reads start paused until start_reading(), so nothing is lost before a subscriber
// exists); input goes through a bounded write queue; the session ends only when both EOF on the
// master and the child's exit have arrived, in either order.
#pragma once

#include "rexec/common/result.h"
#include "rexec/pty/pty_process.h"
#include "rexec/uvx/child_reaper.h"
#include "rexec/uvx/timer.h"
#include "rexec/uvx/uv_handle.h"

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace rx::uvx {

struct PtySessionOptions {
  std::size_t input_queue_limit = 1U << 20U;    // bytes of input queued to the PTY, at most
  std::size_t read_buffer_bytes = 64U * 1024U;  // one read; keeps a WS frame well under 1 MiB
  // After the child exits, how long to wait for EOF (background jobs may hold the tty open).
  std::chrono::milliseconds drain_timeout{1000};
};

// Loop thread only. The loop and the reaper must outlive the session. on_output must not
// destroy the session; on_closed may (it is the last call the session makes).
class PtySession {
 public:
  struct Callbacks {
    std::function<void(std::string_view bytes)> on_output;  // view valid during the call
    std::function<void(ExitStatus)> on_closed;              // exactly once
  };

  // Takes over `process` (its master fd goes to a uv pipe). Errors: kSystem from uv_pipe_open.
  static Result<std::unique_ptr<PtySession>> start(uv_loop_t* loop, ChildReaper& reaper,
                                                   pty::PtyProcess process, Callbacks callbacks,
                                                   PtySessionOptions options = {});
  // A session destroyed before on_closed kills its process group (SIGKILL); the reaper still
  // reaps the child.
  ~PtySession();
  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;
  PtySession(PtySession&&) = delete;
  PtySession& operator=(PtySession&&) = delete;

  void start_reading();
  void pause_reading();  // backpressure: the shell blocks once the PTY buffer fills

  void resume_reading() { start_reading(); }

  [[nodiscard]] bool is_reading() const { return reading_; }

  // Queues input. Errors: kLimit when it would exceed input_queue_limit (nothing is queued);
  // kClosed after EOF.
  [[nodiscard]] Status write(std::string bytes);

  [[nodiscard]] std::size_t input_queued() const { return input_queued_; }

  // Errors: kInvalidArgument (size out of range), kSystem.
  [[nodiscard]] Status resize(pty::PtySize size);

  // SIGHUP to the process group now, SIGKILL after `grace` if the child is still alive.
  void terminate(std::chrono::milliseconds grace);

  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] bool has_exited() const { return exited_; }

 private:
  PtySession(uv_loop_t* loop, ChildReaper& reaper, pid_t pid, Callbacks callbacks,
             PtySessionOptions options);
  void on_read(ssize_t nread);
  void on_child_exit(ExitStatus status);
  void on_eof();
  void maybe_close();
  void signal_group(int sig) const;

  friend struct PtySessionAccess;
  ChildReaper& reaper_;
  pid_t pid_;
  Callbacks callbacks_;
  PtySessionOptions options_;
  UvHandle<uv_pipe_t> pipe_;
  Timer kill_timer_;
  Timer drain_timer_;
  std::string read_buffer_;
  std::shared_ptr<PtySession*> self_;  // cleared on destruction; held by writes and the reaper
  std::size_t input_queued_ = 0;
  bool reading_ = false;
  bool eof_ = false;
  bool exited_ = false;
  bool closed_ = false;
  ExitStatus status_;
};

}  // namespace rx::uvx
