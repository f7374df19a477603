// SPDX-License-Identifier: MIT
#include "rexec/uvx/timer.h"

#include "rexec/common/check.h"

namespace rx::uvx {

Timer::Timer(uv_loop_t* loop) {
  auto* t = new uv_timer_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_timer_init(loop, t) == 0);
  timer_ = UvHandle<uv_timer_t>(t);
}

void Timer::start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat,
                  std::function<void()> fn) {
  fn_ = std::move(fn);
  timer_->data = this;
  uv_timer_start(
      timer_.get(),
      [](uv_timer_t* t) {
        auto* self = static_cast<Timer*>(t->data);
        if (self == nullptr) return;
        // Copy: the callback may restart this timer (replacing fn_) or destroy it.
        auto callback = self->fn_;
        if (callback) callback();
      },
      static_cast<std::uint64_t>(timeout.count()), static_cast<std::uint64_t>(repeat.count()));
}

void Timer::stop() { uv_timer_stop(timer_.get()); }

bool Timer::is_active() const { return uv_is_active(timer_.as_handle()) != 0; }

}  // namespace rx::uvx
