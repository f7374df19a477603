// SPDX-License-Identifier: MIT
#include "rexec/proto/file_window.h"

#include <algorithm>

namespace rx::proto {

void FileWindow::on_sent(std::uint64_t total, Clock::time_point now) {
  if (!sent_.empty() && total <= sent_.back().total) return;
  sent_.push_back({total, now});
}

void FileWindow::on_ack(std::uint64_t total, Clock::time_point now) {
  // The round trip of the newest byte this acknowledgement covers.
  bool sampled = false;
  Clock::time_point sent_at{};
  while (!sent_.empty() && sent_.front().total <= total) {
    sent_at = sent_.front().at;
    sampled = true;
    sent_.pop_front();
  }
  if (!sampled) return;
  min_rtt_ = std::min(min_rtt_, now - sent_at);
  if (!started_) {
    started_ = true;
    round_start_ = now;
    round_acked_ = total;
    return;
  }
  // A round is one shortest round trip (at least 1 ms, so a loopback's microseconds do not make
  // rates out of single acknowledgements).
  const auto round = std::max<Clock::duration>(min_rtt_, std::chrono::milliseconds(10));
  if (now - round_start_ < round) return;
  const double seconds = std::chrono::duration<double>(now - round_start_).count();
  const double rate = static_cast<double>(total - round_acked_) / seconds;
  max_rate_ = std::max(max_rate_, rate);
  round_start_ = now;
  round_acked_ = total;
  const double bdp = max_rate_ * std::chrono::duration<double>(min_rtt_).count();
  const auto target = static_cast<std::uint64_t>(2 * bdp);
  // Grow by at most a doubling per round; shrink at once.
  window_ = std::clamp<std::uint64_t>(std::min(target, 2 * window_), kMin, kMax);
}

}  // namespace rx::proto
