// SPDX-License-Identifier: MIT
// Timer: a uv_timer_t with a std::function callback, owned through UvHandle.
#pragma once

#include "rexec/uvx/uv_handle.h"

#include <chrono>
#include <functional>

namespace rx::uvx {

// A one-shot or repeating timer on a loop.
//
// Ownership: owns its uv_timer_t (freed by UvHandle after close) and the callback.
// Thread/loop: loop thread only; the loop must outlive the Timer. The callback runs on the loop;
// it may call start() or stop() on this Timer, or destroy it (the callback object stays alive
// until it returns). Destroying or stopping the Timer guarantees the callback is not called again.
// Not movable: the handle points back at this object.
class Timer {
 public:
  // Precondition: `loop` is an initialised loop. uv_timer_init cannot fail on a valid loop.
  explicit Timer(uv_loop_t* loop);
  ~Timer() = default;
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  Timer(Timer&&) = delete;
  Timer& operator=(Timer&&) = delete;

  // Calls `fn` after `timeout`, then every `repeat` when non-zero. Restarts a running timer and
  // replaces its callback. An active timer keeps the loop alive.
  void start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
             std::function<void()> fn);

  void start(std::chrono::milliseconds timeout, std::function<void()> fn) {
    start(timeout, std::chrono::milliseconds(0), std::move(fn));
  }

  // Stops the timer; the callback will not run until the next start(). Idempotent.
  void stop();

  [[nodiscard]] bool is_active() const;

 private:
  UvHandle<uv_timer_t> timer_;
  std::function<void()> fn_;
};

}  // namespace rx::uvx
