// SPDX-License-Identifier: MIT
// Timer: a uv_timer_t with a std::function callback. Loop thread only; the loop must outlive it.
// The callback may destroy the Timer.
#pragma once

#include "rexec/uvx/uv_handle.h"

#include <chrono>
#include <functional>

namespace rx::uvx {

class Timer {
 public:
  explicit Timer(uv_loop_t* loop);
  // Calls `fn` after `timeout`, then every `repeat` if non-zero. Restarts a running timer.
  void start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
             std::function<void()> fn);

  void start(std::chrono::milliseconds timeout, std::function<void()> fn) {
    start(timeout, std::chrono::milliseconds(0), std::move(fn));
  }

  void stop();
  [[nodiscard]] bool is_active() const;

 private:
  UvHandle<uv_timer_t> timer_;
  std::function<void()> fn_;
};

}  // namespace rx::uvx
