// SPDX-License-Identifier: MIT
// Backoff: reconnect delays per PROTOCOL §3.1 — exponential with full jitter, 1 s base, 60 s
// cap, forever; after a connection that lasted longer than 60 s the first retry is immediate.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace rx::agent {

class Backoff {
 public:
  using Ms = std::chrono::milliseconds;

  explicit Backoff(Ms base = Ms(1000), Ms cap = Ms(60000),
                   std::uint64_t seed = std::random_device{}())
      : base_(base), cap_(cap), rng_(seed) {}

  // The delay before the next attempt; each call counts one failed attempt.
  Ms next_delay();
  // A connection was established and lasted `lasted`. Over 60 s: the next retry is immediate
  // and the window starts over; shorter: the window keeps growing.
  void on_connection_ended(Ms lasted);
  // The ceiling of the jitter window for the next attempt (for tests and logs).
  [[nodiscard]] Ms window() const;

  [[nodiscard]] int attempts() const { return attempts_; }

 private:
  Ms base_;
  Ms cap_;
  int attempts_ = 0;
  bool immediate_ = false;
  std::mt19937_64 rng_;
};

}  // namespace rx::agent
