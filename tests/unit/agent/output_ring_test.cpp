// SPDX-License-Identifier: MIT
#include "rexec/agent/output_ring.h"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <random>

using rx::agent::OutputRing;

TEST_CASE("OutputRing keeps the last bytes with their offsets", "[agent][ring]") {
  OutputRing r(8);
  CHECK(r.end_offset() == 0);
  CHECK(r.read_from(0).bytes.empty());
  r.append("abc");
  CHECK(r.read_from(0).bytes == "abc");
  CHECK(r.read_from(1).bytes == "bc");
  CHECK(r.read_from(1).from == 1);
  r.append("defghij");  // 10 bytes in an 8-byte ring: "ab" fell out
  CHECK(r.end_offset() == 10);
  CHECK(r.start_offset() == 2);
  auto old = r.read_from(0);  // older than the ring: starts at the oldest byte held
  CHECK(old.from == 2);
  CHECK(old.bytes == "cdefghij");
  CHECK(r.read_from(7).bytes == "hij");
  auto beyond = r.read_from(99);
  CHECK(beyond.from == 10);
  CHECK(beyond.bytes.empty());
  r.append("0123456789ABC");  // larger than the ring
  CHECK(r.end_offset() == 23);
  CHECK(r.read_from(0).bytes == "56789ABC");
}

TEST_CASE("OutputRing agrees with a plain string over random appends", "[agent][ring]") {
  std::mt19937 rng(12345);
  for (std::size_t capacity : {1U, 7U, 64U, 4096U}) {
    OutputRing r(capacity);
    std::string all;
    for (int i = 0; i < 2000; ++i) {
      std::string chunk(rng() % (capacity * 2 + 3), '\0');
      for (char& c : chunk) c = static_cast<char>('a' + rng() % 26);
      r.append(chunk);
      all += chunk;
      REQUIRE(r.end_offset() == all.size());
      const std::uint64_t start = all.size() > capacity ? all.size() - capacity : 0;
      REQUIRE(r.start_offset() == start);
      const std::uint64_t probe = all.empty() ? 0 : rng() % (all.size() + 2);
      auto s = r.read_from(probe);
      const std::uint64_t from = std::min<std::uint64_t>(std::max(probe, start), all.size());
      REQUIRE(s.from == from);
      REQUIRE(s.bytes == all.substr(from));
    }
  }
}

TEST_CASE("OutputRing in a memfd carries over to a second mapping", "[agent][ring]") {
  auto first = OutputRing::create_shared(16);
  REQUIRE(first);
  REQUIRE(first->fd() >= 0);
  first->append("0123456789");
  first->append("abcdefghij");  // 20 bytes through a 16-byte ring
  // What a new agent does with the memfd the keeper kept: map it and go on.
  auto second = OutputRing::attach(rx::UniqueFd(::dup(first->fd())));
  REQUIRE(second);
  CHECK(second->end_offset() == 20);
  CHECK(second->start_offset() == 4);
  CHECK(second->read_from(0).bytes == "456789abcdefghij");
  second->append("XY");
  CHECK(second->read_from(18).bytes == "ijXY");
  first.value() = std::move(second).value();  // the first mapping goes; the bytes stay
  CHECK(first->read_from(0).bytes == "6789abcdefghijXY");
}

TEST_CASE("OutputRing refuses a memfd that holds no ring", "[agent][ring]") {
  rx::UniqueFd fd(::memfd_create("not-a-ring", MFD_CLOEXEC));
  REQUIRE(fd);
  REQUIRE(::ftruncate(fd.get(), 4096) == 0);
  auto r = OutputRing::attach(std::move(fd));
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "not an output ring: bad header");
}
