// SPDX-License-Identifier: MIT
// Timer and UvHandle: callbacks fire, stop and restart work, a Timer may be destroyed from its own
// callback, and every handle's memory is freed through its close callback.
#include "rexec/uvx/timer.h"

#include <catch2/catch.hpp>

#include <memory>

#include "loop_helpers.h"

using rx::uvx::Timer;
using rx::uvx::UvHandle;
using namespace std::chrono_literals;

TEST_CASE("a timer fires once, repeats, stops and restarts", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    Timer t(&loop);
    CHECK_FALSE(t.is_active());
    int once = 0;
    t.start(10ms, [&] { ++once; });
    CHECK(t.is_active());
    REQUIRE(rx::test::run_until(
        &loop, [&] { return once == 1; }, 2s));
    rx::test::run_for(&loop, 50ms);
    CHECK(once == 1);
    CHECK_FALSE(t.is_active());

    int ticks = 0;
    t.start(5ms, 5ms, [&] {
      if (++ticks == 3) t.stop();
    });
    REQUIRE(rx::test::run_until(
        &loop, [&] { return ticks == 3; }, 2s));
    rx::test::run_for(&loop, 50ms);
    CHECK(ticks == 3);

    int replaced = 0;
    int replacement = 0;
    t.start(20ms, [&] { ++replaced; });
    t.start(5ms, [&] { ++replacement; });  // restarting replaces the callback
    REQUIRE(rx::test::run_until(
        &loop, [&] { return replacement == 1; }, 2s));
    rx::test::run_for(&loop, 50ms);
    CHECK(replaced == 0);
    CHECK(replacement == 1);

    int stopped = 0;
    t.start(10ms, [&] { ++stopped; });
    t.stop();
    rx::test::run_for(&loop, 50ms);
    CHECK(stopped == 0);
  }
  rx::test::close_loop_and_expect_empty(&loop);
}

TEST_CASE("a timer may destroy itself from its callback", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    auto t = std::make_unique<Timer>(&loop);
    int fired = 0;
    t->start(5ms, 5ms, [&] {
      ++fired;
      t.reset();
    });
    REQUIRE(rx::test::run_until(
        &loop, [&] { return t == nullptr; }, 2s));
    rx::test::run_for(&loop, 50ms);
    CHECK(fired == 1);
  }
  rx::test::close_loop_and_expect_empty(&loop);
}

TEST_CASE("UvHandle closes on reset, move and destruction", "[uv]") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    const auto make_idle = [&loop] {
      auto* h = new uv_idle_t();
      REQUIRE(uv_idle_init(&loop, h) == 0);
      return UvHandle<uv_idle_t>(h);
    };
    UvHandle<uv_idle_t> a = make_idle();
    UvHandle<uv_idle_t> b = make_idle();
    int marker = 0;
    a->data = &marker;
    uv_idle_t* raw = a.get();
    b = std::move(a);  // closes b's old handle, takes a's
    CHECK_FALSE(a);    // NOLINT(bugprone-use-after-move): the moved-from state is the test
    CHECK(b.get() == raw);
    b.reset();
    CHECK_FALSE(b);
    CHECK(raw->data == nullptr);  // cleared at close; the memory lives until the close callback
    UvHandle<uv_idle_t> c = make_idle();
    (void)c;
  }
  rx::test::close_loop_and_expect_empty(&loop);
}
