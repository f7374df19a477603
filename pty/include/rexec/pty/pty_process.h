// SPDX-License-Identifier: MIT
// Spawning a shell on a pseudo-terminal with complete child set-up (mosh, ttyd): new session,
// controlling terminal, default signal dispositions and an empty mask, no inherited fds, the
// rexec environment, cwd and initial window size. POSIX only: no event loop, no protocol.
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

// Largest accepted width or height, in cells. PROTOCOL §3.2 tells the agent to ignore a resize to
// 0 or more than 10000; no real terminal comes near it.
inline constexpr std::uint16_t kMaxPtyDimension = 10000;

// True when both cols and rows are in 1..kMaxPtyDimension.
[[nodiscard]] bool is_valid_size(PtySize size);

struct SpawnOptions {
  std::string shell;  // empty: choose_shell("")
  // "NAME=value" entries applied last: they replace an inherited or default variable of the same
  // name (TERM included). An entry without '=' or with an empty name is kInvalidArgument.
  std::vector<std::string> extra_env;
  std::string cwd;  // empty: the child's $HOME; if chdir fails, "/"
  PtySize size;     // initial window size; must satisfy is_valid_size
  // Tests and exec-like uses: run exactly this argv instead of a login shell. argv[0] is a path,
  // or a name looked up in the child's PATH. Environment and terminal set-up are unchanged, and
  // SHELL is still the chosen shell (or argv[0] when no shell can be chosen).
  std::vector<std::string> argv_override;
  // An open cgroup.procs (cgroup v2) the child joins before anything else, so the shell and all
  // it starts are in that cgroup; -1: stay in ours. Not closed here.
  int cgroup_procs_fd = -1;
};

// The shell to run, as an absolute path. `configured` when non-empty: an absolute path, or a bare
// name looked up in /bin, /usr/bin and then $PATH; it must be an executable regular file. Else
// $SHELL (if it names an executable file), else the first of zsh, bash, sh found in /bin,
// /usr/bin or $PATH.
// Errors: kNotFound "shell not found: <configured>", or kNotFound "no shell found" when nothing
// qualifies.
[[nodiscard]] Result<std::string> choose_shell(std::string_view configured);

// The argv a shell is started with: `<shell> -l -i` (login + interactive), so the user's profile
// runs as it does over ssh. A plain POSIX shell (basename sh, dash or ash) gets `-i` only: POSIX
// defines no -l option, and PROTOCOL §3.2 only asks for an interactive shell.
[[nodiscard]] std::vector<std::string> shell_argv(const std::string& shell);

// A child process whose stdin, stdout and stderr are the slave side of a PTY, in its own session
// with that PTY as controlling terminal.
//
// Ownership: holds the master fd (O_CLOEXEC | O_NONBLOCK) and, until take_slave() or
// close_slave(), a second descriptor of the slave side that belongs to the parent (O_CLOEXEC |
// O_NOCTTY, never inherited by the child). While that descriptor is open, reads on the master
// never report EIO, so the caller decides when "the shell's side is closed" can be observed:
// drop it after the child has exited, and EIO then means every byte the shell wrote has been
// read. (Linux kernels before 4.1 could report EIO while output was still in flight when the
// last slave descriptor closed; closing ours after the exit is known avoids that race.) Callers
// that just read until EIO call close_slave() first.
//
// Life of the child: this value never kills or reaps. Whoever owns it must signal_group() and
// waitpid() the child (uvx::PtySession with its ChildReaper does both). Move-only; a moved-from
// value has pid() == -1 and no fds. Not thread-safe; any thread may own it.
class PtyProcess {
 public:
  // Takes ownership of `master` and `slave`. spawn_pty() is the normal way to get one; tests
  // may pair any fds with a pid.
  PtyProcess(pid_t pid, UniqueFd master, UniqueFd slave = UniqueFd());

  PtyProcess(PtyProcess&& other) noexcept;
  PtyProcess& operator=(PtyProcess&& other) noexcept;
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;
  ~PtyProcess() = default;

  [[nodiscard]] pid_t pid() const { return pid_; }

  // The master fd, still owned by this object; -1 after release_master().
  [[nodiscard]] int master_fd() const { return master_.get(); }

  // Hands the master fd over (for example to uv_pipe_open, which then closes it); master_fd()
  // is -1 afterwards.
  [[nodiscard]] int release_master() { return master_.release(); }

  // Hands over the parent's slave descriptor (invalid if already taken or closed).
  [[nodiscard]] UniqueFd take_slave() { return std::move(slave_); }

  // Closes the parent's slave descriptor, so the master reports EIO once the child side closes.
  void close_slave() { slave_.reset(); }

  // TIOCSWINSZ through the master. Errors: kInvalidArgument for a size outside is_valid_size;
  // kClosed after release_master(); kSystem from ioctl.
  [[nodiscard]] Status resize(PtySize size) const;

  // kill(-pid, sig): the process group the shell leads (its own jobs may be in other groups and
  // get SIGHUP from the terminal hang-up). A group that is already gone (ESRCH) is success.
  // Call it only before the child has been reaped: afterwards the pid may be reused.
  // Errors: kClosed for a moved-from value; kPermission / kSystem from kill.
  [[nodiscard]] Status signal_group(int sig) const;

 private:
  pid_t pid_;
  UniqueFd master_;
  UniqueFd slave_;
};

// Opens a PTY and starts the shell (or argv_override) on it. In the child, before exec: setsid,
// the slave as controlling terminal on fds 0-2, every signal disposition SIG_DFL and an empty
// signal mask, every fd above 2 closed, TERM=xterm-256color, REXEC_AGENT=1, SHELL=<shell>,
// HOME/USER/LOGNAME filled in from /etc/passwd when missing, REXEC_TOKEN and systemd's service
// variables (NOTIFY_SOCKET, LISTEN_*, JOURNAL_STREAM, WATCHDOG_*) removed, chdir, IUTF8 and the
// initial window size on the terminal. Everything is prepared before fork(); the child runs
// async-signal-safe calls only, so this is safe in a multithreaded process.
//
// A failure in the child before or at execve is reported here through a CLOEXEC pipe (and the
// child is reaped here), instead of appearing later as a process that exits 127.
// Errors: kInvalidArgument (size, extra_env); kNotFound (no shell, configured shell or
// argv_override[0] missing, exec ENOENT); kPermission (exec EACCES); kSystem for other failures
// of posix_openpt, fork, joining the cgroup ("join session cgroup: <strerror>"), setsid,
// TIOCSCTTY, chdir or execve ("exec /path: <strerror>").
[[nodiscard]] Result<PtyProcess> spawn_pty(const SpawnOptions& options);

// TIOCSWINSZ on any PTY fd (master or slave), for callers that hold only the fd.
// Errors: kInvalidArgument for a size outside is_valid_size; kSystem from ioctl.
[[nodiscard]] Status set_window_size(int fd, PtySize size);

// TIOCGWINSZ on any PTY fd. Errors: kSystem from ioctl.
[[nodiscard]] Result<PtySize> window_size(int fd);

}  // namespace rx::pty
