// SPDX-License-Identifier: MIT
// PtySession with real shells on the loop: output, input, resize, exit, termination,
// backpressure, input limits, and no leaked fds or zombies over 1,000 cycles.
#include "rexec/uvx/pty_session.h"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "loop_helpers.h"

using rx::uvx::ChildReaper;
using rx::uvx::ExitStatus;
using rx::uvx::PtySession;
using namespace std::chrono_literals;

namespace {

struct Harness {
  uv_loop_t loop{};
  std::unique_ptr<ChildReaper> reaper;
  std::unique_ptr<PtySession> session;
  std::string output;
  std::optional<ExitStatus> closed;
  int closed_calls = 0;

  Harness() {
    REQUIRE(uv_loop_init(&loop) == 0);
    reaper = std::make_unique<ChildReaper>(&loop);
  }

  ~Harness() {
    session.reset();
    reaper.reset();
    rx::test::close_loop_and_expect_empty(&loop);
  }

  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  Harness(Harness&&) = delete;
  Harness& operator=(Harness&&) = delete;

  void start(const std::vector<std::string>& argv, rx::uvx::PtySessionOptions o = {},
             bool read = true) {
    rx::pty::SpawnOptions so;
    so.argv_override = argv;
    auto p = rx::pty::spawn_pty(so);
    REQUIRE(p);
    auto s = PtySession::start(&loop, *reaper, std::move(p).value(),
                               {[this](std::string_view b) { output.append(b); },
                                [this](ExitStatus st) {
                                  closed = st;
                                  ++closed_calls;
                                }},
                               o);
    REQUIRE(s);
    session = std::move(s).value();
    if (read) session->start_reading();
  }

  bool wait_output(const std::string& needle, std::chrono::milliseconds t = 5s) {
    return rx::test::run_until(
        &loop, [&] { return output.find(needle) != std::string::npos; }, t);
  }

  bool wait_closed(std::chrono::milliseconds t = 5s) {
    return rx::test::run_until(
        &loop, [&] { return closed.has_value(); }, t);
  }
};

std::size_t count_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

}  // namespace

TEST_CASE("output arrives and close follows both EOF and exit, with all output", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "seq 1 20000; exit 4"});
  REQUIRE(h.wait_closed());
  CHECK(h.closed->exit_code == 4);
  CHECK(h.closed_calls == 1);
  CHECK(h.output.find("\r\n20000\r\n") != std::string::npos);
  CHECK(h.output.find("\r\n10000\r\n") != std::string::npos);
}

TEST_CASE("input reaches the shell and resize is visible", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "read x; echo got-$x; read y; stty size; exit 0"});
  REQUIRE(h.session->write("hello\n"));
  REQUIRE(h.wait_output("got-hello"));
  REQUIRE(h.session->resize({123, 45}));
  REQUIRE(h.session->write("\n"));
  CHECK(h.wait_output("45 123"));
  REQUIRE(h.wait_closed());
  CHECK_FALSE(h.session->resize({0, 5}));
}

TEST_CASE("reads start paused until start_reading", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "echo early; sleep 5"}, {}, false);
  rx::test::run_until(
      &h.loop, [] { return false; }, 300ms);
  CHECK(h.output.empty());
  h.session->start_reading();
  CHECK(h.wait_output("early"));
  h.session->terminate(100ms);
  REQUIRE(h.wait_closed());
}

TEST_CASE("pause blocks the shell, resume delivers everything", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "head -c 2000000 /dev/zero | tr '\\0' x; echo; echo END"});
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return h.output.size() > 1000; }, 5s));
  h.session->pause_reading();
  CHECK_FALSE(h.session->is_reading());
  const std::size_t at_pause = h.output.size();
  rx::test::run_until(
      &h.loop, [] { return false; }, 300ms);
  CHECK(h.output.size() == at_pause);  // nothing read while paused
  CHECK_FALSE(h.closed.has_value());   // the writer is blocked, not done
  h.session->resume_reading();
  REQUIRE(h.wait_closed(10s));
  std::size_t xs = 0;
  for (char c : h.output) xs += static_cast<std::size_t>(c == 'x');
  CHECK(xs == 2000000);
  CHECK(h.output.find("END") != std::string::npos);
}

TEST_CASE("terminate kills a shell that ignores SIGHUP", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "trap '' HUP; echo ready; while :; do sleep 1; done"});
  REQUIRE(h.wait_output("ready"));
  const pid_t pid = h.session->pid();
  h.session->terminate(200ms);
  REQUIRE(h.wait_closed());
  CHECK(h.closed->term_signal == SIGKILL);
  CHECK(::kill(pid, 0) != 0);  // gone and reaped: no zombie
}

TEST_CASE("terminate ends a normal shell with SIGHUP", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "echo ready; sleep 30"});
  REQUIRE(h.wait_output("ready"));
  h.session->terminate(5s);
  REQUIRE(h.wait_closed());
  CHECK(h.closed->term_signal == SIGHUP);
}

TEST_CASE("input beyond the queue limit is refused, not blocking", "[uv]") {
  Harness h;
  rx::uvx::PtySessionOptions o;
  o.input_queue_limit = 64U * 1024U;
  h.start({"/bin/sh", "-c", "sleep 30"}, o);  // never reads its input
  // Without running the loop nothing is acknowledged, so the queue fills: a slow shell cannot
  // make the agent buffer input without bound.
  bool refused = false;
  for (int i = 0; i < 64 && !refused; ++i) {
    auto st = h.session->write(std::string(16U * 1024U, 'a'));
    if (!st) {
      CHECK(st.error().code == rx::Errc::kLimit);
      refused = true;
    }
  }
  INFO("queued " << h.session->input_queued());
  CHECK(refused);
  CHECK(h.session->input_queued() <= o.input_queue_limit);
  h.session->terminate(100ms);
  REQUIRE(h.wait_closed());
}

TEST_CASE("a session destroyed early kills its shell and leaves no zombie", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "echo up; sleep 30"});
  REQUIRE(h.wait_output("up"));
  const pid_t pid = h.session->pid();
  h.session.reset();
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return h.reaper->watched() == 0; }, 5s));
  CHECK(::kill(pid, 0) != 0);
  CHECK_FALSE(h.closed.has_value());  // no callback after destruction
}

TEST_CASE("1,000 spawn/exit cycles leak no fds and no zombies", "[uv][slow]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::size_t before = 0;
  {
    ChildReaper reaper(&loop);
    for (int i = 0; i < 1010; ++i) {
      if (i == 10) before = count_fds();  // after warm-up: libuv opens its signal pipe lazily
      rx::pty::SpawnOptions so;
      so.argv_override = {"/bin/true"};
      auto p = rx::pty::spawn_pty(so);
      REQUIRE(p);
      bool closed = false;
      auto s = PtySession::start(&loop, reaper, std::move(p).value(),
                                 {nullptr, [&](ExitStatus) { closed = true; }});
      REQUIRE(s);
      (*s)->start_reading();
      REQUIRE(rx::test::run_until(
          &loop, [&] { return closed; }, 5s));
    }
    CHECK(reaper.watched() == 0);
    CHECK(count_fds() == before);
  }
  rx::test::close_loop_and_expect_empty(&loop);
  CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);  // no child left at all
  CHECK(errno == ECHILD);
}
