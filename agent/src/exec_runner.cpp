// SPDX-License-Identifier: MIT
#include "exec_runner.h"

#include <signal.h>

#include <array>

namespace rx::agent {

struct ExecRunnerAccess {
  static void on_exit(ExecRunner* r, std::int64_t status, int sig) {
    r->exited_ = true;
    r->exit_status_ = status;
    r->term_signal_ = sig;
    r->timer_.stop();
    r->maybe_finish();
  }

  static void on_read(ExecRunner* r, ssize_t nread, const uv_buf_t* buf) {
    if (nread > 0) {
      const auto n = static_cast<std::size_t>(nread);
      const std::size_t room = r->output_limit_ - std::min(r->output_limit_, r->output_.size());
      r->output_.append(buf->base, std::min(n, room));
      r->truncated_ = r->truncated_ || n > room;
    }
    if (nread < 0) {
      r->eof_ = true;
      uv_read_stop(reinterpret_cast<uv_stream_t*>(r->out_.get()));
      r->maybe_finish();
    }
    delete[] buf->base;  // NOLINT(cppcoreguidelines-owning-memory): allocated in alloc_cb
  }
};

ExecRunner::ExecRunner(uv_loop_t* loop, std::string shell, std::string command,
                       std::chrono::milliseconds timeout, std::size_t output_limit, Done done)
    : loop_(loop),
      shell_(std::move(shell)),
      command_(std::move(command)),
      timeout_(timeout),
      output_limit_(output_limit),
      done_(std::move(done)),
      timer_(loop),
      defer_(loop) {}

ExecRunner::~ExecRunner() {
  if (process_ && !exited_) uv_process_kill(process_.get(), SIGKILL);
}

void ExecRunner::fail(const std::string& error) {
  // Report on the next loop turn so callers never see `done` inside start().
  defer_.start(std::chrono::milliseconds(0), [this, error] {
    if (finished_) return;
    finished_ = true;
    proto::ExecResult r{command_, "", false, -1, error, std::nullopt};
    auto done = std::move(done_);
    done(std::move(r));  // may destroy *this
  });
}

void ExecRunner::start() {
  auto* pipe = new uv_pipe_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  uv_pipe_init(loop_, pipe, 0);
  out_ = uvx::UvHandle<uv_pipe_t>(pipe);
  pipe->data = this;

  std::string dash_c = "-c";
  // stderr joins stdout inside the shell: one pipe, output in the order it was written.
  std::string script = "exec 2>&1; " + command_;
  std::array<char*, 4> argv = {shell_.data(), dash_c.data(), script.data(), nullptr};
  std::array<uv_stdio_container_t, 3> stdio{};
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = reinterpret_cast<uv_stream_t*>(pipe);
  stdio[2].flags = UV_IGNORE;

  uv_process_options_t opts{};
  opts.file = shell_.c_str();
  opts.args = argv.data();
  opts.stdio_count = 3;
  opts.stdio = stdio.data();
  opts.flags = UV_PROCESS_DETACHED;  // own process group, so a timeout kills the whole tree
  opts.exit_cb = [](uv_process_t* p, std::int64_t status, int sig) {
    if (auto* self = static_cast<ExecRunner*>(p->data)) {
      ExecRunnerAccess::on_exit(self, status, sig);
    }
  };
  auto* proc = new uv_process_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  proc->data = this;
  if (const int rc = uv_spawn(loop_, proc, &opts); rc != 0) {
    // uv_spawn initialises the handle even on failure; it must still be closed.
    process_ = uvx::UvHandle<uv_process_t>(proc);
    fail(std::string("cannot run ") + shell_ + ": " + uv_strerror(rc));
    return;
  }
  process_ = uvx::UvHandle<uv_process_t>(proc);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(pipe),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];  // NOLINT(cppcoreguidelines-owning-memory)
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        if (auto* self = static_cast<ExecRunner*>(s->data)) {
          ExecRunnerAccess::on_read(self, n, buf);
        } else {
          delete[] buf->base;  // NOLINT(cppcoreguidelines-owning-memory)
        }
      });
  timer_.start(timeout_, [this] {
    timed_out_ = true;
    if (process_ && !exited_) (void)uv_kill(-process_->pid, SIGKILL);
  });
}

void ExecRunner::maybe_finish() {
  if (finished_ || !exited_ || !eof_) return;
  finished_ = true;
  proto::ExecResult r;
  r.command = command_;
  r.output = std::move(output_);
  r.exit_code = term_signal_ != 0 ? 128 + term_signal_ : static_cast<int>(exit_status_);
  r.success = !timed_out_ && term_signal_ == 0 && exit_status_ == 0;
  if (timed_out_) {
    r.error = "timed out after " + std::to_string(timeout_.count() / 1000) + " s";
  } else if (truncated_) {
    r.error = "output truncated at " + std::to_string(output_limit_) + " bytes";
  }
  auto done = std::move(done_);
  done(std::move(r));  // may destroy *this
}

}  // namespace rx::agent
