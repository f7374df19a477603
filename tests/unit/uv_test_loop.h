// SPDX-License-Identifier: MIT
// Driving a libuv loop from a unit test: run it until a condition holds, and close it checking
// that nothing was left on it.
#pragma once

#include <catch2/catch.hpp>
#include <uv.h>

#include <chrono>
#include <functional>

namespace rx::test {

// Runs `loop` until `done()` or `timeout`. A 5 ms tick keeps the loop turning while it waits.
inline bool run_until(uv_loop_t* loop, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout) {
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

// Runs the close callbacks still due, then requires the loop to close (no handle left).
inline void close_loop_and_expect_empty(uv_loop_t* loop) {
  for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; ++i) {
  }
  uv_run(loop, UV_RUN_DEFAULT);
  REQUIRE(uv_loop_close(loop) == 0);
}

}  // namespace rx::test
