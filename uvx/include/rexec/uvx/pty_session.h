// SPDX-License-Identifier: MIT
// PtySession: one shell on a PTY, driven by the loop. Output is read from the master through a
// uv pipe (reads start paused, so nothing is lost before a subscriber exists); input goes through
// a bounded write queue; the session ends only when both EOF on the master and the child's exit
// have arrived, in either order, so every byte the shell wrote is delivered first.
#pragma once

#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"
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
  // Bytes of input accepted but not yet written to the PTY. A shell that does not read its input
  // (or a PTY whose input buffer is full) must not make the agent buffer without bound.
  std::size_t input_queue_limit = std::size_t{1} << 20U;
  // Bytes per read from the master: one on_output call carries at most this much, which keeps a
  // v2 frame (2 + 64 header bytes) far below the 1 MiB frame limit.
  std::size_t read_buffer_bytes = std::size_t{64} << 10U;
  // After the child exits, how long to keep reading for EOF. EOF comes at once unless a
  // background job still holds the terminal; then the session closes after this much reading
  // time (time spent paused does not count), which hangs the terminal up for that job.
  std::chrono::milliseconds drain_timeout{2000};
};

// A shell (or any child) on a PTY, on a libuv loop.
//
// Ownership: takes over the PtyProcess: its master fd goes to a uv_pipe_t (closed with the
// session), and the parent's slave descriptor is kept until the child exits (see
// pty::PtyProcess). The child is watched by `reaper`, which reaps it even if the session is
// destroyed first.
// Thread/loop: every method must be called on the loop thread; callbacks run on it.
// Lifetime: `loop` and `reaper` must outlive the session. Destroying the session at any time is
// safe (handles close through UvHandle, queued writes are cancelled and freed by libuv, and no
// callback runs afterwards); if the child has not exited yet it is sent SIGKILL (to its process
// group), since nobody would read its terminal again.
// Reading: starts paused; nothing is read, and so the session cannot close, until
// start_reading(). pause_reading()/resume_reading() are the backpressure valve (the caller keeps
// its own high/low water marks): while paused the PTY fills and the shell blocks on write.
// Closing: on_closed fires exactly once, after EOF on the master (EIO counts as EOF) and the
// child's exit have both arrived, and after all output read before EOF has gone to on_output.
class PtySession {
 public:
  // `bytes` is valid only during the call. The callback may call any method of the session
  // (pause_reading, write, ...) but must not destroy it.
  using OutputCallback = std::function<void(std::string_view bytes)>;
  // Called once, as the session's last call; it may destroy the session.
  using ClosedCallback = std::function<void(ExitStatus)>;

  struct Callbacks {
    OutputCallback on_output;
    ClosedCallback on_closed;
  };

  // Takes over `process` and starts watching its child. Reads start paused.
  // Errors: kInvalidArgument (no master fd, read_buffer_bytes == 0, null loop); kSystem from
  // uv_pipe_init / uv_pipe_open. On error the child is sent SIGKILL and the reaper still reaps
  // it; no callback is ever called.
  [[nodiscard]] static Result<std::unique_ptr<PtySession>> start(uv_loop_t* loop,
                                                                 ChildReaper& reaper,
                                                                 pty::PtyProcess process,
                                                                 Callbacks callbacks = {},
                                                                 PtySessionOptions options = {});
  ~PtySession();
  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;
  PtySession(PtySession&&) = delete;
  PtySession& operator=(PtySession&&) = delete;

  // Replace the callbacks given to start(). Set them before start_reading(): output and closing
  // need reading, so nothing is missed.
  void on_output(OutputCallback fn) { callbacks_.on_output = std::move(fn); }

  void on_closed(ClosedCallback fn) { callbacks_.on_closed = std::move(fn); }

  // Starts (or resumes) reading the master. A no-op after EOF or close. Idempotent.
  void start_reading();

  // Stops reading; output stays in the PTY and the shell blocks once it is full. Idempotent.
  void pause_reading();

  void resume_reading() { start_reading(); }

  [[nodiscard]] bool is_reading() const { return reading_; }

  // Queues `bytes` as input to the PTY; never blocks. The bytes are owned by the write request
  // until libuv is done with them.
  // Errors: kLimit when input_queued() + bytes.size() would exceed input_queue_limit (nothing is
  // queued; the caller may retry later or drop); kClosed after EOF or close; kSystem from
  // uv_write.
  [[nodiscard]] Status write(std::string bytes);

  // Bytes accepted by write() and not yet written to the PTY.
  [[nodiscard]] std::size_t input_queued() const { return input_queued_; }

  // TIOCSWINSZ; the shell gets SIGWINCH. Errors: kInvalidArgument (size outside
  // pty::is_valid_size); kClosed after close; kSystem from ioctl.
  [[nodiscard]] Status resize(pty::PtySize size);

  // Ends the shell: SIGHUP (and SIGCONT, so a stopped job sees it) to its process group now, and
  // SIGKILL to the group after `timeout` if the child has not exited by then. on_closed follows
  // the exit as usual, which needs reading to be on. A no-op after the child exited or when
  // already terminating (the first deadline stands).
  void terminate(std::chrono::milliseconds timeout);

  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] bool has_exited() const { return exited_; }

  [[nodiscard]] bool is_closed() const { return closed_; }

 private:
  struct Trampolines;

  PtySession(uv_loop_t* loop, pid_t pid, Callbacks callbacks, PtySessionOptions options);
  void handle_read(ssize_t nread);
  void handle_eof();
  void handle_child_exit(ExitStatus status);
  void arm_drain_timer();
  void maybe_close();
  void signal_group(int sig) const;

  pid_t pid_;
  Callbacks callbacks_;
  PtySessionOptions options_;
  UvHandle<uv_pipe_t> pipe_;  // the master; reset once closed
  UniqueFd slave_;            // the parent's slave descriptor, kept until the child exits
  Timer kill_timer_;
  Timer drain_timer_;
  std::string read_buffer_;
  // Points at this session until destruction; write requests hold a copy and the reaper's
  // callback a weak_ptr, so late libuv callbacks never touch a destroyed session.
  std::shared_ptr<PtySession*> self_;
  std::size_t input_queued_ = 0;
  ExitStatus status_;
  bool reading_ = false;
  bool eof_ = false;
  bool exited_ = false;
  bool terminating_ = false;
  bool closed_ = false;
};

}  // namespace rx::uvx
