// SPDX-License-Identifier: MIT
#include "rexec/uvx/child_reaper.h"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "loop_helpers.h"

using rx::uvx::ChildReaper;
using rx::uvx::ExitStatus;
using namespace std::chrono_literals;

namespace {

pid_t fork_exit(int code, int sleep_ms = 0) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (sleep_ms > 0) ::usleep(static_cast<useconds_t>(sleep_ms) * 1000U);
    ::_exit(code);
  }
  return pid;
}

}  // namespace

TEST_CASE("reaper reports exit codes and signals of watched children", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    ChildReaper reaper(&loop);
    std::optional<ExitStatus> a;
    std::optional<ExitStatus> b;
    reaper.watch(fork_exit(5, 50), [&](ExitStatus s) { a = s; });
    const pid_t sleeper = ::fork();
    if (sleeper == 0) {
      ::pause();
      ::_exit(0);
    }
    reaper.watch(sleeper, [&](ExitStatus s) { b = s; });
    ::kill(sleeper, SIGKILL);
    REQUIRE(rx::test::run_until(
        &loop, [&] { return a && b; }, 5s));
    CHECK(a->exit_code == 5);
    CHECK(a->term_signal == 0);
    CHECK(b->term_signal == SIGKILL);
    CHECK(reaper.watched() == 0);
  }
  rx::test::close_loop_and_expect_empty(&loop);
}

TEST_CASE("reaper catches a child that exited before watch()", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    ChildReaper reaper(&loop);
    const pid_t pid = fork_exit(9);
    ::usleep(100000);  // the SIGCHLD is long gone when we start watching
    std::optional<ExitStatus> st;
    reaper.watch(pid, [&](ExitStatus s) { st = s; });
    REQUIRE(rx::test::run_until(
        &loop, [&] { return st.has_value(); }, 5s));
    CHECK(st->exit_code == 9);
  }
  rx::test::close_loop_and_expect_empty(&loop);
}

TEST_CASE("reaper never reaps a child it does not watch", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    ChildReaper reaper(&loop);
    const pid_t unrelated = fork_exit(3, 20);
    std::optional<ExitStatus> watched;
    reaper.watch(fork_exit(0, 100), [&](ExitStatus s) { watched = s; });
    REQUIRE(rx::test::run_until(
        &loop, [&] { return watched.has_value(); }, 5s));
    // The unrelated child's SIGCHLD was seen by the reaper, but it is still ours to wait for.
    int status = 0;
    REQUIRE(::waitpid(unrelated, &status, 0) == unrelated);
    CHECK(WEXITSTATUS(status) == 3);
  }
  rx::test::close_loop_and_expect_empty(&loop);
}
