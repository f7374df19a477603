// SPDX-License-Identifier: MIT
// Real PTYs and real shells: spawn, environment, cwd, resize, exit codes, child set-up.
#include "rexec/pty/pty_process.h"

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

using rx::pty::PtySize;
using rx::pty::SpawnOptions;
using namespace std::chrono_literals;

namespace {

// Reads the master until EOF/EIO or `timeout`.
std::string read_all(int fd, std::chrono::milliseconds timeout = 5s) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      continue;
    } else {
      break;  // EIO: the slave side closed
    }
  }
  return out;
}

int wait_exit(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

rx::pty::PtyProcess spawn_sh(const std::string& script, PtySize size = {}) {
  SpawnOptions o;
  o.argv_override = {"/bin/sh", "-c", script};
  o.size = size;
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  return std::move(p).value();
}

}  // namespace

TEST_CASE("spawned command output is read from the master", "[pty]") {
  auto p = spawn_sh("printf hello");
  CHECK(read_all(p.master_fd()) == "hello");
  const int st = wait_exit(p.pid());
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
}

TEST_CASE("exit codes and signals propagate", "[pty]") {
  auto p = spawn_sh("exit 42");
  (void)read_all(p.master_fd(), 2s);
  const int st = wait_exit(p.pid());
  CHECK(WEXITSTATUS(st) == 42);
  auto k = spawn_sh("kill -TERM $$; sleep 5");
  (void)read_all(k.master_fd(), 2s);
  const int ks = wait_exit(k.pid());
  REQUIRE(WIFSIGNALED(ks));
  CHECK(WTERMSIG(ks) == SIGTERM);
}

TEST_CASE("the child has the rexec environment and a controlling terminal", "[pty]") {
  auto p =
      spawn_sh("echo T=$TERM R=$REXEC_AGENT S=$SHELL; tty; ps -o sid= -p $$ | tr -d ' '; echo $$");
  const std::string out = read_all(p.master_fd());
  wait_exit(p.pid());
  CHECK(out.find("T=xterm-256color") != std::string::npos);
  CHECK(out.find("R=1") != std::string::npos);
  CHECK(out.find("S=/") != std::string::npos);
  CHECK(out.find("/dev/pts/") != std::string::npos);
}

TEST_CASE("cwd is the given directory, else HOME", "[pty]") {
  SpawnOptions o;
  o.argv_override = {"/bin/sh", "-c", "pwd"};
  o.cwd = "/tmp";
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  CHECK(read_all(p->master_fd()).find("/tmp") != std::string::npos);
  wait_exit(p->pid());
}

TEST_CASE("initial size and resize are visible through stty size", "[pty]") {
  auto p = spawn_sh("stty size; read x; stty size", {100, 30});
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (out.find("30 100") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    out += read_all(p.master_fd(), 100ms);
  }
  CHECK(out.find("30 100") != std::string::npos);
  REQUIRE(p.resize({132, 43}));
  REQUIRE(::write(p.master_fd(), "\n", 1) == 1);
  out += read_all(p.master_fd());
  CHECK(out.find("43 132") != std::string::npos);
  wait_exit(p.pid());
  CHECK_FALSE(p.resize({0, 10}));
  CHECK_FALSE(p.resize({10, 10001}));
}

TEST_CASE("fds above 2 are closed in the child", "[pty]") {
  int leak[2];
  REQUIRE(::pipe(leak) == 0);  // not CLOEXEC on purpose
  auto p = spawn_sh("ls /proc/self/fd | tr '\\n' ' '");
  const std::string out = read_all(p.master_fd());
  wait_exit(p.pid());
  ::close(leak[0]);
  ::close(leak[1]);
  // ls sees 0 1 2 and the directory fd it opened itself.
  CHECK(out.find("0 1 2 3 ") != std::string::npos);
  CHECK(out.find(" 4 ") == std::string::npos);
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
  auto p = spawn_sh("grep -E '^Sig(Blk|Ign)' /proc/self/status");
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  const std::string out = read_all(p.master_fd());
  wait_exit(p.pid());
  CHECK(out.find("SigBlk:\t0000000000000000") != std::string::npos);
  CHECK(out.find("SigIgn:\t0000000000000000") != std::string::npos);
}

TEST_CASE("shell choice: configured, then $SHELL, then zsh/bash/sh", "[pty]") {
  auto configured = rx::pty::choose_shell("/bin/sh");
  REQUIRE(configured);
  CHECK(*configured == "/bin/sh");
  auto missing = rx::pty::choose_shell("/no/such/shell");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == rx::Errc::kNotFound);
  CHECK(missing.error().message == "shell not found: /no/such/shell");
  auto any = rx::pty::choose_shell("");
  REQUIRE(any);
  CHECK(::access(any->c_str(), X_OK) == 0);
  CHECK(rx::pty::shell_argv("/bin/bash") == std::vector<std::string>{"/bin/bash", "-l", "-i"});
  CHECK(rx::pty::shell_argv("/bin/sh") == std::vector<std::string>{"/bin/sh", "-i"});
}

TEST_CASE("an exec failure is an error, not a shell that exits 127", "[pty]") {
  char path[] = "/tmp/rexec-noexec-XXXXXX";
  const int fd = ::mkstemp(path);  // mode 0600: exists, not executable, even for root
  REQUIRE(fd >= 0);
  ::close(fd);
  SpawnOptions o;
  o.argv_override = {path};
  auto p = rx::pty::spawn_pty(o);
  ::unlink(path);
  REQUIRE_FALSE(p);
  CHECK(p.error().code == rx::Errc::kPermission);
  CHECK(p.error().message.find(std::string("exec ") + path) != std::string::npos);
  SpawnOptions bad_shell;
  bad_shell.shell = "/no/such/shell";
  CHECK(rx::pty::spawn_pty(bad_shell).error().code == rx::Errc::kNotFound);
}

TEST_CASE("a login shell starts interactively on the PTY", "[pty]") {
  SpawnOptions o;
  o.shell = "/bin/sh";
  auto p = rx::pty::spawn_pty(o);
  REQUIRE(p);
  REQUIRE(::write(p->master_fd(), "echo in-$((6*7))-sh; exit 3\n", 29) == 29);
  CHECK(read_all(p->master_fd()).find("in-42-sh") != std::string::npos);
  CHECK(WEXITSTATUS(wait_exit(p->pid())) == 3);
}
