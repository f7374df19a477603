// SPDX-License-Identifier: MIT
// Spawning a shell on a pseudo-terminal with complete child set-up (mosh, ttyd): new session,
// controlling terminal, default signal dispositions and mask, no inherited fds, a clean
// environment additions, cwd. POSIX only: no event loop, no protocol.
#pragma once

#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rx::pty {

struct PtySize {
  std::uint16_t cols = 80;
  std::uint16_t rows = 24;
  bool operator==(const PtySize&) const = default;
};

// 1..10000 in both dimensions (PROTOCOL §3.2).
[[nodiscard]] bool is_valid_size(PtySize size);

struct SpawnOptions {
  std::string shell;                   // empty: choose_shell("")
  std::vector<std::string> extra_env;  // "NAME=value", added after the defaults
  std::string cwd;                     // empty: $HOME, falling back to /
  PtySize size;
  // Tests and `exec`-like uses: run exactly this argv (argv[0] is a path) instead of a login
  // shell. The environment and terminal set-up are the same.
  std::vector<std::string> argv_override;
};

// The shell to run: `configured` when non-empty (it must be an executable file), else $SHELL,
// else the first of zsh, bash, sh found in /bin, /usr/bin or /usr/local/bin.
// Errors: kNotFound "shell not found: <path>" (or "no shell found").
Result<std::string> choose_shell(std::string_view configured);

// The argv a shell gets: login + interactive ("-l -i"); "-i" alone for plain sh/dash/ash, whose
// login mode would read /etc/profile with no terminal-friendly defaults.
std::vector<std::string> shell_argv(const std::string& shell);

// A child process whose stdin, stdout and stderr are the slave side of a PTY. Move-only; it does
// not kill or reap on destruction: ownership of the child's life is the caller's (uvx's
// PtySession terminates and its ChildReaper reaps).
class PtyProcess {
 public:
  PtyProcess(pid_t pid, UniqueFd master) : pid_(pid), master_(std::move(master)) {}

  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] int master_fd() const { return master_.get(); }

  // Hands the master fd over (to uv_pipe_open); master_fd() is -1 afterwards.
  [[nodiscard]] int release_master() { return master_.release(); }

  // TIOCSWINSZ on the master. Errors: kInvalidArgument for a size outside is_valid_size;
  // kSystem from ioctl; kClosed after release_master().
  [[nodiscard]] Status resize(PtySize size) const;

  // kill(-pid, sig): the whole process group the shell leads. ESRCH (already gone) is success.
  [[nodiscard]] Status signal_group(int sig) const;

 private:
  pid_t pid_;
  UniqueFd master_;
};

// Opens a PTY and starts the shell (or argv_override) on it. The master fd is O_NONBLOCK and
// O_CLOEXEC. Errors: kNotFound (no shell), kPermission / kSystem from posix_openpt, fork or
// exec; an exec failure in the child is reported here (not as a process that exits 127).
Result<PtyProcess> spawn_pty(const SpawnOptions& options);

// TIOCSWINSZ on any PTY fd, for callers that hold only the fd.
[[nodiscard]] Status set_window_size(int fd, PtySize size);

}  // namespace rx::pty
