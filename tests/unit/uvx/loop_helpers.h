// SPDX-License-Identifier: MIT
// Loop helpers for uvx tests: bounded runs and the libuv rule that every test ends with the
// loop closing cleanly (no handle left behind).
#pragma once

#include <catch2/catch.hpp>
#include <uv.h>

#include <chrono>
#include <functional>

namespace rx::test {

// Runs `loop` until `done()` or `timeout`; returns done().
inline bool run_until(uv_loop_t* loop, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout) {
  auto* tick = new uv_timer_t();
  uv_timer_init(loop, tick);
  uv_timer_start(
      tick, [](uv_timer_t*) {}, 5, 5);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(tick),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  return done();
}

inline void close_loop_and_expect_empty(uv_loop_t* loop) {
  for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT) != 0; ++i) {
  }
  REQUIRE(uv_loop_close(loop) == 0);
}

}  // namespace rx::test
