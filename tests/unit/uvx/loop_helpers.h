// SPDX-License-Identifier: MIT
// Loop helpers for uvx tests: bounded runs, and libuv's rule that every test ends with the loop
// closing cleanly (no handle left behind): close_loop_and_expect_empty().
#pragma once

#include <catch2/catch.hpp>
#include <uv.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>

namespace rx::test {

// Runs `loop` until `done()` is true or `timeout` has passed; returns done(). A private 5 ms
// repeating timer makes every UV_RUN_ONCE return, so the deadline is honoured even when nothing
// else happens; it is closed again before returning.
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
  uv_run(loop, UV_RUN_NOWAIT);  // frees the tick
  return done();
}

// Runs `loop` for `duration`, whatever happens.
inline void run_for(uv_loop_t* loop, std::chrono::milliseconds duration) {
  (void)run_until(
      loop, [] { return false; }, duration);
}

// A description of every handle still on the loop, for the failure message.
inline std::string describe_handles(uv_loop_t* loop) {
  std::ostringstream out;
  uv_walk(
      loop,
      [](uv_handle_t* h, void* arg) {
        *static_cast<std::ostringstream*>(arg)
            << uv_handle_type_name(uv_handle_get_type(h)) << (uv_is_active(h) ? " active" : "")
            << (uv_has_ref(h) ? " ref" : "") << (uv_is_closing(h) ? " closing" : "") << "; ";
      },
      &out);
  return out.str();
}

// Runs the loop until idle (bounded: at most 2 s, so a leaked active handle fails instead of
// hanging), then REQUIREs uv_loop_close() == 0: every handle was closed and its memory freed.
inline void close_loop_and_expect_empty(uv_loop_t* loop) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (uv_run(loop, UV_RUN_NOWAIT) != 0 && std::chrono::steady_clock::now() < deadline) {
  }
  INFO("handles left: " << describe_handles(loop));
  REQUIRE(uv_loop_close(loop) == 0);
}

}  // namespace rx::test
