// SPDX-License-Identifier: MIT
#include "rexec/uvx/child_reaper.h"

#include "rexec/common/check.h"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <vector>

namespace rx::uvx {

ChildReaper::ChildReaper(uv_loop_t* loop) : recheck_(loop) {
  auto* s = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_signal_init(loop, s) == 0);
  signal_ = UvHandle<uv_signal_t>(s);
  signal_->data = this;
  REXEC_CHECK(uv_signal_start(
                  signal_.get(),
                  [](uv_signal_t* h, int) {
                    if (auto* self = static_cast<ChildReaper*>(h->data)) self->poll();
                  },
                  SIGCHLD) == 0);
  // The signal handle must not keep the loop alive by itself: a process with nothing else to do
  // should be able to finish its loop.
  uv_unref(signal_.as_handle());
}

void ChildReaper::watch(pid_t pid, std::function<void(ExitStatus)> on_exit) {
  watched_[pid] = std::move(on_exit);
  recheck_.start(std::chrono::milliseconds(0), [this] { poll(); });
}

void ChildReaper::unwatch(pid_t pid) { watched_.erase(pid); }

void ChildReaper::poll() {
  // Collect first, call after: callbacks may change watched_.
  std::vector<std::pair<std::function<void(ExitStatus)>, ExitStatus>> done;
  for (auto it = watched_.begin(); it != watched_.end();) {
    int status = 0;
    pid_t r = 0;
    do {
      r = ::waitpid(it->first, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == it->first || (r < 0 && errno == ECHILD)) {
      ExitStatus st;
      if (r == it->first && WIFEXITED(status)) st.exit_code = WEXITSTATUS(status);
      if (r == it->first && WIFSIGNALED(status)) st.term_signal = WTERMSIG(status);
      done.emplace_back(std::move(it->second), st);
      it = watched_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [fn, st] : done) {
    if (fn) fn(st);
  }
}

}  // namespace rx::uvx
