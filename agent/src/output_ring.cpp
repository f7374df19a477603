// SPDX-License-Identifier: MIT
#include "rexec/agent/output_ring.h"

#include "rexec/common/check.h"

#include <algorithm>

namespace rx::agent {

OutputRing::OutputRing(std::size_t capacity) : capacity_(capacity) { REXEC_CHECK(capacity > 0); }

void OutputRing::append(std::string_view bytes) {
  end_ += bytes.size();
  if (bytes.size() >= capacity_) {  // only the tail survives
    bytes.remove_prefix(bytes.size() - capacity_);
    buf_.assign(bytes);
    head_ = 0;
    size_ = capacity_;
    return;
  }
  if (buf_.size() < capacity_) {  // still growing: plain append while it fits
    const std::size_t fits = std::min(bytes.size(), capacity_ - buf_.size());
    buf_.append(bytes.substr(0, fits));
    size_ = buf_.size();
    bytes.remove_prefix(fits);
    if (bytes.empty()) return;
    head_ = 0;  // full now, oldest byte at index 0
  }
  // Full: overwrite from the oldest byte on, in at most two pieces.
  while (!bytes.empty()) {
    const std::size_t n = std::min(bytes.size(), capacity_ - head_);
    buf_.replace(head_, n, bytes.substr(0, n));
    head_ = (head_ + n) % capacity_;
    bytes.remove_prefix(n);
  }
}

OutputRing::Slice OutputRing::read_from(std::uint64_t offset) const {
  Slice s;
  s.from = std::clamp(offset, start_offset(), end_);
  const auto skip = static_cast<std::size_t>(s.from - start_offset());
  const std::size_t n = size_ - skip;
  s.bytes.reserve(n);
  // Logical index i lives at (head_ + i) % capacity_ once full; before that head_ is 0.
  const std::size_t first = buf_.size() < capacity_ ? skip : (head_ + skip) % capacity_;
  const std::size_t run = std::min(n, buf_.size() - first);
  s.bytes.append(buf_, first, run);
  s.bytes.append(buf_, 0, n - run);
  return s;
}

}  // namespace rx::agent
