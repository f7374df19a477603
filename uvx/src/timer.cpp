// SPDX-License-Identifier: MIT
// Timer: uv_timer_t plus a std::function.
#include "rexec/uvx/timer.h"

#include "rexec/common/check.h"

#include <cstdint>

namespace rx::uvx {

namespace {

void on_timer(uv_timer_t* handle) {
  auto* fn = static_cast<std::function<void()>*>(handle->data);
  if (fn == nullptr || !*fn) return;
  // Copy first: the callback may restart the timer (replacing the function) or destroy it.
  const std::function<void()> callback = *fn;
  callback();
}

}  // namespace

Timer::Timer(uv_loop_t* loop) {
  auto* t = new uv_timer_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_timer_init(loop, t) == 0);
  timer_ = UvHandle<uv_timer_t>(t);
  timer_->data = &fn_;
}

void Timer::start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
                  std::function<void()> fn) {
  fn_ = std::move(fn);
  const auto to_ms = [](std::chrono::milliseconds d) {
    return static_cast<std::uint64_t>(d.count() > 0 ? d.count() : 0);
  };
  REXEC_CHECK(uv_timer_start(timer_.get(), on_timer, to_ms(timeout), to_ms(repeat)) == 0);
}

void Timer::stop() { (void)uv_timer_stop(timer_.get()); }

bool Timer::is_active() const { return uv_is_active(timer_.as_handle()) != 0; }

}  // namespace rx::uvx
