// SPDX-License-Identifier: MIT
// Real PTYs and real shells: spawn, output, environment, cwd, resize, exit codes, shell choice,
// exec failures, and the child set-up (session, fds, signal mask and dispositions). Every read
// is bounded by a deadline.
#include "rexec/pty/pty_process.h"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using rx::pty::PtySize;
using rx::pty::SpawnOptions;
using namespace std::chrono_literals;

namespace {

struct ReadResult {
  std::string out;
  bool eof = false;  // EIO (or EOF) seen before the deadline
};

// Reads `fd` until EIO/EOF, until `stop(out)` is true, or until `timeout`.
ReadResult read_master(
    int fd, std::chrono::milliseconds timeout = 5s,
    const std::function<bool(const std::string&)>& stop = [](const std::string&) {
      return false;
    }) {
  ReadResult r;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stop(r.out) && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    } else {
      r.eof = true;  // EIO: every slave descriptor is closed and the output is drained
      break;
    }
  }
  return r;
}

std::string read_all(int fd, std::chrono::milliseconds timeout = 5s) {
  ReadResult r = read_master(fd, timeout);
  CHECK(r.eof);
  return r.out;
}

std::string read_until(int fd, const std::string& needle, std::chrono::milliseconds timeout = 5s) {
  return read_master(fd, timeout,
                     [&](const std::string& out) { return out.find(needle) != std::string::npos; })
      .out;
}

// waitpid with a deadline: a hung child fails the test instead of hanging it.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    REQUIRE(r == 0);
    ::usleep(2000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  FAIL("child " << pid << " did not exit in time");
  return -1;
}

// Spawns `/bin/sh -c script` and drops the parent's slave descriptor, so the master reports EIO
// when the child is done.
rx::pty::PtyProcess spawn_sh(const std::string& script, PtySize size = {}) {
  SpawnOptions o;
  o.argv_override = {"/bin/sh", "-c", script};
  o.size = size;
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  p->close_slave();
  return std::move(p).value();
}

std::string without_cr(std::string s) {
  std::string out;
  for (char c : s) {
    if (c != '\r') out.push_back(c);
  }
  return out;
}

std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> env;
  std::istringstream in(without_cr(text));
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

// The value of `name`, or "<unset>".
std::string value_of(const std::map<std::string, std::string>& env, const std::string& name) {
  const auto it = env.find(name);
  return it == env.end() ? "<unset>" : it->second;
}

std::size_t count_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (const dirent* e = ::readdir(d)) n += static_cast<std::size_t>(e->d_name[0] != '.');
  ::closedir(d);
  return n;
}

// Sets (or unsets, with nullopt) an environment variable for the scope of a test.
class EnvGuard {
 public:
  EnvGuard(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value->c_str(), 1);
    } else {
      ::unsetenv(name);
    }
  }

  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
  EnvGuard(EnvGuard&&) = delete;
  EnvGuard& operator=(EnvGuard&&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A temporary directory removed (with its plain files) at scope end.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/rexec-pty-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path_ = tmpl;
  }

  ~TempDir() {
    for (const auto& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;

  std::string add_file(const std::string& name, const std::string& content, mode_t mode) {
    std::string f = path_ + "/" + name;
    {
      std::ofstream out(f);
      out << content;
    }
    REQUIRE(::chmod(f.c_str(), mode) == 0);
    files_.push_back(f);
    return f;
  }

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// Fields 5-8 of /proc/<pid>/stat: pgrp, session, tty_nr, tpgid.
struct ProcStat {
  long pgrp = 0;
  long session = 0;
  long tty_nr = 0;
  long tpgid = 0;
};

ProcStat read_proc_stat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::stringstream whole;
  whole << in.rdbuf();  // istreambuf_iterator trips GCC 12's -Wnull-dereference at -O2
  const std::string text = whole.str();
  const auto paren = text.rfind(')');
  REQUIRE(paren != std::string::npos);
  std::istringstream rest(text.substr(paren + 2));
  char state = 0;
  long ppid = 0;
  ProcStat st;
  rest >> state >> ppid >> st.pgrp >> st.session >> st.tty_nr >> st.tpgid;
  return st;
}

bool no_children_left() { return ::waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

}  // namespace

TEST_CASE("spawned command output is read from the master", "[pty]") {
  auto p = spawn_sh("printf hello");
  CHECK(read_all(p.master_fd()) == "hello");
  const int st = wait_exit(p.pid());
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}

TEST_CASE("the parent's slave descriptor holds EIO back until it is closed", "[pty]") {
  SpawnOptions o;
  o.argv_override = {"/bin/sh", "-c", "printf held"};
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  CHECK(WEXITSTATUS(wait_exit(p->pid())) == 0);
  const ReadResult held = read_master(p->master_fd(), 300ms);
  CHECK(held.out == "held");  // everything the child wrote is readable after it exited...
  CHECK_FALSE(held.eof);      // ...but no EIO while we hold the slave
  p->close_slave();
  const ReadResult after = read_master(p->master_fd(), 2s);
  CHECK(after.eof);
  CHECK(after.out.empty());
}

TEST_CASE("exit codes and signals propagate", "[pty]") {
  auto p = spawn_sh("exit 42");
  (void)read_all(p.master_fd());
  const int st = wait_exit(p.pid());
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 42);

  auto k = spawn_sh("kill -TERM $$; sleep 5");
  (void)read_all(k.master_fd());
  const int ks = wait_exit(k.pid());
  REQUIRE(WIFSIGNALED(ks));
  CHECK(WTERMSIG(ks) == SIGTERM);
}

TEST_CASE("the child leads a new session with the PTY as controlling terminal", "[pty]") {
  auto p = spawn_sh("echo ready; read x");
  REQUIRE(read_until(p.master_fd(), "ready").find("ready") != std::string::npos);
  const ProcStat st = read_proc_stat(p.pid());
  CHECK(st.session == p.pid());
  CHECK(st.pgrp == p.pid());
  CHECK(st.tpgid == p.pid());  // its group is the terminal's foreground group
  CHECK(st.tty_nr != 0);
  REQUIRE(::write(p.master_fd(), "\n", 1) == 1);
  (void)read_all(p.master_fd());
  CHECK(WEXITSTATUS(wait_exit(p.pid())) == 0);
}

TEST_CASE("the child gets the rexec environment", "[pty]") {
  const passwd* pw = ::getpwuid(::getuid());
  REQUIRE(pw != nullptr);
  const EnvGuard token("REXEC_TOKEN", "secret-token");
  const EnvGuard notify("NOTIFY_SOCKET", "/run/systemd/notify");
  const EnvGuard user("USER", std::nullopt);
  const EnvGuard logname("LOGNAME", std::nullopt);
  const EnvGuard term("TERM", "vt100");
  SpawnOptions o;
  o.argv_override = {"/usr/bin/env"};
  o.extra_env = {"REXEC_TEST_EXTRA=yes"};
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  p->close_slave();
  const auto env = parse_env(read_all(p->master_fd()));
  CHECK(WEXITSTATUS(wait_exit(p->pid())) == 0);
  auto shell = rx::pty::choose_shell("");
  REQUIRE(shell);
  CHECK(value_of(env, "TERM") == "xterm-256color");
  CHECK(value_of(env, "REXEC_AGENT") == "1");
  CHECK(value_of(env, "SHELL") == *shell);
  CHECK(value_of(env, "USER") == pw->pw_name);
  CHECK(value_of(env, "LOGNAME") == pw->pw_name);
  CHECK(env.count("HOME") == 1);
  CHECK(env.count("PATH") == 1);
  CHECK(value_of(env, "REXEC_TEST_EXTRA") == "yes");
  CHECK(env.count("REXEC_TOKEN") == 0);
  CHECK(env.count("NOTIFY_SOCKET") == 0);
}

TEST_CASE("extra_env overrides defaults and is validated", "[pty]") {
  SpawnOptions o;
  o.argv_override = {"/usr/bin/env"};
  o.extra_env = {"TERM=dumb"};
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  p->close_slave();
  const auto env = parse_env(read_all(p->master_fd()));
  wait_exit(p->pid());
  CHECK(value_of(env, "TERM") == "dumb");

  o.extra_env = {"NO_EQUALS_SIGN"};
  auto bad = rx::pty::spawn_pty(o);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == rx::Errc::kInvalidArgument);
  o.extra_env = {"=value"};
  CHECK(rx::pty::spawn_pty(o).error().code == rx::Errc::kInvalidArgument);
}

TEST_CASE("cwd is the given directory, else HOME, else /", "[pty]") {
  const auto pwd_of = [](SpawnOptions o) {
    o.argv_override = {"/bin/sh", "-c", "pwd"};
    auto p = rx::pty::spawn_pty(o);
    REQUIRE(p);
    p->close_slave();
    std::string out = without_cr(read_all(p->master_fd()));
    wait_exit(p->pid());
    return out;
  };
  TempDir dir;
  SpawnOptions given;
  given.cwd = dir.path();
  CHECK(pwd_of(given) == dir.path() + "\n");
  {
    const EnvGuard home("HOME", dir.path());
    CHECK(pwd_of(SpawnOptions{}) == dir.path() + "\n");
  }
  SpawnOptions missing;
  missing.cwd = dir.path() + "/does-not-exist";
  CHECK(pwd_of(missing) == "/\n");
}

TEST_CASE("initial size and resize are visible through stty size", "[pty]") {
  SpawnOptions o;
  o.argv_override = {"/bin/sh", "-c", "stty size; read x; stty size"};
  o.size = {100, 30};
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  p->close_slave();
  std::string out = read_until(p->master_fd(), "30 100");
  CHECK(out.find("30 100") != std::string::npos);
  REQUIRE(p->resize({132, 43}));
  auto now = rx::pty::window_size(p->master_fd());
  REQUIRE(now);
  CHECK(*now == PtySize{132, 43});
  REQUIRE(::write(p->master_fd(), "\n", 1) == 1);
  out += read_all(p->master_fd());
  CHECK(out.find("43 132") != std::string::npos);
  wait_exit(p->pid());

  CHECK(p->resize({0, 10}).error().code == rx::Errc::kInvalidArgument);
  CHECK(p->resize({10, 10001}).error().code == rx::Errc::kInvalidArgument);
  CHECK(p->resize({10000, 10000}));  // the largest size is accepted
  CHECK(rx::pty::is_valid_size({1, 1}));
  CHECK_FALSE(rx::pty::is_valid_size({1, 0}));
  SpawnOptions zero;
  zero.argv_override = {"/bin/true"};
  zero.size = {0, 24};
  CHECK(rx::pty::spawn_pty(zero).error().code == rx::Errc::kInvalidArgument);
}

TEST_CASE("fds above 2 are closed in the child", "[pty]") {
  int leak[2];
  REQUIRE(::pipe(leak) == 0);  // not CLOEXEC on purpose
  REQUIRE(::dup2(leak[0], 100) == 100);
  auto p = spawn_sh("ls -1 /proc/self/fd | tr '\\n' ' '");
  const std::string out = read_all(p.master_fd());
  wait_exit(p.pid());
  ::close(leak[0]);
  ::close(leak[1]);
  ::close(100);
  // ls sees 0, 1 (the pipe to tr), 2 and the directory it opened itself: nothing inherited.
  CHECK(out == "0 1 2 3 ");
}

TEST_CASE("signal mask and dispositions are reset in the child", "[pty]") {
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigset_t old;
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &block, &old) == 0);

  struct sigaction ign {};

  ign.sa_handler = SIG_IGN;

  struct sigaction old_int {};

  REQUIRE(::sigaction(SIGINT, &ign, &old_int) == 0);

  // grep itself, not through sh: dash clears its signal mask at start-up and would hide a leak.
  SpawnOptions o;
  o.argv_override = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"};
  auto spawned = rx::pty::spawn_pty(o);
  REQUIRE(spawned);
  auto status = std::move(spawned).value();
  status.close_slave();
  auto victim = spawn_sh("echo ready; sleep 30");

  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);

  const std::string out = read_all(status.master_fd());
  wait_exit(status.pid());
  CHECK(out.find("SigBlk:\t0000000000000000") != std::string::npos);
  CHECK(out.find("SigIgn:\t0000000000000000") != std::string::npos);

  // The parent blocked SIGTERM; the child's shell still dies of it.
  REQUIRE(read_until(victim.master_fd(), "ready").find("ready") != std::string::npos);
  REQUIRE(victim.signal_group(SIGTERM));
  const int st = wait_exit(victim.pid());
  REQUIRE(WIFSIGNALED(st));
  CHECK(WTERMSIG(st) == SIGTERM);
}

TEST_CASE("shell choice: configured, then $SHELL, then zsh, bash, sh", "[pty]") {
  TempDir fake_path;
  const std::string fake_zsh = fake_path.add_file("zsh", "#!/bin/sh\n", 0755);
  TempDir empty_path;

  SECTION("a configured shell wins over $SHELL") {
    const EnvGuard shell("SHELL", "/bin/bash");
    auto s = rx::pty::choose_shell("/bin/sh");
    REQUIRE(s);
    CHECK(*s == "/bin/sh");
  }
  SECTION("a configured bare name is looked up") {
    auto s = rx::pty::choose_shell("sh");
    REQUIRE(s);
    CHECK(*s == "/bin/sh");
  }
  SECTION("a missing or non-executable configured shell is kNotFound") {
    auto missing = rx::pty::choose_shell("/no/such/shell");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == rx::Errc::kNotFound);
    CHECK(missing.error().message == "shell not found: /no/such/shell");
    CHECK(rx::pty::choose_shell("/tmp").error().code == rx::Errc::kNotFound);  // a directory
    const std::string plain = fake_path.add_file("plain", "", 0644);
    CHECK(rx::pty::choose_shell(plain).error().code == rx::Errc::kNotFound);
  }
  SECTION("$SHELL is used when nothing is configured") {
    const EnvGuard shell("SHELL", "/bin/sh");
    auto s = rx::pty::choose_shell("");
    REQUIRE(s);
    CHECK(*s == "/bin/sh");
  }
  SECTION("without $SHELL, zsh comes before bash") {
    const EnvGuard shell("SHELL", std::nullopt);
    const EnvGuard path("PATH", fake_path.path());
    auto s = rx::pty::choose_shell("");
    REQUIRE(s);
    CHECK(s->substr(s->rfind('/')) == "/zsh");  // the system's zsh if installed, else our fake
  }
  SECTION("a bad $SHELL falls back to bash (or sh when there is no bash)") {
    const EnvGuard shell("SHELL", "/no/such/shell");
    const EnvGuard path("PATH", empty_path.path());
    const bool system_zsh = ::access("/bin/zsh", X_OK) == 0 || ::access("/usr/bin/zsh", X_OK) == 0;
    const bool system_bash =
        ::access("/bin/bash", X_OK) == 0 || ::access("/usr/bin/bash", X_OK) == 0;
    auto s = rx::pty::choose_shell("");
    REQUIRE(s);
    const std::string base = s->substr(s->rfind('/') + 1);
    CHECK(base == (system_zsh ? "zsh" : system_bash ? "bash" : "sh"));
  }
  SECTION("login + interactive flags") {
    CHECK(rx::pty::shell_argv("/bin/bash") == std::vector<std::string>{"/bin/bash", "-l", "-i"});
    CHECK(rx::pty::shell_argv("/usr/bin/zsh") ==
          std::vector<std::string>{"/usr/bin/zsh", "-l", "-i"});
    CHECK(rx::pty::shell_argv("/bin/sh") == std::vector<std::string>{"/bin/sh", "-i"});
    CHECK(rx::pty::shell_argv("/bin/dash") == std::vector<std::string>{"/bin/dash", "-i"});
  }
}

TEST_CASE("exec failures are errors, not shells that exit 127", "[pty]") {
  TempDir dir;
  SECTION("not executable") {
    const std::string path = dir.add_file("noexec", "#!/bin/sh\n", 0600);  // even root: EACCES
    SpawnOptions o;
    o.argv_override = {path};
    auto p = rx::pty::spawn_pty(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().code == rx::Errc::kPermission);
    CHECK(p.error().sys_errno == EACCES);
    CHECK(p.error().message.find("exec " + path) != std::string::npos);
  }
  SECTION("not a program") {
    const std::string path = dir.add_file("garbage", std::string(64, '\x01'), 0700);
    SpawnOptions o;
    o.argv_override = {path};
    auto p = rx::pty::spawn_pty(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().sys_errno == ENOEXEC);
    CHECK(p.error().message.find("exec " + path) != std::string::npos);
  }
  SECTION("a configured shell that does not exist") {
    SpawnOptions o;
    o.shell = "/no/such/shell";
    auto p = rx::pty::spawn_pty(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().code == rx::Errc::kNotFound);
    CHECK(p.error().message == "shell not found: /no/such/shell");
  }
  SECTION("a command name not on PATH") {
    SpawnOptions o;
    o.argv_override = {"rexec-no-such-command"};
    auto p = rx::pty::spawn_pty(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().code == rx::Errc::kNotFound);
  }
  CHECK(no_children_left());  // a failed child was reaped by spawn_pty
}

TEST_CASE("a command name is looked up in PATH", "[pty]") {
  SpawnOptions o;
  o.argv_override = {"sh", "-c", "exit 7"};
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  p->close_slave();
  (void)read_all(p->master_fd());
  CHECK(WEXITSTATUS(wait_exit(p->pid())) == 7);
}

TEST_CASE("a default shell starts interactive on the PTY", "[pty]") {
  SECTION("sh gets -i") {
    SpawnOptions o;
    o.shell = "/bin/sh";
    auto p = rx::pty::spawn_pty(o);
    REQUIRE(p);
    p->close_slave();
    const std::string cmd = "case $- in *i*) echo inter-$((6*7));; esac; exit 3\n";
    REQUIRE(::write(p->master_fd(), cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size()));
    CHECK(read_all(p->master_fd()).find("inter-42") != std::string::npos);
    CHECK(WEXITSTATUS(wait_exit(p->pid())) == 3);
  }
  SECTION("bash gets -l -i") {
    if (::access("/bin/bash", X_OK) != 0) {
      SUCCEED("no bash on this system");
      return;
    }
    SpawnOptions o;
    o.shell = "/bin/bash";
    auto p = rx::pty::spawn_pty(o);
    REQUIRE(p);
    p->close_slave();
    const std::string cmd =
        "shopt -q login_shell && case $- in *i*) echo login-inter-$((6*7));; esac; exit 5\n";
    REQUIRE(::write(p->master_fd(), cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size()));
    CHECK(read_all(p->master_fd(), 10s).find("login-inter-42") != std::string::npos);
    CHECK(WEXITSTATUS(wait_exit(p->pid())) == 5);
  }
}

TEST_CASE("a moved-from PtyProcess refuses to signal", "[pty]") {
  auto p = spawn_sh("exit 0");
  const pid_t pid = p.pid();
  rx::pty::PtyProcess q = std::move(p);
  CHECK(p.pid() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  CHECK(p.master_fd() == -1);
  CHECK(p.signal_group(SIGKILL).error().code == rx::Errc::kClosed);
  CHECK(q.pid() == pid);
  (void)read_all(q.master_fd());
  CHECK(WEXITSTATUS(wait_exit(pid)) == 0);
  CHECK(q.signal_group(0));  // the group is gone: ESRCH counts as success
  const int fd = q.release_master();
  CHECK(q.resize({80, 24}).error().code == rx::Errc::kClosed);
  ::close(fd);
}

TEST_CASE("spawning leaks no fds and no children", "[pty]") {
  const std::size_t before = count_fds();
  TempDir dir;
  const std::string noexec = dir.add_file("noexec", "", 0600);
  for (int i = 0; i < 100; ++i) {
    SpawnOptions o;
    o.argv_override = {"/bin/sh", "-c", "printf x"};
    auto p = rx::pty::spawn_pty(o);
    REQUIRE(p);
    p->close_slave();
    REQUIRE(read_all(p->master_fd()) == "x");
    wait_exit(p->pid());
    SpawnOptions bad;
    bad.argv_override = {noexec};
    REQUIRE_FALSE(rx::pty::spawn_pty(bad));
  }
  CHECK(count_fds() == before);
  CHECK(no_children_left());
}
