// SPDX-License-Identifier: MIT
// PtySession: the PTY master as a uv pipe, a bounded input queue, and the close rule (EOF and
// child exit, either order).
#include "rexec/uvx/pty_session.h"

#include <signal.h>
#include <unistd.h>

#include <climits>

namespace rx::uvx {

namespace {

// A write request owns its bytes. libuv calls write_cb exactly once, also with UV_ECANCELED
// after the pipe is closed, possibly after the session is gone: hence the shared alive pointer
// instead of a raw back-pointer.
struct WriteReq {
  uv_write_t req{};
  std::string bytes;
  std::shared_ptr<PtySession*> session;
};

}  // namespace

struct PtySession::Trampolines {
  static void on_alloc(uv_handle_t* handle, size_t /*suggested*/, uv_buf_t* buf) {
    auto* s = static_cast<PtySession*>(handle->data);
    if (s == nullptr) {
      *buf = uv_buf_init(nullptr, 0);
      return;
    }
    *buf = uv_buf_init(s->read_buffer_.data(), static_cast<unsigned int>(s->read_buffer_.size()));
  }

  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* /*buf*/) {
    if (auto* s = static_cast<PtySession*>(stream->data)) s->handle_read(nread);
  }

  static void on_write(uv_write_t* w, int /*status*/) {
    // Failures need no handling: EIO means the shell's side is gone, and EOF follows.
    const std::unique_ptr<WriteReq> req(reinterpret_cast<WriteReq*>(w));
    if (PtySession* s = *req->session) s->input_queued_ -= req->bytes.size();
  }
};

PtySession::PtySession(uv_loop_t* loop, pid_t pid, Callbacks callbacks, PtySessionOptions options)
    : pid_(pid),
      callbacks_(std::move(callbacks)),
      options_(options),
      kill_timer_(loop),
      drain_timer_(loop),
      read_buffer_(options.read_buffer_bytes, '\0'),
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
  if (loop == nullptr || options.read_buffer_bytes == 0 ||
      options.read_buffer_bytes > std::size_t{UINT_MAX}) {
    return abandon(Error(Errc::kInvalidArgument, "null loop or bad read_buffer_bytes"));
  }
  std::unique_ptr<PtySession> s(new PtySession(loop, pid, std::move(callbacks), options));
  auto* pipe = new uv_pipe_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  if (const int rc = uv_pipe_init(loop, pipe, 0); rc != 0) {
    delete pipe;  // NOLINT(cppcoreguidelines-owning-memory): never initialised, nothing to close
    return abandon(Error::from_uv("uv_pipe_init", rc));
  }
  s->pipe_ = UvHandle<uv_pipe_t>(pipe);
  const int fd = process.release_master();
  if (const int rc = uv_pipe_open(pipe, fd); rc != 0) {
    ::close(fd);
    return abandon(Error::from_uv("uv_pipe_open", rc));
  }
  pipe->data = s.get();
  s->slave_ = process.take_slave();
  std::weak_ptr<PtySession*> weak = s->self_;
  reaper.watch(pid, [weak](ExitStatus st) {
    if (const auto ref = weak.lock(); ref && *ref != nullptr) (*ref)->handle_child_exit(st);
  });
  return s;
}

PtySession::~PtySession() {
  *self_ = nullptr;
  // The reaper's watch stays: its callback finds self_ cleared and only reaps.
  if (!exited_) signal_group(SIGKILL);
}

void PtySession::signal_group(int sig) const {
  // The shell leads its own process group (setsid), so -pid names it. ESRCH: already gone.
  if (pid_ > 0) (void)::kill(-pid_, sig);
}

void PtySession::start_reading() {
  if (reading_ || eof_ || !pipe_) return;
  if (uv_read_start(pipe_.as_stream(), Trampolines::on_alloc, Trampolines::on_read) != 0) {
    handle_eof();  // the master is unusable: treat it as the end of output
    return;
  }
  reading_ = true;
}

void PtySession::pause_reading() {
  if (!reading_) return;
  reading_ = false;
  if (pipe_) (void)uv_read_stop(pipe_.as_stream());
}

void PtySession::handle_read(ssize_t nread) {
  if (nread > 0) {
    if (callbacks_.on_output) {
      callbacks_.on_output(std::string_view(read_buffer_.data(), static_cast<std::size_t>(nread)));
    }
    return;
  }
  if (nread == 0 || nread == UV_EAGAIN || nread == UV_EINTR) return;
  // UV_EOF, or UV_EIO: Linux reports EIO on the master once every slave descriptor is closed
  // and the buffered output has been read. Any other error also ends the output.
  handle_eof();
}

void PtySession::handle_eof() {
  if (eof_) return;
  eof_ = true;
  pause_reading();
  drain_timer_.stop();
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
  pipe_.reset();  // closes the master; queued writes are cancelled
  slave_.reset();
  callbacks_.on_output = nullptr;
  const ClosedCallback on_closed = std::move(callbacks_.on_closed);
  callbacks_.on_closed = nullptr;
  if (on_closed) on_closed(status_);  // may destroy *this: nothing after this line
}

Status PtySession::write(std::string bytes) {
  if (closed_ || eof_ || !pipe_) return Error(Errc::kClosed, "session input is closed");
  if (bytes.empty()) return {};
  if (bytes.size() > options_.input_queue_limit - input_queued_ ||
      bytes.size() > std::size_t{UINT_MAX}) {
    return Error(Errc::kLimit, "pty input queue full");
  }
  auto req = std::make_unique<WriteReq>();
  req->bytes = std::move(bytes);
  req->session = self_;
  const uv_buf_t buf =
      uv_buf_init(req->bytes.data(), static_cast<unsigned int>(req->bytes.size()));
  if (const int rc = uv_write(&req->req, pipe_.as_stream(), &buf, 1, Trampolines::on_write);
      rc != 0) {
    return Error::from_uv("uv_write", rc);  // no callback will come: req is freed here
  }
  input_queued_ += req->bytes.size();
  (void)req.release();  // owned by libuv until on_write
  return {};
}

Status PtySession::resize(pty::PtySize size) {
  if (!pty::is_valid_size(size)) {
    return Error(Errc::kInvalidArgument, "terminal size out of range");
  }
  if (closed_ || !pipe_) return Error(Errc::kClosed, "session is closed");
  uv_os_fd_t fd = -1;
  if (const int rc = uv_fileno(pipe_.as_handle(), &fd); rc != 0) {
    return Error::from_uv("uv_fileno", rc);
  }
  return pty::set_window_size(fd, size);
}

void PtySession::terminate(std::chrono::milliseconds timeout) {
  if (exited_ || terminating_) return;
  terminating_ = true;
  signal_group(SIGHUP);
  signal_group(SIGCONT);
  kill_timer_.start(timeout, [this] {
    if (!exited_) signal_group(SIGKILL);
  });
}

}  // namespace rx::uvx
