// SPDX-License-Identifier: MIT
// PTY spawn. Everything the child needs (argv, envp, paths) is prepared before fork(); between
// fork and exec the child calls only async-signal-safe functions.
#include "rexec/pty/pty_process.h"

#include "rexec/common/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

extern char** environ;  // NOLINT: POSIX

namespace rx::pty {

namespace {

// Used when the environment has no PATH at all; Debian's default for login shells.
constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Variables the shell must not inherit: the agent's secret, and systemd's description of the
// agent's own service (a shell that saw NOTIFY_SOCKET or LISTEN_FDS could talk to systemd in the
// agent's name; JOURNAL_STREAM would claim its stderr is the journal).
constexpr std::array<const char*, 8> kStrippedVariables = {
    "REXEC_TOKEN",    "NOTIFY_SOCKET",  "LISTEN_FDS",   "LISTEN_PID",
    "LISTEN_FDNAMES", "JOURNAL_STREAM", "WATCHDOG_PID", "WATCHDOG_USEC"};

// The steps of child set-up that can fail; reported to the parent with errno.
enum class ChildStep : int {
  kSetsid = 1,
  kOpenSlave,
  kControllingTty,
  kDup,
  kChdir,
  kExec,
  kCgroup,
};

struct ChildReport {
  int step = 0;
  int err = 0;
};

const char* step_name(int step) {
  switch (static_cast<ChildStep>(step)) {
    case ChildStep::kSetsid:
      return "setsid";
    case ChildStep::kOpenSlave:
      return "open pty slave";
    case ChildStep::kControllingTty:
      return "ioctl(TIOCSCTTY)";
    case ChildStep::kDup:
      return "dup2";
    case ChildStep::kChdir:
      return "chdir";
    case ChildStep::kExec:
      return "exec";
    case ChildStep::kCgroup:
      return "join session cgroup";
  }
  return "child set-up";
}

bool is_executable_file(const std::string& path) {
  struct stat st {};

  return !path.empty() && path[0] == '/' && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string getenv_string(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before fork
  return v != nullptr ? std::string(v) : std::string();
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> dirs;
  while (!path.empty()) {
    const auto colon = path.find(':');
    const std::string_view dir = path.substr(0, colon);
    if (!dir.empty() && dir[0] == '/') dirs.emplace_back(dir);
    if (colon == std::string_view::npos) break;
    path.remove_prefix(colon + 1);
  }
  return dirs;
}

// `name` itself when it is an absolute path; else the first executable <dir>/<name> in /bin,
// /usr/bin and then `path_value`. Empty when nothing qualifies.
std::string find_executable(const std::string& name, std::string_view path_value) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) return is_executable_file(name) ? name : std::string();
  std::vector<std::string> dirs = {"/bin", "/usr/bin"};
  for (auto& d : split_path(path_value)) dirs.push_back(std::move(d));
  for (const auto& dir : dirs) {
    std::string candidate = dir;
    candidate += '/';
    candidate += name;
    if (is_executable_file(candidate)) return candidate;
  }
  return {};
}

struct PasswdEntry {
  std::string name;
  std::string home;
};

// The /etc/passwd line for `uid`, parsed by hand: NSS (getpwuid) cannot be used from the static
// agent binary, and a daemon's own account is always a local one.
PasswdEntry passwd_entry_for(uid_t uid) {
  const auto passwd = read_file("/etc/passwd");
  if (!passwd) return {};
  const std::string uid_text = std::to_string(uid);
  for (const std::string_view line : split(*passwd, '\n')) {
    std::array<std::string_view, 7> f{};
    std::string_view rest(line);
    std::size_t n = 0;
    for (; n < f.size(); ++n) {
      const auto colon = rest.find(':');
      f.at(n) = rest.substr(0, colon);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
    if (n + 1 < f.size() || f[2] != uid_text) continue;
    return {std::string(f[0]), std::string(f[5])};
  }
  return {};
}

std::string_view env_name(std::string_view entry) { return entry.substr(0, entry.find('=')); }

// Replaces the variable named like `entry` ("NAME=value"), or appends it.
void set_env(std::vector<std::string>& env, std::string entry) {
  const std::string_view name = env_name(entry);
  for (auto& e : env) {
    if (env_name(e) == name) {
      e = std::move(entry);
      return;
    }
  }
  env.push_back(std::move(entry));
}

const std::string* find_env(const std::vector<std::string>& env, std::string_view name) {
  for (const auto& e : env) {
    if (env_name(e) == name && e.size() > name.size()) return &e;
  }
  return nullptr;
}

// HOME, USER and LOGNAME from /etc/passwd when the environment lacks them (a system service
// often runs without them); HOME falls back to "/".
void fill_account_variables(std::vector<std::string>& env) {
  const bool need_home = find_env(env, "HOME") == nullptr;
  const bool need_user = find_env(env, "USER") == nullptr;
  const bool need_logname = find_env(env, "LOGNAME") == nullptr;
  if (!need_home && !need_user && !need_logname) return;
  const PasswdEntry pw = passwd_entry_for(::getuid());
  if (need_home) set_env(env, "HOME=" + (pw.home.empty() ? std::string("/") : pw.home));
  if (need_user && !pw.name.empty()) set_env(env, "USER=" + pw.name);
  if (need_logname && !pw.name.empty()) set_env(env, "LOGNAME=" + pw.name);
}

// Our environment minus the stripped variables, plus the rexec set-up, plus `extra`.
Result<std::vector<std::string>> child_environment(const std::string& shell,
                                                   const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.find('=') == std::string_view::npos) continue;
    bool strip = false;
    for (const char* s : kStrippedVariables) strip = strip || env_name(entry) == s;
    if (!strip) env.emplace_back(entry);
  }
  set_env(env, "TERM=xterm-256color");
  set_env(env, "REXEC_AGENT=1");
  set_env(env, "SHELL=" + shell);
  fill_account_variables(env);
  if (find_env(env, "PATH") == nullptr) set_env(env, kDefaultPath);
  for (const auto& e : extra) {
    const auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error(Errc::kInvalidArgument, "extra_env entry is not NAME=value");
    }
    set_env(env, e);
  }
  return env;
}

std::vector<char*> c_array(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// ---- Child side: async-signal-safe calls only from here to execve. ----

void close_fds_above_2_except(int keep) {
  // close_range() is one system call (Linux 5.9); `keep` is -1 or above 2.
  const unsigned first_after = keep > 2 ? static_cast<unsigned>(keep) + 1U : 3U;
  const bool below_ok = keep <= 3 || ::close_range(3U, static_cast<unsigned>(keep) - 1U, 0) == 0;
  if (below_ok && ::close_range(first_after, ~0U, 0) == 0) return;
  // Kernels before 5.9: walk /proc/self/fd with the raw getdents64 (opendir allocates).
  const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    alignas(dirent64) std::array<char, 4096> buf{};
    ssize_t n = 0;
    while ((n = ::getdents64(dir, buf.data(), buf.size())) > 0) {
      for (ssize_t off = 0; off < n;) {
        const auto* d = reinterpret_cast<const dirent64*>(buf.data() + off);
        int fd = 0;
        bool numeric = d->d_name[0] != '\0';
        for (const char* c = d->d_name; *c != '\0'; ++c) {
          numeric = numeric && *c >= '0' && *c <= '9';
          fd = fd * 10 + (*c - '0');
        }
        if (numeric && fd > 2 && fd != keep && fd != dir) (void)::close(fd);
        off += d->d_reclen;
      }
    }
    (void)::close(dir);
    return;
  }
  // No /proc either: close every possible fd up to the soft limit.
  rlimit lim{};
  const rlim_t top =
      ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY ? lim.rlim_cur : 65536;
  for (rlim_t fd = 3; fd < top; ++fd) {
    if (static_cast<int>(fd) != keep) (void)::close(static_cast<int>(fd));
  }
}

struct ChildPlan {
  int cgroup_procs_fd;  // -1, or cgroup.procs of the cgroup to join
  const char* slave_path;
  const char* cwd;
  char* const* argv;
  char* const* envp;
};

[[noreturn]] void run_child(const ChildPlan& plan, int report_fd) {
  // All signals are blocked (the parent blocked them around fork), so no handler inherited from
  // the parent (libuv's, which writes to the parent's signal pipe) can run here. Reset every
  // disposition while blocked; the mask is cleared just before execve.
  struct sigaction dfl {};

  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) (void)::sigaction(sig, &dfl, nullptr);
  }

  // The report pipe must survive the dup2 onto 0-2 below, even if the parent ran with some of
  // 0-2 closed and pipe2() handed out a low number.
  if (report_fd <= 2) report_fd = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 3);
  const auto fail = [report_fd](ChildStep step) {
    const ChildReport report{static_cast<int>(step), errno};
    if (report_fd >= 0 && ::write(report_fd, &report, sizeof report) < 0) {
      // Nobody to tell: the parent sees EOF and a child that exits 127.
    }
    ::_exit(127);
  };

  // Into the session's cgroup first, so that everything the shell ever starts is in it.
  if (plan.cgroup_procs_fd >= 0 && ::write(plan.cgroup_procs_fd, "0", 1) != 1) {
    fail(ChildStep::kCgroup);
  }
  if (::setsid() < 0) fail(ChildStep::kSetsid);
  const int slave = ::open(plan.slave_path, O_RDWR);
  if (slave < 0) fail(ChildStep::kOpenSlave);
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) fail(ChildStep::kControllingTty);
  for (int fd = 0; fd <= 2; ++fd) {
    if (slave != fd && ::dup2(slave, fd) < 0) fail(ChildStep::kDup);
  }
  close_fds_above_2_except(report_fd);  // closes `slave` too when it is above 2
  if (::chdir(plan.cwd) != 0 && ::chdir("/") != 0) fail(ChildStep::kChdir);
  sigset_t none;
  sigemptyset(&none);
  (void)::sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe): one thread
  ::execve(plan.argv[0], plan.argv, plan.envp);
  fail(ChildStep::kExec);
  ::_exit(127);  // not reached: fail() exits
}

// ---- Parent side. ----

void reap_blocking(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

// What the child will exec, resolved before fork.
struct ChildSpec {
  std::vector<std::string> argv;  // argv[0] is an absolute path
  std::vector<std::string> env;
  std::string cwd;
};

Result<ChildSpec> prepare_child(const SpawnOptions& options) {
  ChildSpec spec;
  std::string shell;
  if (options.argv_override.empty()) {
    auto chosen = choose_shell(options.shell);
    if (!chosen) return std::move(chosen).error();
    shell = *chosen;
    spec.argv = shell_argv(shell);
  } else {
    spec.argv = options.argv_override;
    auto chosen = choose_shell(options.shell);
    if (!chosen && !options.shell.empty()) return std::move(chosen).error();
    shell = chosen ? *chosen : spec.argv[0];
  }
  auto env = child_environment(shell, options.extra_env);
  if (!env) return std::move(env).error();
  spec.env = std::move(env).value();
  if (spec.argv[0].find('/') == std::string::npos) {
    const std::string* path = find_env(spec.env, "PATH");
    std::string found =
        find_executable(spec.argv[0], path != nullptr ? std::string_view(*path).substr(5) : "");
    if (found.empty()) return Error(Errc::kNotFound, "command not found: " + spec.argv[0]);
    spec.argv[0] = std::move(found);
  }
  spec.cwd = options.cwd;
  if (spec.cwd.empty()) {
    const std::string* home = find_env(spec.env, "HOME");
    spec.cwd = home != nullptr ? home->substr(5) : "/";
  }
  return spec;
}

struct PtyPair {
  UniqueFd master;                   // O_CLOEXEC; O_NONBLOCK is set once the child runs
  UniqueFd slave;                    // the parent's own descriptor: O_CLOEXEC | O_NOCTTY
  std::array<char, 128> slave_path;  // what the child opens as its controlling terminal
};

Result<PtyPair> open_pty_pair(PtySize size) {
  PtyPair pair{UniqueFd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)), UniqueFd(), {}};
  if (!pair.master) return Error::from_errno("posix_openpt", errno);
  if (::grantpt(pair.master.get()) != 0) return Error::from_errno("grantpt", errno);
  if (::unlockpt(pair.master.get()) != 0) return Error::from_errno("unlockpt", errno);
  if (::ptsname_r(pair.master.get(), pair.slave_path.data(), pair.slave_path.size()) != 0) {
    return Error::from_errno("ptsname_r", errno);
  }
  pair.slave.reset(::open(pair.slave_path.data(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!pair.slave) return Error::from_errno("open pty slave", errno);
  // Line editing in the shell's terminal should treat input as UTF-8 (erase a whole character).
  termios tio{};
  if (::tcgetattr(pair.slave.get(), &tio) == 0) {
    tio.c_iflag |= IUTF8;
    (void)::tcsetattr(pair.slave.get(), TCSANOW, &tio);
  }
  if (auto st = set_window_size(pair.slave.get(), size); !st) return std::move(st).error();
  return pair;
}

// Forks the child and waits until it has exec'd (the report pipe closes) or reported a failure,
// in which case the child is reaped here and the failure returned.
Result<pid_t> fork_child(ChildSpec& spec, const char* slave_path, int cgroup_procs_fd) {
  auto c_argv = c_array(spec.argv);
  auto c_env = c_array(spec.env);
  std::array<int, 2> report_pipe{};
  if (::pipe2(report_pipe.data(), O_CLOEXEC) != 0) return Error::from_errno("pipe2", errno);
  UniqueFd report_read(report_pipe[0]);
  UniqueFd report_write(report_pipe[1]);

  const ChildPlan plan{cgroup_procs_fd, slave_path, spec.cwd.c_str(), c_argv.data(), c_env.data()};
  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  const pid_t pid = ::fork();
  if (pid == 0) run_child(plan, report_write.get());
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return Error::from_errno("fork", fork_errno);

  report_write.reset();
  ChildReport report;
  ssize_t n = 0;
  do {
    n = ::read(report_read.get(), &report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof report)) return pid;  // EOF: exec succeeded
  // The child failed before exec and has exited with 127: reap it here, it was never the
  // caller's.
  reap_blocking(pid);
  std::string what = step_name(report.step);
  if (report.step == static_cast<int>(ChildStep::kExec)) what += " " + spec.argv[0];
  if (report.step == static_cast<int>(ChildStep::kChdir)) what += " " + spec.cwd;
  return Error::from_errno(what, report.err);
}

}  // namespace

bool is_valid_size(PtySize size) {
  return size.cols >= 1 && size.cols <= kMaxPtyDimension && size.rows >= 1 &&
         size.rows <= kMaxPtyDimension;
}

Result<std::string> choose_shell(std::string_view configured) {
  const std::string path_value = getenv_string("PATH");
  if (!configured.empty()) {
    std::string found = find_executable(std::string(configured), path_value);
    if (found.empty()) {
      return Error(Errc::kNotFound, "shell not found: " + std::string(configured));
    }
    return found;
  }
  if (const std::string env = getenv_string("SHELL"); is_executable_file(env)) return env;
  for (const char* name : {"zsh", "bash", "sh"}) {
    if (std::string found = find_executable(name, path_value); !found.empty()) return found;
  }
  return Error(Errc::kNotFound, "no shell found (tried $SHELL, zsh, bash, sh)");
}

std::vector<std::string> shell_argv(const std::string& shell) {
  const std::string base = basename_of(shell);
  if (base == "sh" || base == "dash" || base == "ash") return {shell, "-i"};
  return {shell, "-l", "-i"};
}

Status set_window_size(int fd, PtySize size) {
  if (!is_valid_size(size)) {
    return Error(Errc::kInvalidArgument,
                 "terminal size out of range: " + std::to_string(size.cols) + "x" +
                     std::to_string(size.rows));
  }
  winsize ws{};
  ws.ws_col = size.cols;
  ws.ws_row = size.rows;
  if (::ioctl(fd, TIOCSWINSZ, &ws) != 0) return Error::from_errno("ioctl(TIOCSWINSZ)", errno);
  return {};
}

Result<PtySize> window_size(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return Error::from_errno("ioctl(TIOCGWINSZ)", errno);
  return PtySize{ws.ws_col, ws.ws_row};
}

PtyProcess::PtyProcess(pid_t pid, UniqueFd master, UniqueFd slave)
    : pid_(pid), master_(std::move(master)), slave_(std::move(slave)) {}

PtyProcess::PtyProcess(PtyProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      master_(std::move(other.master_)),
      slave_(std::move(other.slave_)) {}

PtyProcess& PtyProcess::operator=(PtyProcess&& other) noexcept {
  if (this != &other) {
    pid_ = std::exchange(other.pid_, -1);
    master_ = std::move(other.master_);
    slave_ = std::move(other.slave_);
  }
  return *this;
}

Status PtyProcess::resize(PtySize size) const {
  if (!master_) return Error(Errc::kClosed, "pty master was handed over");
  return set_window_size(master_.get(), size);
}

Status PtyProcess::signal_group(int sig) const {
  // A pid <= 0 would make kill() signal far more than our child (-1: every process we may).
  if (pid_ <= 0) return Error(Errc::kClosed, "no child process");
  if (::kill(-pid_, sig) != 0 && errno != ESRCH) return Error::from_errno("kill", errno);
  return {};
}

Result<PtyProcess> spawn_pty(const SpawnOptions& options) {
  if (!is_valid_size(options.size)) {
    return Error(Errc::kInvalidArgument, "terminal size out of range");
  }
  auto spec = prepare_child(options);
  if (!spec) return std::move(spec).error();
  auto pair = open_pty_pair(options.size);
  if (!pair) return std::move(pair).error();
  auto pid = fork_child(*spec, pair->slave_path.data(), options.cgroup_procs_fd);
  if (!pid) return std::move(pid).error();
  const int flags = ::fcntl(pair->master.get(), F_GETFL);
  if (flags < 0 || ::fcntl(pair->master.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    const int err = errno;
    (void)::kill(-*pid, SIGKILL);
    reap_blocking(*pid);
    return Error::from_errno("fcntl(O_NONBLOCK)", err);
  }
  return PtyProcess(*pid, std::move(pair->master), std::move(pair->slave));
}

}  // namespace rx::pty
