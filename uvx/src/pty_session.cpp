// SPDX-License-Identifier: MIT
#include "rexec/uvx/pty_session.h"

#include <signal.h>

#include <cerrno>

namespace rx::uvx {

namespace {

// A write request owns its bytes; it outlives the session if libuv cancels it at close.
struct WriteReq {
  uv_write_t req{};
  std::string bytes;
  std::shared_ptr<PtySession*> session;
};

}  // namespace

// Access to private members from the C callbacks.
struct PtySessionAccess {
  static void on_read(PtySession* s, ssize_t n) { s->on_read(n); }

  static std::string& buffer(PtySession* s) { return s->read_buffer_; }

  static std::size_t& input_queued(PtySession* s) { return s->input_queued_; }
};

PtySession::PtySession(uv_loop_t* loop, ChildReaper& reaper, pid_t pid, Callbacks callbacks,
                       PtySessionOptions options)
    : reaper_(reaper),
      pid_(pid),
      callbacks_(std::move(callbacks)),
      options_(options),
      kill_timer_(loop),
      drain_timer_(loop),
      self_(std::make_shared<PtySession*>(this)) {
  read_buffer_.resize(options_.read_buffer_bytes);
}

Result<std::unique_ptr<PtySession>> PtySession::start(uv_loop_t* loop, ChildReaper& reaper,
                                                      pty::PtyProcess process, Callbacks callbacks,
                                                      PtySessionOptions options) {
  std::unique_ptr<PtySession> s(
      new PtySession(loop, reaper, process.pid(), std::move(callbacks), options));
  auto* pipe = new uv_pipe_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  uv_pipe_init(loop, pipe, 0);
  s->pipe_ = UvHandle<uv_pipe_t>(pipe);
  const int fd = process.release_master();
  if (const int rc = uv_pipe_open(pipe, fd); rc != 0) {
    ::close(fd);
    (void)process.signal_group(SIGKILL);
    // Keep reaping the child we started even though the session failed.
    reaper.watch(process.pid(), nullptr);
    return Error::from_uv("uv_pipe_open", rc);
  }
  pipe->data = s.get();
  std::weak_ptr<PtySession*> weak = s->self_;
  reaper.watch(s->pid_, [weak](ExitStatus st) {
    if (auto ref = weak.lock(); ref && *ref != nullptr) (*ref)->on_child_exit(st);
  });
  return s;
}

PtySession::~PtySession() {
  *self_ = nullptr;
  if (!closed_ && !exited_) {
    signal_group(SIGKILL);
    // The watch stays: its callback sees the cleared self_ and does nothing, but the child is
    // still reaped, so no zombie is left.
  }
}

void PtySession::signal_group(int sig) const {
  if (::kill(-pid_, sig) != 0 && errno == ESRCH) (void)::kill(pid_, sig);
}

void PtySession::start_reading() {
  if (reading_ || eof_ || !pipe_) return;
  reading_ = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(pipe_.get()),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* s = static_cast<PtySession*>(h->data);
        std::string& b = PtySessionAccess::buffer(s);
        buf->base = b.data();
        buf->len = b.size();
      },
      [](uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
        if (auto* s = static_cast<PtySession*>(stream->data)) PtySessionAccess::on_read(s, nread);
      });
}

void PtySession::pause_reading() {
  if (!reading_ || !pipe_) return;
  reading_ = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(pipe_.get()));
}

void PtySession::on_read(ssize_t nread) {
  if (nread > 0) {
    if (callbacks_.on_output) {
      callbacks_.on_output(std::string_view(read_buffer_.data(), static_cast<std::size_t>(nread)));
    }
    return;
  }
  if (nread == 0 || nread == UV_EAGAIN) return;
  // UV_EOF, or UV_EIO: Linux reports EIO on the master once the slave side is closed.
  on_eof();
}

void PtySession::on_eof() {
  if (eof_) return;
  eof_ = true;
  pause_reading();
  maybe_close();
}

void PtySession::on_child_exit(ExitStatus status) {
  exited_ = true;
  status_ = status;
  kill_timer_.stop();
  if (!eof_) {
    // Drain what the shell wrote before it exited; if a background job keeps the terminal open,
    // give up after drain_timeout.
    start_reading();
    drain_timer_.start(options_.drain_timeout, [this] { on_eof(); });
  }
  maybe_close();
}

void PtySession::maybe_close() {
  if (closed_ || !eof_ || !exited_) return;
  closed_ = true;
  drain_timer_.stop();
  kill_timer_.stop();
  pipe_.reset();  // closes the master: the terminal hangs up for anything still attached
  auto on_closed = std::move(callbacks_.on_closed);
  callbacks_.on_output = nullptr;
  if (on_closed) on_closed(status_);  // may destroy *this: nothing after this line
}

Status PtySession::write(std::string bytes) {
  if (eof_ || !pipe_) return Error(Errc::kClosed, "session input is closed");
  if (bytes.empty()) return {};
  if (input_queued_ + bytes.size() > options_.input_queue_limit) {
    return Error(Errc::kLimit, "input queue full");
  }
  auto* req = new WriteReq();  // NOLINT(cppcoreguidelines-owning-memory): freed in write_cb
  req->bytes = std::move(bytes);
  req->session = self_;
  input_queued_ += req->bytes.size();
  uv_buf_t buf = uv_buf_init(req->bytes.data(), static_cast<unsigned int>(req->bytes.size()));
  const int rc = uv_write(&req->req, reinterpret_cast<uv_stream_t*>(pipe_.get()), &buf, 1,
                          [](uv_write_t* w, int) {
                            std::unique_ptr<WriteReq> r(reinterpret_cast<WriteReq*>(w));
                            if (PtySession* s = *r->session) {
                              PtySessionAccess::input_queued(s) -= r->bytes.size();
                            }
                          });
  if (rc != 0) {
    input_queued_ -= req->bytes.size();
    delete req;  // NOLINT(cppcoreguidelines-owning-memory): uv_write failed, no callback
    return Error::from_uv("uv_write", rc);
  }
  return {};
}

Status PtySession::resize(pty::PtySize size) {
  if (!pipe_) return Error(Errc::kClosed, "session is closed");
  uv_os_fd_t fd = -1;
  if (const int rc = uv_fileno(pipe_.as_handle(), &fd); rc != 0) {
    return Error::from_uv("uv_fileno", rc);
  }
  return pty::set_window_size(fd, size);
}

void PtySession::terminate(std::chrono::milliseconds grace) {
  if (exited_) return;
  signal_group(SIGHUP);
  kill_timer_.start(grace, [this] {
    if (!exited_) signal_group(SIGKILL);
  });
}

}  // namespace rx::uvx
