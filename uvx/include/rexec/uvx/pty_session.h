// SPDX-License-Identifier: MIT
// PtySession: one shell on a PTY, driven by the loop. The master is watched with a uv_poll_t and
// read until read() itself reports EIO (reads start paused, so nothing is lost before a subscriber
// exists); input goes through a bounded queue; the session ends only when both EOF on the master
// and the child's exit have arrived, in either order, so every byte the shell wrote is delivered.
//
// Why uv_poll and not uv_pipe_open + uv_read_start: libuv's stream reader reports EOF as soon as
// epoll shows POLLHUP after a read that did not fill the buffer. A PTY master raises POLLHUP when
// the slave side closes, while the kernel may still be moving the shell's last output into the
// master's 4 KiB line buffer, and every master read is "short". The stream reader lost the tail
// of `seq 1 20000` once in every few runs (Linux 6.18, libuv 1.44); reading until EIO lost
// nothing in 300 runs, because the kernel flushes pending input before it returns EIO.
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
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace rx::uvx {

struct PtySessionOptions {
  // Bytes of input accepted but not yet written to the PTY. A shell that does not read its input
  // (or a PTY whose input buffer is full) must not make the agent buffer without bound.
  std::size_t input_queue_limit = std::size_t{1} << 20U;
  // Bytes per on_output call, at most. Consecutive reads (a PTY master hands out at most 4 KiB
  // each) are gathered up to this size, so busy output leaves in few, large chunks; 64 KiB keeps a
  // v2 frame (2 + 64 header bytes) far below the 1 MiB frame limit.
  // The buffer itself is one per thread, shared by all sessions.
  std::size_t read_buffer_bytes = std::size_t{64} << 10U;
  // After the child exits, how long to keep reading for EOF. EOF comes at once unless a
  // background job still holds the terminal; then the session stops waiting after this long and
  // closes the master, which hangs the terminal up for that job. If reading is paused when the
  // time is up, the wait is extended by another drain_timeout: unread output is never dropped.
  std::chrono::milliseconds drain_timeout{2000};
};

// A shell (or any child) on a PTY, on a libuv loop.
//
// Ownership: takes over the PtyProcess: the session owns the master fd (watched by a uv_poll_t,
// closed with the session) and keeps the parent's slave descriptor until the child exits (see
// pty::PtyProcess). Queued input is owned by the session; no libuv request ever points at it. The
// child is watched by `reaper`, which reaps it even if the session is destroyed first.
// Thread/loop: every method must be called on the loop thread; callbacks run on it.
// Lifetime: `loop` and `reaper` must outlive the session. Destroying the session at any time is
// safe (the poll handle closes through UvHandle, queued input is freed, and no callback runs
// afterwards); if the child has not exited yet it is sent SIGKILL (to its process group), since
// nobody would read its terminal again.
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
  // Errors: kInvalidArgument (no child or master fd, read_buffer_bytes == 0, null loop); kSystem
  // from uv_poll_init. On error the child is sent SIGKILL and the reaper still reaps it; no
  // callback is ever called.
  [[nodiscard]] static Result<std::unique_ptr<PtySession>> start(uv_loop_t* loop,
                                                                 ChildReaper& reaper,
                                                                 pty::PtyProcess process,
                                                                 Callbacks callbacks = {},
                                                                 PtySessionOptions options = {});
  // Takes over the master of a shell that is not our child: the shell keeper's (agent/src/
  // keeper.h). Its exit is reported through child_exited(); terminate() and the destructor send
  // no signal, since the pid may already be reaped and reused by the time we would; whoever owns
  // the child ends it. Reads start paused. Errors: kInvalidArgument (pid, fd, null loop, zero
  // read_buffer_bytes); kSystem from uv_poll_init.
  [[nodiscard]] static Result<std::unique_ptr<PtySession>> adopt(uv_loop_t* loop, pid_t pid,
                                                                 UniqueFd master,
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

  // Sends `bytes` to the PTY as input; never blocks. What the PTY cannot take now is queued (owned
  // by the session) and written when the master becomes writable, in order. If the terminal's
  // input side is gone (EIO), queued input is dropped: EOF follows.
  // Errors: kLimit when input_queued() + bytes.size() would exceed input_queue_limit (nothing is
  // queued; the caller may retry later or drop); kClosed after EOF or close.
  [[nodiscard]] Status write(std::string bytes);

  // Bytes accepted by write() and not yet written to the PTY.
  [[nodiscard]] std::size_t input_queued() const { return input_queued_; }

  // TIOCSWINSZ; the shell gets SIGWINCH. Errors: kInvalidArgument (size outside
  // pty::is_valid_size); kClosed after close; kSystem from ioctl.
  [[nodiscard]] Status resize(pty::PtySize size);

  // Ends the shell: SIGHUP (and SIGCONT, so a stopped job sees it) to its process group now, and
  // SIGKILL to the group after `timeout` if the child has not exited by then. on_closed follows
  // the exit as usual, which needs reading to be on. A no-op after the child exited or when
  // already terminating (the first deadline stands), and for an adopted session (its owner ends
  // it).
  void terminate(std::chrono::milliseconds timeout);

  // An adopted session's child has exited: as the reaper's report is for one we started. A
  // no-op after the first report.
  void child_exited(ExitStatus status);

  // An adopted session whose exit can no longer be reported (its keeper is gone): EOF on the
  // master, which comes once every process on the terminal has closed it, ends the session with
  // the status unknown (exit_code -1).
  void end_at_eof();

  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] bool has_exited() const { return exited_; }

  [[nodiscard]] bool is_closed() const { return closed_; }

 private:
  struct Trampolines;

  PtySession(uv_loop_t* loop, pid_t pid, Callbacks callbacks, PtySessionOptions options);
  Status watch_master(uv_loop_t* loop, int fd);
  void handle_poll(int status);
  void read_available();
  void flush_input();
  void update_poll();
  void handle_eof();
  void handle_child_exit(ExitStatus status);
  void arm_drain_timer();
  void maybe_close();
  void signal_group(int sig) const;

  pid_t pid_;
  Callbacks callbacks_;
  PtySessionOptions options_;
  UniqueFd master_;           // declared before poll_: the poll handle is closed first
  UvHandle<uv_poll_t> poll_;  // watches master_; reset once closed
  int poll_events_ = 0;       // UV_READABLE / UV_WRITABLE currently requested
  UniqueFd slave_;            // the parent's slave descriptor, kept until the child exits
  Timer kill_timer_;
  Timer drain_timer_;
  std::deque<std::string> input_;  // queued input; the front may be partly written
  std::size_t input_offset_ = 0;   // bytes of input_.front() already written
  std::size_t input_queued_ = 0;
  // Points at this session until destruction; the reaper's callback holds a weak_ptr, so a late
  // exit report never touches a destroyed session.
  std::shared_ptr<PtySession*> self_;
  ExitStatus status_;
  bool reading_ = false;
  bool eof_ = false;
  bool exited_ = false;
  bool terminating_ = false;
  bool closed_ = false;
  bool owns_child_ = true;  // false when adopted
  bool end_at_eof_ = false;
};

}  // namespace rx::uvx
