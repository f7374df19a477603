// SPDX-License-Identifier: MIT
// OutputRing: the last `capacity` bytes of one session's output, numbered by their offset in
// the whole output (PROTOCOL §4.3). What a viewer missed while the link was down, or what a new
// viewer sees first, is read back from here.
//
// The bytes live in a mapping: private memory, or a memfd that the shell keeper holds while the
// agent restarts (docs/architecture.md, "Shell handover"). A new agent attaches to the same memfd
// and goes on at the same offset, so what a viewer missed is replayed from the same numbering.
#pragma once

#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace rx::agent {

class OutputRing {
 public:
  static constexpr std::size_t kDefaultCapacity = 256U * 1024U;

  // Private memory; pages are touched only as output fills them. `capacity` > 0.
  explicit OutputRing(std::size_t capacity = kDefaultCapacity);

  // A ring in a new memfd (fd() gives it), empty, at offset 0.
  // Errors: kSystem from memfd_create, ftruncate or mmap.
  [[nodiscard]] static Result<OutputRing> create_shared(std::size_t capacity = kDefaultCapacity);

  // Maps a ring made by create_shared() in this or an earlier process, keeping its contents and
  // offsets. Errors: kInvalidArgument when the memfd does not hold a ring; kSystem from fstat or
  // mmap.
  [[nodiscard]] static Result<OutputRing> attach(UniqueFd fd);

  OutputRing(OutputRing&& other) noexcept;
  OutputRing& operator=(OutputRing&& other) noexcept;
  OutputRing(const OutputRing&) = delete;
  OutputRing& operator=(const OutputRing&) = delete;
  ~OutputRing();

  // The memfd of a shared ring, else -1. Still owned by the ring.
  [[nodiscard]] int fd() const { return fd_.get(); }

  // Appends `bytes`; the oldest bytes fall out once the ring is full. The data is copied before
  // the end offset moves, so a process killed in between leaves a ring that is merely short of
  // the last append.
  void append(std::string_view bytes);

  // Offset of the next byte (= bytes ever appended) and of the oldest byte still held.
  [[nodiscard]] std::uint64_t end_offset() const { return end_; }

  [[nodiscard]] std::uint64_t start_offset() const {
    return end_ > capacity_ ? end_ - capacity_ : 0;
  }

  struct Slice {
    std::uint64_t from = 0;  // offset of bytes[0]: max(offset, start_offset()), ≤ end_offset()
    std::string bytes;       // up to end_offset()
  };

  // The bytes from `offset` on. An offset older than the ring starts at start_offset() (the
  // caller reports the gap); one beyond end_offset() gives nothing, from end_offset().
  [[nodiscard]] Slice read_from(std::uint64_t offset) const;

 private:
  struct Header;

  OutputRing(void* map, std::size_t map_bytes, std::size_t capacity, UniqueFd fd);
  void unmap();

  void* map_ = nullptr;  // Header, then capacity_ bytes of data
  std::size_t map_bytes_ = 0;
  std::size_t capacity_ = 0;
  std::uint64_t end_ = 0;  // offset of the next byte; mirrored into the header
  UniqueFd fd_;
};

}  // namespace rx::agent
