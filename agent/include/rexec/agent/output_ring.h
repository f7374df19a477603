// SPDX-License-Identifier: MIT
// OutputRing: the last `capacity` bytes of one session's output, numbered by their offset in
// the whole output (PROTOCOL §4.3). What a viewer missed while the link was down, or what a new
// viewer sees first, is read back from here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rx::agent {

class OutputRing {
 public:
  static constexpr std::size_t kDefaultCapacity = 256U * 1024U;

  // Memory grows with the output up to `capacity` (> 0), then stays there.
  explicit OutputRing(std::size_t capacity = kDefaultCapacity);

  // Appends `bytes`; the oldest bytes fall out once the ring is full.
  void append(std::string_view bytes);

  // Offset of the next byte (= bytes ever appended) and of the oldest byte still held.
  [[nodiscard]] std::uint64_t end_offset() const { return end_; }

  [[nodiscard]] std::uint64_t start_offset() const { return end_ - size_; }

  struct Slice {
    std::uint64_t from = 0;  // offset of bytes[0]: max(offset, start_offset()), ≤ end_offset()
    std::string bytes;       // up to end_offset()
  };

  // The bytes from `offset` on. An offset older than the ring starts at start_offset() (the
  // caller reports the gap); one beyond end_offset() gives nothing, from end_offset().
  [[nodiscard]] Slice read_from(std::uint64_t offset) const;

 private:
  std::size_t capacity_;
  std::string buf_;        // grows to capacity_, then circular
  std::size_t head_ = 0;   // index of the oldest byte once full
  std::size_t size_ = 0;   // bytes held
  std::uint64_t end_ = 0;  // offset of the next byte
};

}  // namespace rx::agent
