// SPDX-License-Identifier: MIT
// ChildReaper: a readable pidfd or SIGCHLD (through uv_signal_t), then waitpid(pid, WNOHANG)
// for each watched pid.
#include "rexec/uvx/child_reaper.h"

#include "rexec/common/check.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <tuple>
#include <utility>
#include <vector>

namespace rx::uvx {

namespace {

void on_sigchld(uv_signal_t* handle, int /*signum*/) {
  if (auto* self = static_cast<ChildReaper*>(handle->data)) self->poll();
}

void on_pidfd(uv_poll_t* handle, int /*status*/, int /*events*/) {
  // An error (status < 0) is checked the same way: waitpid says what became of the child.
  if (auto* self = static_cast<ChildReaper*>(handle->data)) self->poll();
}

// A pidfd for `pid` watched on `loop`, or an empty pair where the kernel has no pidfd_open (or
// is out of fds): SIGCHLD alone then tells of the exit.
std::pair<UniqueFd, UvHandle<uv_poll_t>> watch_pidfd(uv_loop_t* loop, pid_t pid, void* self) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd) return {};
  auto* poll = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  if (uv_poll_init(loop, poll, fd.get()) != 0) {
    delete poll;  // NOLINT(cppcoreguidelines-owning-memory): never initialised, nothing to close
    return {};
  }
  UvHandle<uv_poll_t> handle(poll);
  poll->data = self;
  if (uv_poll_start(poll, UV_READABLE, on_pidfd) != 0) return {};
  return {std::move(fd), std::move(handle)};
}

}  // namespace

ChildReaper::ChildReaper(uv_loop_t* loop) : recheck_(loop) {
  auto* s = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_signal_init(loop, s) == 0);
  signal_ = UvHandle<uv_signal_t>(s);
  signal_->data = this;
  REXEC_CHECK(uv_signal_start(signal_.get(), on_sigchld, SIGCHLD) == 0);
  update_ref();
}

void ChildReaper::update_ref() {
  if (watched_.empty()) {
    uv_unref(signal_.as_handle());
  } else {
    uv_ref(signal_.as_handle());
  }
}

void ChildReaper::watch(pid_t pid, ExitCallback on_exit) {
  Watch& w = watched_[pid];
  w.on_exit = std::move(on_exit);
  if (!w.pidfd) std::tie(w.pidfd, w.readable) = watch_pidfd(signal_->loop, pid, this);
  update_ref();
  recheck_.start(std::chrono::milliseconds(0), [this] { poll(); });
}

void ChildReaper::unwatch(pid_t pid) {
  watched_.erase(pid);
  update_ref();
}

void ChildReaper::poll() {
  // Iterate over a snapshot and look each pid up again: a callback may unwatch a pid further
  // down the list (then it must not be reaped or reported) or watch new ones.
  std::vector<pid_t> pids;
  pids.reserve(watched_.size());
  for (const auto& entry : watched_) pids.push_back(entry.first);
  for (const pid_t pid : pids) {
    const auto it = watched_.find(pid);
    if (it == watched_.end()) continue;
    int status = 0;
    pid_t r = 0;
    do {
      r = ::waitpid(pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) continue;  // still running
    ExitStatus st;
    if (r == pid && WIFEXITED(status)) {
      st.exit_code = WEXITSTATUS(status);
    } else if (r == pid && WIFSIGNALED(status)) {
      st.term_signal = WTERMSIG(status);
    } else {
      st.exit_code = -1;  // ECHILD: someone else reaped it (or it was never our child)
    }
    ExitCallback callback = std::move(it->second.on_exit);
    watched_.erase(it);  // closes the pidfd's poll handle (safe inside its own callback)
    update_ref();
    if (callback) callback(st);
  }
}

}  // namespace rx::uvx
