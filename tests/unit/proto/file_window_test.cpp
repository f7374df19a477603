// SPDX-License-Identifier: MIT
// FileWindow against a simulated path: a sender that keeps limit() bytes in flight over a link
// of a given bandwidth and round trip, acknowledged when each chunk has crossed it.
#include "rexec/proto/file_window.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <deque>

using rx::proto::FileWindow;
using namespace std::chrono_literals;

namespace {

struct Result {
  double rate = 0;               // bytes per second over the last second
  std::uint64_t max_window = 0;  // the largest window seen
  std::uint64_t final_window = 0;
};

// `seconds` of a transfer over a link of `bandwidth` bytes/s and round trip `rtt`; 64 KiB
// chunks, each acknowledged `rtt` after it has left the sender (serialised at `bandwidth`).
Result simulate(double bandwidth, std::chrono::microseconds rtt, double seconds) {
  FileWindow w;
  using Clock = FileWindow::Clock;
  const Clock::time_point t0{};
  constexpr std::uint64_t kChunk = 64U << 10U;
  std::uint64_t sent = 0;
  std::uint64_t acked = 0;
  double link_free = 0;  // seconds: when the link can start the next chunk

  struct Ack {
    double at;
    std::uint64_t total;
  };

  std::deque<Ack> acks;
  double now = 0;
  Result r;
  std::uint64_t acked_at_last_second = 0;
  double last_second = seconds - 1.0;
  bool marked = false;
  const double rtt_s = std::chrono::duration<double>(rtt).count();
  auto at = [&](double s) {
    return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  while (now < seconds) {
    while (sent - acked + kChunk <= w.limit()) {
      const double start = std::max(now, link_free);
      link_free = start + static_cast<double>(kChunk) / bandwidth;
      sent += kChunk;
      w.on_sent(sent, at(now));
      acks.push_back({link_free + rtt_s, sent});
    }
    r.max_window = std::max(r.max_window, w.limit());
    now = acks.front().at;
    if (!marked && now >= last_second) {
      marked = true;
      acked_at_last_second = acked;
    }
    acked = acks.front().total;
    acks.pop_front();
    w.on_ack(acked, at(now));
  }
  r.rate = static_cast<double>(acked - acked_at_last_second) / 1.0;
  r.final_window = w.limit();
  return r;
}

}  // namespace

TEST_CASE("file window: a long round trip opens the window to the path's capacity", "[proto]") {
  // 20 MB/s at 100 ms: a fixed 256 KiB window would give 2.6 MB/s.
  const Result r = simulate(20e6, 100ms, 10.0);
  CHECK(r.rate > 0.8 * 20e6);
  CHECK(r.final_window >= 2U << 20U);  // the path holds 2 MB
  CHECK(r.final_window <= FileWindow::kMax);
}

TEST_CASE("file window: a short round trip keeps the window small", "[proto]") {
  // Loopback-like: 250 MB/s, 200 µs. Anything above the minimum would only queue.
  const Result r = simulate(250e6, 200us, 2.0);
  CHECK(r.max_window == FileWindow::kMin);
  CHECK(r.rate > 0.8 * 250e6);
}

TEST_CASE("file window: never above the maximum", "[proto]") {
  const Result r = simulate(1e9, 500ms, 10.0);
  CHECK(r.max_window == FileWindow::kMax);
}

TEST_CASE("file window: acknowledgements that cover nothing new change nothing", "[proto]") {
  FileWindow w;
  const auto t = FileWindow::Clock::now();
  w.on_ack(0, t);
  w.on_sent(100, t);
  w.on_sent(50, t);  // not beyond what was sent: ignored
  w.on_ack(0, t + 1ms);
  CHECK(w.limit() == FileWindow::kMin);
  w.on_ack(100, t + 2ms);
  CHECK(w.min_rtt() == 2ms);
}
