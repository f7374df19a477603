// SPDX-License-Identifier: MIT
// FileWindow: how much file data a sender may have unacknowledged (file_ack), per transfer.
//
// A fixed window is wrong on one side or the other. On a fast link with a short round trip
// (loopback, a LAN) every byte of window beyond the bandwidth-delay product only queues in
// socket buffers, in front of the terminal traffic that shares the connection: 1 MiB at
// 250 MB/s is 4 ms added to every keystroke echo. On a long round trip (an agent across the
// internet) a small window caps the transfer: 256 KiB per 100 ms is 2.6 MB/s.
//
// So the window follows the path, as BBR sizes its congestion window: twice the bandwidth-delay
// product measured from the acknowledgements (the best delivery rate seen over a round trip,
// times the shortest round trip seen), between kMin and kMax. It starts at kMin and doubles at
// most once per round trip while the rate keeps up. Pure: the caller passes the time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>

namespace rx::proto {

class FileWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::uint64_t kMin = 256U << 10U;
  static constexpr std::uint64_t kMax = 16U << 20U;

  // Bytes the sender may have sent beyond the last acknowledgement.
  [[nodiscard]] std::uint64_t limit() const { return window_; }

  // `total` bytes have been sent so far (call after each chunk).
  void on_sent(std::uint64_t total, Clock::time_point now);
  // The receiver acknowledged `total` bytes so far.
  void on_ack(std::uint64_t total, Clock::time_point now);

  [[nodiscard]] Clock::duration min_rtt() const { return min_rtt_; }

  [[nodiscard]] double max_rate() const { return max_rate_; }  // bytes per second

 private:
  struct Sent {
    std::uint64_t total;
    Clock::time_point at;
  };

  std::deque<Sent> sent_;  // one entry per chunk in flight: bounded by kMax / chunk size
  std::uint64_t window_ = kMin;
  Clock::duration min_rtt_ = Clock::duration::max();
  double max_rate_ = 0;
  std::uint64_t round_acked_ = 0;  // acknowledged bytes when the current round started
  Clock::time_point round_start_{};
  bool started_ = false;
};

}  // namespace rx::proto
