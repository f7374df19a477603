// SPDX-License-Identifier: MIT
// PTY spawn. Everything the child needs (argv, envp, paths) is prepared before fork(); between
// fork and exec the child calls only async-signal-safe functions.
#include "rexec/pty/pty_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;  // NOLINT: POSIX

namespace rx::pty {

namespace {

bool is_executable_file(const std::string& path) {
  return !path.empty() && path[0] == '/' && ::access(path.c_str(), X_OK) == 0;
}

std::string basename_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read before fork
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// Builds the child's environment: ours, minus what we override, plus the set-up variables.
std::vector<std::string> child_environment(const std::string& shell,
                                           const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  const char* overridden[] = {"TERM=", "REXEC_AGENT=", "SHELL=", "REXEC_TOKEN="};
  for (char** e = environ; *e != nullptr; ++e) {
    bool skip = false;
    for (const char* o : overridden) skip = skip || std::strncmp(*e, o, std::strlen(o)) == 0;
    if (!skip) env.emplace_back(*e);
  }
  env.emplace_back("TERM=xterm-256color");
  env.emplace_back("REXEC_AGENT=1");
  env.emplace_back("SHELL=" + shell);
  const auto has = [&env](const char* prefix) {
    for (const auto& e : env) {
      if (e.rfind(prefix, 0) == 0) return true;
    }
    return false;
  };
  if (!has("HOME=")) env.emplace_back("HOME=" + env_or("HOME", "/"));
  if (!has("PATH="))
    env.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> c_array(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Child side, after fork: async-signal-safe calls only. Never returns.
[[noreturn]] void exec_child(const char* slave_path, int master, int err_pipe, const char* cwd,
                             const char* fallback_cwd, const winsize& ws, char* const* argv,
                             char* const* envp) {
  const auto fail = [err_pipe](int step) {
    const int err = errno;
    const std::array<int, 2> report = {step, err};
    (void)!::write(err_pipe, report.data(), sizeof report);
    ::_exit(127);
  };

  // Default dispositions for every signal and an empty mask: the shell must not inherit the
  // agent's ignored SIGPIPE or blocked SIGCHLD.
  struct sigaction dfl {};

  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) (void)::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  (void)::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (::setsid() < 0) fail(1);
  ::close(master);
  const int slave = ::open(slave_path, O_RDWR);  // first tty opened by a session leader...
  if (slave < 0) fail(2);
  if (::ioctl(slave, TIOCSCTTY, 0) < 0) fail(3);  // ...and made controlling explicitly
  (void)::ioctl(slave, TIOCSWINSZ, &ws);
  if (::dup2(slave, 0) < 0 || ::dup2(slave, 1) < 0 || ::dup2(slave, 2) < 0) fail(4);
  // Close everything above 2 except the error pipe (CLOEXEC closes it at exec). close_range
  // is one system call; kernels before 5.9 fall back to a loop up to the fd limit.
  const auto close_span = [](unsigned first, unsigned last) {
    if (first > last) return;
    if (::syscall(SYS_close_range, first, last, 0U) == 0) return;
    rlimit lim{};
    const rlim_t top = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY
                           ? lim.rlim_cur
                           : 65536;
    for (rlim_t fd = first; fd <= last && fd < top; ++fd) (void)::close(static_cast<int>(fd));
  };
  const auto keep = static_cast<unsigned>(err_pipe);
  close_span(3U, keep - 1U);
  close_span(keep + 1U, ~0U);
  if (::chdir(cwd) != 0 && ::chdir(fallback_cwd) != 0) fail(5);
  ::execve(argv[0], argv, envp);
  fail(6);
  ::_exit(127);  // not reached: fail() exits
}

}  // namespace

bool is_valid_size(PtySize size) {
  return size.cols >= 1 && size.cols <= 10000 && size.rows >= 1 && size.rows <= 10000;
}

Result<std::string> choose_shell(std::string_view configured) {
  if (!configured.empty()) {
    std::string path(configured);
    if (!is_executable_file(path)) return Error(Errc::kNotFound, "shell not found: " + path);
    return path;
  }
  if (const std::string env = env_or("SHELL", ""); is_executable_file(env)) return env;
  for (const char* name : {"zsh", "bash", "sh"}) {
    for (const char* dir : {"/bin/", "/usr/bin/", "/usr/local/bin/"}) {
      std::string path = std::string(dir) + name;
      if (is_executable_file(path)) return path;
    }
  }
  return Error(Errc::kNotFound, "no shell found (tried $SHELL, zsh, bash, sh)");
}

std::vector<std::string> shell_argv(const std::string& shell) {
  const std::string base = basename_of(shell);
  if (base == "sh" || base == "dash" || base == "ash") return {shell, "-i"};
  return {shell, "-l", "-i"};
}

Status set_window_size(int fd, PtySize size) {
  if (!is_valid_size(size)) return Error(Errc::kInvalidArgument, "terminal size out of range");
  winsize ws{};
  ws.ws_col = size.cols;
  ws.ws_row = size.rows;
  if (::ioctl(fd, TIOCSWINSZ, &ws) != 0) return Error::from_errno("ioctl(TIOCSWINSZ)", errno);
  return {};
}

Status PtyProcess::resize(PtySize size) const {
  if (!master_) return Error(Errc::kClosed, "pty master was handed over");
  return set_window_size(master_.get(), size);
}

Status PtyProcess::signal_group(int sig) const {
  if (::kill(-pid_, sig) != 0 && errno != ESRCH) return Error::from_errno("kill", errno);
  return {};
}

Result<PtyProcess> spawn_pty(const SpawnOptions& options) {
  std::vector<std::string> argv;
  std::string shell;
  if (options.argv_override.empty()) {
    auto chosen = choose_shell(options.shell);
    if (!chosen) return std::move(chosen).error();
    shell = *chosen;
    argv = shell_argv(shell);
  } else {
    argv = options.argv_override;
    auto chosen = choose_shell(options.shell);
    shell = chosen ? *chosen : argv[0];
  }
  if (!is_valid_size(options.size))
    return Error(Errc::kInvalidArgument, "terminal size out of range");
  std::vector<std::string> env = child_environment(shell, options.extra_env);
  const std::string cwd = options.cwd.empty() ? env_or("HOME", "/") : options.cwd;
  auto c_argv = c_array(argv);
  auto c_env = c_array(env);

  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) return Error::from_errno("posix_openpt", errno);
  if (::grantpt(master.get()) != 0) return Error::from_errno("grantpt", errno);
  if (::unlockpt(master.get()) != 0) return Error::from_errno("unlockpt", errno);
  std::array<char, 128> slave_path{};
  if (::ptsname_r(master.get(), slave_path.data(), slave_path.size()) != 0) {
    return Error::from_errno("ptsname_r", errno);
  }
  winsize ws{};
  ws.ws_col = options.size.cols;
  ws.ws_row = options.size.rows;

  std::array<int, 2> err_pipe{};
  if (::pipe2(err_pipe.data(), O_CLOEXEC) != 0) return Error::from_errno("pipe2", errno);
  UniqueFd err_read(err_pipe[0]);
  UniqueFd err_write(err_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0) return Error::from_errno("fork", errno);
  if (pid == 0) {
    exec_child(slave_path.data(), master.get(), err_write.get(), cwd.c_str(), "/", ws,
               c_argv.data(), c_env.data());
  }
  err_write.reset();
  std::array<int, 2> report{};
  ssize_t n = 0;
  do {
    n = ::read(err_read.get(), report.data(), sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof report)) {
    // The child failed before exec and has exited with 127: reap it here, it was never ours.
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    static constexpr const char* kSteps[] = {
        "", "setsid", "open pty slave", "TIOCSCTTY", "dup2", "chdir", "exec"};
    const int step = report[0] >= 1 && report[0] <= 6 ? report[0] : 6;
    std::string what = std::string(kSteps[step]) + (step == 6 ? " " + argv[0] : "");
    return Error::from_errno(what, report[1]);
  }
  const int flags = ::fcntl(master.get(), F_GETFL);
  if (flags < 0 || ::fcntl(master.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return Error::from_errno("fcntl(O_NONBLOCK)", err);
  }
  return PtyProcess(pid, std::move(master));
}

}  // namespace rx::pty
