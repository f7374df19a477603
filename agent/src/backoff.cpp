// SPDX-License-Identifier: MIT
#include "rexec/agent/backoff.h"

#include <algorithm>

namespace rx::agent {

namespace {

constexpr auto kLongConnection = std::chrono::seconds(60);  // PROTOCOL §3.1

}  // namespace

Backoff::Ms Backoff::window() const {
  // base * 2^attempts, saturating at the cap (the shift is bounded so it cannot overflow).
  const int shift = std::min(attempts_, 30);
  const auto scaled = base_.count() * (std::int64_t{1} << shift);
  return Ms(std::min<std::int64_t>(scaled, cap_.count()));
}

Backoff::Ms Backoff::next_delay() {
  if (immediate_) {
    immediate_ = false;
    return Ms(0);
  }
  std::uniform_int_distribution<std::int64_t> dist(0, window().count());
  const Ms delay(dist(rng_));
  if (attempts_ < 62) ++attempts_;
  return delay;
}

void Backoff::on_connection_ended(Ms lasted) {
  // A short-lived connection keeps the window growing, so a server that accepts and then drops
  // agents is not hammered once a second; a long-lived one starts over with an immediate retry.
  if (lasted > kLongConnection) {
    attempts_ = 0;
    immediate_ = true;
  }
}

}  // namespace rx::agent
