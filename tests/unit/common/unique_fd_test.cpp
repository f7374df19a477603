// SPDX-License-Identifier: MIT
#include "rexec/common/unique_fd.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

namespace {

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("UniqueFd closes on destruction and on reset", "[common]") {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(raw >= 0);
  {
    rx::UniqueFd fd(raw);
    CHECK(fd.is_valid());
    CHECK(is_open(raw));
  }
  CHECK_FALSE(is_open(raw));

  rx::UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int first = a.get();
  a.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  CHECK_FALSE(is_open(first));
  CHECK(is_open(a.get()));
}

TEST_CASE("UniqueFd release hands the fd over without closing", "[common]") {
  rx::UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  rx::UniqueFd b(std::move(a));
  CHECK_FALSE(a.is_valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  const int raw = b.release();
  CHECK_FALSE(b.is_valid());
  CHECK(is_open(raw));
  ::close(raw);
}
