// SPDX-License-Identifier: MIT
// PtySession: the PTY master under a uv_poll_t, read until EIO; a bounded input queue; and the
// close rule (EOF and child exit, in either order).
#include "rexec/uvx/pty_session.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <memory>

namespace rx::uvx {

namespace {

// Reads per wake-up, at most: with a 4 KiB line buffer per read that is up to 128 KiB before the
// loop gets to run other handles (libuv's stream reader uses the same bound).
constexpr int kMaxReadsPerWakeup = 32;

// One read buffer per thread, shared by every session on it, so an idle session costs no
// buffer. Safe because a read and its on_output call finish before any other session reads, and
// on_output copies what it keeps. Not zeroed: a page of it costs memory only once a read has
// filled it.
char* shared_read_buffer(std::size_t size) {
  thread_local std::unique_ptr<char[]> buffer;
  thread_local std::size_t capacity = 0;
  if (capacity < size) {
    buffer = std::make_unique_for_overwrite<char[]>(size);
    capacity = size;
  }
  return buffer.get();
}

}  // namespace

struct PtySession::Trampolines {
  static void on_poll(uv_poll_t* handle, int status, int /*events*/) {
    // The event bits are not needed: POLLHUP arrives without any of them, and a read or write
    // that is not ready just says EAGAIN.
    if (auto* s = static_cast<PtySession*>(handle->data)) s->handle_poll(status);
  }
};

PtySession::PtySession(uv_loop_t* loop, pid_t pid, Callbacks callbacks, PtySessionOptions options)
    : pid_(pid),
      callbacks_(std::move(callbacks)),
      options_(options),
      kill_timer_(loop),
      drain_timer_(loop),
      self_(std::make_shared<PtySession*>(this)) {}

Result<std::unique_ptr<PtySession>> PtySession::start(uv_loop_t* loop, ChildReaper& reaper,
                                                      pty::PtyProcess process, Callbacks callbacks,
                                                      PtySessionOptions options) {
  const pid_t pid = process.pid();
  if (pid <= 0 || process.master_fd() < 0) {
    return Error(Errc::kInvalidArgument, "pty process has no child or no master fd");
  }
  // From here on the child exists: any failure kills it and leaves it to the reaper.
  const auto abandon = [&reaper, &process, pid](Error e) -> Error {
    (void)process.signal_group(SIGKILL);
    reaper.watch(pid, nullptr);
    return e;
  };
  if (loop == nullptr || options.read_buffer_bytes == 0) {
    return abandon(Error(Errc::kInvalidArgument, "null loop or zero read_buffer_bytes"));
  }
  std::unique_ptr<PtySession> s(new PtySession(loop, pid, std::move(callbacks), options));
  if (auto st = s->watch_master(loop, process.master_fd()); !st) return abandon(st.error());
  s->master_ = UniqueFd(process.release_master());
  s->slave_ = process.take_slave();
  std::weak_ptr<PtySession*> weak = s->self_;
  reaper.watch(pid, [weak](ExitStatus st) {
    if (const auto ref = weak.lock(); ref && *ref != nullptr) (*ref)->handle_child_exit(st);
  });
  return s;
}

Result<std::unique_ptr<PtySession>> PtySession::adopt(uv_loop_t* loop, pid_t pid, UniqueFd master,
                                                      Callbacks callbacks,
                                                      PtySessionOptions options) {
  if (loop == nullptr || pid <= 0 || !master || options.read_buffer_bytes == 0) {
    return Error(Errc::kInvalidArgument, "adopt: bad pid, master fd, loop or read_buffer_bytes");
  }
  std::unique_ptr<PtySession> s(new PtySession(loop, pid, std::move(callbacks), options));
  s->owns_child_ = false;
  if (auto st = s->watch_master(loop, master.get()); !st) return st.error();
  s->master_ = std::move(master);
  return s;
}

Status PtySession::watch_master(uv_loop_t* loop, int fd) {
  auto* poll = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  if (const int rc = uv_poll_init(loop, poll, fd); rc != 0) {
    delete poll;  // NOLINT(cppcoreguidelines-owning-memory): never initialised, nothing to close
    return Error::from_uv("uv_poll_init", rc);
  }
  poll_ = UvHandle<uv_poll_t>(poll);
  poll->data = this;
  return {};
}

void PtySession::child_exited(ExitStatus status) {
  if (!exited_) handle_child_exit(status);
}

void PtySession::end_at_eof() {
  end_at_eof_ = true;
  if (eof_ && !exited_) handle_child_exit({-1, 0});
}

PtySession::~PtySession() {
  *self_ = nullptr;
  // The reaper's watch stays: its callback finds self_ cleared and only reaps.
  if (!exited_ && owns_child_) signal_group(SIGKILL);
  // Members: poll_ is closed (and taken off epoll) before master_ is closed.
}

void PtySession::signal_group(int sig) const {
  // The shell leads its own process group (setsid), so -pid names it. ESRCH: already gone.
  if (pid_ > 0) (void)::kill(-pid_, sig);
}

void PtySession::update_poll() {
  if (!poll_) return;
  int events = 0;
  if (reading_) events |= UV_READABLE;
  if (!input_.empty()) events |= UV_WRITABLE;
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    (void)uv_poll_stop(poll_.get());
  } else if (uv_poll_start(poll_.get(), events, Trampolines::on_poll) != 0) {
    poll_events_ = 0;  // cannot happen for a valid handle; stop waiting on it
  }
}

void PtySession::start_reading() {
  if (reading_ || eof_ || !poll_) return;
  reading_ = true;
  update_poll();
}

void PtySession::pause_reading() {
  if (!reading_) return;
  reading_ = false;
  update_poll();
}

void PtySession::handle_poll(int status) {
  if (status < 0) {
    // POLLERR: libuv has stopped the handle. A hung-up master reads as EOF, so drain and end.
    poll_events_ = 0;
    const std::weak_ptr<PtySession*> alive = self_;
    if (reading_) read_available();  // may close and destroy the session
    if (!alive.expired()) handle_eof();
    return;
  }
  if (!input_.empty()) flush_input();
  if (reading_) read_available();  // may close and destroy the session: nothing after this
}

void PtySession::read_available() {
  char* const data = shared_read_buffer(options_.read_buffer_bytes);
  const std::size_t size = options_.read_buffer_bytes;
  std::size_t filled = 0;
  bool end = false;
  for (int i = 0; i < kMaxReadsPerWakeup && !end; ++i) {
    const ssize_t n = ::read(master_.get(), data + filled, size - filled);
    if (n > 0) {
      filled += static_cast<std::size_t>(n);
      if (filled < size) continue;
      if (callbacks_.on_output) callbacks_.on_output(std::string_view(data, filled));
      filled = 0;
      if (!reading_) return;  // paused by the callback
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // EIO: every slave descriptor is closed and the kernel has handed over all pending output.
    // 0 (a hung-up master) and any other error end the output too.
    end = true;
  }
  if (filled > 0 && callbacks_.on_output) {
    callbacks_.on_output(std::string_view(data, filled));
  }
  if (end) handle_eof();  // may close and destroy the session: nothing after this
}

void PtySession::flush_input() {
  while (!input_.empty()) {
    const std::string& front = input_.front();
    const ssize_t n =
        ::write(master_.get(), front.data() + input_offset_, front.size() - input_offset_);
    if (n > 0) {
      const auto written = static_cast<std::size_t>(n);
      input_offset_ += written;
      input_queued_ -= written;
      if (input_offset_ == front.size()) {
        input_.pop_front();
        input_offset_ = 0;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // EIO: nobody holds the slave side any more, so nobody will read this input.
    input_.clear();
    input_offset_ = 0;
    input_queued_ = 0;
  }
  update_poll();
}

void PtySession::handle_eof() {
  if (eof_) return;
  eof_ = true;
  reading_ = false;
  input_.clear();
  input_offset_ = 0;
  input_queued_ = 0;
  update_poll();
  drain_timer_.stop();
  if (end_at_eof_ && !exited_) {
    handle_child_exit({-1, 0});  // closes, and may destroy the session: nothing after this
    return;
  }
  maybe_close();
}

void PtySession::arm_drain_timer() {
  drain_timer_.start(options_.drain_timeout, [this] {
    if (!reading_) {
      arm_drain_timer();  // paused by the consumer: unread output is not abandoned
      return;
    }
    handle_eof();  // a background job holds the terminal; closing the master hangs it up
  });
}

void PtySession::handle_child_exit(ExitStatus status) {
  exited_ = true;
  status_ = status;
  kill_timer_.stop();
  // Our slave descriptor kept EIO away while the shell ran; without it, EIO now marks the end of
  // what the shell (and anything else on the terminal) wrote.
  slave_.reset();
  if (!eof_) arm_drain_timer();
  maybe_close();
}

void PtySession::maybe_close() {
  if (closed_ || !eof_ || !exited_) return;
  closed_ = true;
  drain_timer_.stop();
  kill_timer_.stop();
  poll_.reset();    // off epoll first...
  master_.reset();  // ...then close the master: the terminal hangs up for anything still on it
  slave_.reset();
  callbacks_.on_output = nullptr;
  const ClosedCallback on_closed = std::move(callbacks_.on_closed);
  callbacks_.on_closed = nullptr;
  if (on_closed) on_closed(status_);  // may destroy *this: nothing after this line
}

Status PtySession::write(std::string bytes) {
  if (closed_ || eof_ || !poll_) return Error(Errc::kClosed, "session input is closed");
  if (bytes.empty()) return {};
  if (bytes.size() > options_.input_queue_limit - input_queued_) {
    return Error(Errc::kLimit, "pty input queue full");
  }
  input_queued_ += bytes.size();
  input_.push_back(std::move(bytes));
  flush_input();
  return {};
}

Status PtySession::resize(pty::PtySize size) {
  if (!pty::is_valid_size(size)) {
    return Error(Errc::kInvalidArgument, "terminal size out of range");
  }
  if (closed_ || !master_) return Error(Errc::kClosed, "session is closed");
  return pty::set_window_size(master_.get(), size);
}

void PtySession::terminate(std::chrono::milliseconds timeout) {
  if (exited_ || terminating_ || !owns_child_) return;
  terminating_ = true;
  signal_group(SIGHUP);
  signal_group(SIGCONT);
  kill_timer_.start(timeout, [this] {
    if (!exited_) signal_group(SIGKILL);
  });
}

}  // namespace rx::uvx
