// SPDX-License-Identifier: MIT
// The byte at offset o lives at data[o % capacity]; the header keeps the capacity and the end
// offset, so another process can map the same memfd and continue.
#include "rexec/agent/output_ring.h"

#include "rexec/common/check.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace rx::agent {

struct OutputRing::Header {
  std::uint64_t magic;
  std::uint64_t capacity;
  std::uint64_t end;
};

namespace {

constexpr std::uint64_t kMagic = 0x31474e4952584552ULL;  // "REXRING1", little-endian
constexpr std::size_t kHeaderBytes = 64;                 // keeps the data cache-line aligned
static_assert(sizeof(std::uint64_t) * 3 <= kHeaderBytes);

Error system_error(const char* what) { return Error::from_errno(what, errno); }

}  // namespace

OutputRing::OutputRing(std::size_t capacity) {
  REXEC_CHECK(capacity > 0);
  const std::size_t bytes = kHeaderBytes + capacity;
  void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REXEC_CHECK(map != MAP_FAILED);  // address space for one ring: nothing sensible to do without it
  *this = OutputRing(map, bytes, capacity, UniqueFd());
  auto* h = static_cast<Header*>(map_);
  h->magic = kMagic;
  h->capacity = capacity;
  h->end = 0;
}

OutputRing::OutputRing(void* map, std::size_t map_bytes, std::size_t capacity, UniqueFd fd)
    : map_(map), map_bytes_(map_bytes), capacity_(capacity), fd_(std::move(fd)) {
  end_ = static_cast<Header*>(map_)->end;
}

Result<OutputRing> OutputRing::create_shared(std::size_t capacity) {
  REXEC_CHECK(capacity > 0);
  UniqueFd fd(::memfd_create("rexec-ring", MFD_CLOEXEC));
  if (!fd) return system_error("memfd_create");
  const std::size_t bytes = kHeaderBytes + capacity;
  if (::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) return system_error("ftruncate");
  void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return system_error("mmap");
  auto* h = static_cast<Header*>(map);  // a new memfd reads as zeros
  h->magic = kMagic;
  h->capacity = capacity;
  h->end = 0;
  return OutputRing(map, bytes, capacity, std::move(fd));
}

Result<OutputRing> OutputRing::attach(UniqueFd fd) {
  struct stat st {};

  if (::fstat(fd.get(), &st) != 0) return system_error("fstat");
  const auto bytes = static_cast<std::size_t>(st.st_size);
  if (st.st_size <= static_cast<off_t>(kHeaderBytes)) {
    return Error(Errc::kInvalidArgument, "not an output ring: too small");
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return system_error("mmap");
  // The capacity is read once and checked against the mapping: later changes to the header by
  // another process cannot make us index outside it.
  const Header h = *static_cast<const Header*>(map);
  if (h.magic != kMagic || h.capacity != bytes - kHeaderBytes) {
    ::munmap(map, bytes);
    return Error(Errc::kInvalidArgument, "not an output ring: bad header");
  }
  return OutputRing(map, bytes, bytes - kHeaderBytes, std::move(fd));
}

OutputRing::OutputRing(OutputRing&& other) noexcept
    : map_(std::exchange(other.map_, nullptr)),
      map_bytes_(std::exchange(other.map_bytes_, 0)),
      capacity_(other.capacity_),
      end_(other.end_),
      fd_(std::move(other.fd_)) {}

OutputRing& OutputRing::operator=(OutputRing&& other) noexcept {
  if (this != &other) {
    unmap();
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    capacity_ = other.capacity_;
    end_ = other.end_;
    fd_ = std::move(other.fd_);
  }
  return *this;
}

OutputRing::~OutputRing() { unmap(); }

void OutputRing::unmap() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
}

void OutputRing::append(std::string_view bytes) {
  char* data = static_cast<char*>(map_) + kHeaderBytes;
  const std::uint64_t end = end_ + bytes.size();
  if (bytes.size() > capacity_) bytes.remove_prefix(bytes.size() - capacity_);  // only the tail
  std::uint64_t at = end - bytes.size();
  while (!bytes.empty()) {  // at most two pieces
    const auto pos = static_cast<std::size_t>(at % capacity_);
    const std::size_t n = std::min(bytes.size(), capacity_ - pos);
    std::memcpy(data + pos, bytes.data(), n);
    bytes.remove_prefix(n);
    at += n;
  }
  end_ = end;
  static_cast<Header*>(map_)->end = end;
}

OutputRing::Slice OutputRing::read_from(std::uint64_t offset) const {
  const char* data = static_cast<const char*>(map_) + kHeaderBytes;
  Slice s;
  s.from = std::clamp(offset, start_offset(), end_);
  std::size_t n = static_cast<std::size_t>(end_ - s.from);
  s.bytes.reserve(n);
  std::uint64_t at = s.from;
  while (n > 0) {
    const auto pos = static_cast<std::size_t>(at % capacity_);
    const std::size_t run = std::min(n, capacity_ - pos);
    s.bytes.append(data + pos, run);
    n -= run;
    at += run;
  }
  return s;
}

}  // namespace rx::agent
