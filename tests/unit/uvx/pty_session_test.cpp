// SPDX-License-Identifier: MIT
// PtySession with real shells on the loop: output, input, resize, exit status, termination,
// draining after exit, paused start, backpressure, input limits, early destruction, and no
// leaked fds or zombies over 1,000 cycles. Every wait is bounded; every test ends with
// close_loop_and_expect_empty().
#include "rexec/uvx/pty_session.h"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <sstream>

#include "loop_helpers.h"

using rx::uvx::ChildReaper;
using rx::uvx::ExitStatus;
using rx::uvx::PtySession;
using namespace std::chrono_literals;

namespace {

// A loop, a reaper and (at most) one session, with callback counters. Call finish() at the end
// of every test: it destroys the session and the reaper and asserts the loop closes empty. If a
// REQUIRE fails first, the destructor cleans up without asserting.
struct Harness {
  uv_loop_t loop{};
  std::unique_ptr<ChildReaper> reaper;
  std::unique_ptr<PtySession> session;
  std::string output;
  std::optional<ExitStatus> closed;
  int closed_calls = 0;
  bool output_after_close = false;
  bool destroy_on_close = false;
  bool finished = false;

  Harness() {
    REQUIRE(uv_loop_init(&loop) == 0);
    reaper = std::make_unique<ChildReaper>(&loop);
  }

  ~Harness() {
    if (finished) return;
    session.reset();
    (void)rx::test::run_until(
        &loop, [&] { return reaper->watched() == 0; }, 2s);
    reaper.reset();
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
    }
    (void)uv_loop_close(&loop);
  }

  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;
  Harness(Harness&&) = delete;
  Harness& operator=(Harness&&) = delete;

  rx::pty::PtyProcess spawn(const std::vector<std::string>& argv) {
    rx::pty::SpawnOptions so;
    so.argv_override = argv;
    auto p = rx::pty::spawn_pty(so);
    REQUIRE(p);
    return std::move(p).value();
  }

  void start(rx::pty::PtyProcess process, rx::uvx::PtySessionOptions o = {}, bool read = true) {
    auto s = PtySession::start(&loop, *reaper, std::move(process),
                               {[this](std::string_view b) {
                                  output_after_close = output_after_close || closed.has_value();
                                  output.append(b);
                                },
                                [this](ExitStatus st) {
                                  closed = st;
                                  ++closed_calls;
                                  if (destroy_on_close) session.reset();
                                }},
                               o);
    REQUIRE(s);
    session = std::move(s).value();
    if (read) session->start_reading();
  }

  void start(const std::vector<std::string>& argv, rx::uvx::PtySessionOptions o = {},
             bool read = true) {
    start(spawn(argv), o, read);
  }

  bool wait_output(const std::string& needle, std::chrono::milliseconds t = 5s) {
    return rx::test::run_until(
        &loop, [&] { return output.find(needle) != std::string::npos; }, t);
  }

  bool wait_closed(std::chrono::milliseconds t = 5s) {
    return rx::test::run_until(
        &loop, [&] { return closed.has_value(); }, t);
  }

  void finish() {
    session.reset();
    REQUIRE(rx::test::run_until(
        &loop, [&] { return reaper->watched() == 0; }, 5s));
    reaper.reset();
    finished = true;
    rx::test::close_loop_and_expect_empty(&loop);
  }
};

std::size_t count_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (const dirent* e = ::readdir(d)) n += static_cast<std::size_t>(e->d_name[0] != '.');
  ::closedir(d);
  return n;
}

// True when `pid` is neither running nor a zombie of ours.
bool is_gone(pid_t pid) {
  struct stat st {};

  const bool no_proc = ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) != 0;
  const bool not_ours = ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD;
  return no_proc && not_ours;
}

}  // namespace

TEST_CASE("all output arrives before on_closed, which fires once after EOF and exit", "[uv]") {
  // Repeated: losing the tail at exit is a race (libuv's stream reader lost it once in every few
  // runs), so one clean run proves little.
  for (int run = 0; run < 20; ++run) {
    INFO("run " << run);
    Harness h;
    h.start({"/bin/sh", "-c", "seq 1 20000; exit 4"});
    REQUIRE(h.wait_closed());
    rx::test::run_for(&h.loop, 5ms);
    CHECK(h.closed_calls == 1);
    CHECK_FALSE(h.output_after_close);
    CHECK(*h.closed == ExitStatus{4, 0});
    CHECK(h.session->is_closed());
    // Every line, in order, nothing else.
    std::istringstream lines(h.output);
    std::string line;
    int expected = 1;
    bool in_order = true;
    while (std::getline(lines, line)) {
      in_order = in_order && line == std::to_string(expected) + "\r";
      ++expected;
    }
    CHECK(in_order);
    REQUIRE(expected - 1 == 20000);
    h.finish();
  }
}

TEST_CASE("output written after the shell exits is still delivered", "[uv]") {
  Harness h;
  // The background job outlives the shell (it inherits the ignored SIGHUP, so the hang-up sent
  // when the session leader exits does not end it), holds the terminal and writes later: EOF,
  // and so on_closed, wait for it.
  h.start({"/bin/sh", "-c", "trap '' HUP; (sleep 0.3; echo late) & echo early; exit 3"});
  bool exited_before_late = false;
  h.session->on_output([&](std::string_view b) {
    h.output.append(b);
    if (h.output.find("late") != std::string::npos && h.session->has_exited()) {
      exited_before_late = true;
    }
  });
  REQUIRE(h.wait_closed());
  CHECK(exited_before_late);
  CHECK(h.output.find("early") != std::string::npos);
  CHECK(h.output.find("late") != std::string::npos);
  CHECK(h.closed->exit_code == 3);
  h.finish();
}

TEST_CASE("EOF before exit: on_closed waits for the exit", "[uv]") {
  Harness h;
  auto p =
      h.spawn({"/bin/sh", "-c", "echo bye; exec >/dev/null 2>&1 </dev/null; sleep 0.8; exit 7"});
  p.close_slave();  // without our slave descriptor, EOF comes as soon as the shell lets go
  h.start(std::move(p));
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return !h.session->is_reading(); }, 5s));  // EOF stops reading
  CHECK(h.output.find("bye") != std::string::npos);
  CHECK_FALSE(h.session->has_exited());
  CHECK_FALSE(h.closed.has_value());
  REQUIRE(h.wait_closed());
  CHECK(*h.closed == ExitStatus{7, 0});
  CHECK(h.closed_calls == 1);
  h.finish();
}

TEST_CASE("a background job holding the terminal is cut off after drain_timeout", "[uv]") {
  Harness h;
  rx::uvx::PtySessionOptions o;
  o.drain_timeout = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  h.start({"/bin/sh", "-c", "trap '' HUP; sleep 2 & exit 0"}, o);
  REQUIRE(h.wait_closed(1500ms));
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 200ms);  // it did wait for EOF...
  CHECK(took < 1500ms);  // ...but not for the job
  CHECK(h.closed->exit_code == 0);
  h.finish();
}

TEST_CASE("input reaches the shell and resize is visible", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "read x; echo got-$x; read y; stty size; exit 0"});
  REQUIRE(h.session->write("hello\n"));
  REQUIRE(h.wait_output("got-hello"));
  REQUIRE(h.session->resize({123, 45}));
  REQUIRE(h.session->write("\n"));
  CHECK(h.wait_output("45 123"));
  CHECK(h.session->resize({0, 5}).error().code == rx::Errc::kInvalidArgument);
  CHECK(h.session->resize({5, 10001}).error().code == rx::Errc::kInvalidArgument);
  REQUIRE(h.wait_closed());
  CHECK(h.session->write("late\n").error().code == rx::Errc::kClosed);
  CHECK(h.session->resize({80, 24}).error().code == rx::Errc::kClosed);
  h.finish();
}

TEST_CASE("exit codes and signals reach ExitStatus", "[uv]") {
  SECTION("exit code") {
    Harness h;
    h.start({"/bin/sh", "-c", "exit 42"});
    REQUIRE(h.wait_closed());
    CHECK(*h.closed == ExitStatus{42, 0});
    h.finish();
  }
  SECTION("terminating signal") {
    Harness h;
    h.start({"/bin/sh", "-c", "kill -USR1 $$; sleep 5"});
    REQUIRE(h.wait_closed());
    CHECK(*h.closed == ExitStatus{0, SIGUSR1});
    h.finish();
  }
}

TEST_CASE("reads start paused until start_reading", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "echo early; exit 0"}, {}, false);
  CHECK_FALSE(h.session->is_reading());
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return h.session->has_exited(); }, 5s));  // the shell is done...
  rx::test::run_for(&h.loop, 100ms);
  CHECK(h.output.empty());
  CHECK_FALSE(h.closed.has_value());  // ...but the session waits for its output to be read
  h.session->start_reading();
  CHECK(h.session->is_reading());
  REQUIRE(h.wait_closed());
  CHECK(h.output.find("early") != std::string::npos);
  h.finish();
}

TEST_CASE("pause blocks the shell, resume delivers everything", "[uv]") {
  Harness h;
  constexpr std::size_t kBytes = 2000000;
  h.start({"/bin/sh", "-c",
           "head -c " + std::to_string(kBytes) + " /dev/zero | tr '\\0' x; echo; echo END"});
  // The caller's hysteresis: pause above a high-water mark of buffered output, resume when it
  // has been consumed. Here "consuming" is the test draining `pending` a little at a time.
  constexpr std::size_t kHigh = 256 * 1024;
  std::size_t pending = 0;
  int pauses = 0;
  h.session->on_output([&](std::string_view b) {
    h.output.append(b);
    pending += b.size();
    if (pending > kHigh && h.session->is_reading()) {
      h.session->pause_reading();
      ++pauses;
    }
  });
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return !h.session->is_reading(); }, 5s));
  const std::size_t at_pause = h.output.size();
  rx::test::run_for(&h.loop, 300ms);
  CHECK(h.output.size() == at_pause);    // nothing is read while paused
  CHECK_FALSE(h.session->has_exited());  // the writer is blocked, not done
  CHECK_FALSE(h.closed.has_value());
  // Consume and resume until the end.
  REQUIRE(rx::test::run_until(
      &h.loop,
      [&] {
        if (!h.session->is_reading() && !h.closed) {
          pending = 0;  // below the low-water mark again
          h.session->resume_reading();
        }
        return h.closed.has_value();
      },
      20s));
  CHECK(pauses > 1);
  std::size_t xs = 0;
  for (char c : h.output) xs += static_cast<std::size_t>(c == 'x');
  CHECK(xs == kBytes);
  CHECK(h.output.find("END") != std::string::npos);
  CHECK(h.closed->exit_code == 0);
  h.finish();
}

TEST_CASE("terminate kills a shell that ignores SIGHUP after the timeout", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "trap '' HUP; echo ready; while :; do sleep 1; done"});
  REQUIRE(h.wait_output("ready"));
  const pid_t pid = h.session->pid();
  const auto t0 = std::chrono::steady_clock::now();
  h.session->terminate(300ms);
  rx::test::run_for(&h.loop, 100ms);
  CHECK_FALSE(h.session->has_exited());  // SIGHUP alone does not end it
  REQUIRE(h.wait_closed());
  // libuv starts timers from its cached loop time, which can be up to 1 ms behind t0.
  CHECK(std::chrono::steady_clock::now() - t0 >= 299ms);
  CHECK(*h.closed == ExitStatus{0, SIGKILL});
  CHECK(is_gone(pid));  // reaped: no zombie
  h.finish();
}

TEST_CASE("terminate ends a normal shell with SIGHUP", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "echo ready; sleep 30"});
  REQUIRE(h.wait_output("ready"));
  const pid_t pid = h.session->pid();
  h.session->terminate(5s);
  h.session->terminate(1ms);  // already terminating: the first deadline stands
  REQUIRE(h.wait_closed());
  CHECK(*h.closed == ExitStatus{0, SIGHUP});
  CHECK(is_gone(pid));
  h.finish();
}

TEST_CASE("input beyond the queue limit is refused, never blocking", "[uv]") {
  Harness h;
  rx::uvx::PtySessionOptions o;
  o.input_queue_limit = 64U * 1024U;
  h.start({"/bin/sh", "-c", "stty -icanon; echo ready; sleep 30"}, o);  // never reads its input
  REQUIRE(h.wait_output("ready"));
  // The PTY's input buffer fills, writes stay queued, and the queue refuses more.
  bool refused = false;
  for (int i = 0; i < 64 && !refused; ++i) {
    const std::size_t queued = h.session->input_queued();
    auto st = h.session->write(std::string(16U * 1024U, 'a'));
    if (!st) {
      CHECK(st.error().code == rx::Errc::kLimit);
      CHECK(h.session->input_queued() == queued);  // nothing was queued
      refused = true;
    }
    rx::test::run_for(&h.loop, 5ms);
  }
  INFO("queued " << h.session->input_queued());
  CHECK(refused);
  CHECK(h.session->input_queued() <= o.input_queue_limit);
  CHECK(h.session->write(std::string(o.input_queue_limit + 1, 'b')).error().code ==
        rx::Errc::kLimit);
  h.session->terminate(100ms);
  REQUIRE(h.wait_closed());
  h.finish();
}

TEST_CASE("a session destroyed early kills its shell and frees pending writes", "[uv]") {
  Harness h;
  h.start({"/bin/sh", "-c", "stty -icanon; echo up; sleep 30"});
  REQUIRE(h.wait_output("up"));
  for (int i = 0; i < 8; ++i) (void)h.session->write(std::string(16U * 1024U, 'a'));
  CHECK(h.session->input_queued() > 0);  // some writes are still pending in libuv
  const pid_t pid = h.session->pid();
  h.session.reset();  // the write callbacks run later, with UV_ECANCELED
  REQUIRE(rx::test::run_until(
      &h.loop, [&] { return h.reaper->watched() == 0; }, 5s));
  CHECK(is_gone(pid));
  CHECK_FALSE(h.closed.has_value());  // no callback after destruction
  h.finish();
}

TEST_CASE("on_closed may destroy the session", "[uv]") {
  Harness h;
  h.destroy_on_close = true;
  h.start({"/bin/sh", "-c", "echo hi; exit 0"});
  REQUIRE(h.wait_closed());
  CHECK(h.session == nullptr);
  CHECK(h.closed_calls == 1);
  h.finish();
}

TEST_CASE("1,000 spawn/exit cycles leak no fds and no zombies", "[uv][slow]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::size_t before = 0;
  {
    ChildReaper reaper(&loop);
    const auto t0 = std::chrono::steady_clock::now();
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
    INFO("1,000 cycles took " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now() - t0)
                                     .count()
                              << " ms");
    CHECK(reaper.watched() == 0);
    CHECK(count_fds() == before);
    CHECK(std::chrono::steady_clock::now() - t0 < 30s);
  }
  rx::test::close_loop_and_expect_empty(&loop);
  CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);  // no child left at all
  CHECK(errno == ECHILD);
}
