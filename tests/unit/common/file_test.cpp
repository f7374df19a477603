// SPDX-License-Identifier: MIT
#include "rexec/common/file.h"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

TEST_CASE("read_file reads a whole file, however large", "[common]") {
  char path[] = "/tmp/rexec-file-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::string text;
  for (int i = 0; text.size() < 100000; ++i) text += "line " + std::to_string(i) + "\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto r = rx::read_file(path);
  ::unlink(path);
  REQUIRE(r);
  CHECK(*r == text);
}

TEST_CASE("read_file reads /proc files, whose size is 0", "[common]") {
  auto r = rx::read_file("/proc/self/status");
  REQUIRE(r);
  CHECK(r->find("Pid:") != std::string::npos);
}

TEST_CASE("read_file says why it cannot read", "[common]") {
  auto missing = rx::read_file("/nonexistent/rexec");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().sys_errno == ENOENT);
  CHECK(missing.error().code == rx::Errc::kNotFound);
  CHECK(missing.error().message.find("/nonexistent/rexec") != std::string::npos);
  auto dir = rx::read_file("/tmp");
  REQUIRE_FALSE(dir);
  CHECK(dir.error().sys_errno == EISDIR);
}

TEST_CASE("split keeps the non-empty pieces in order", "[common]") {
  using V = std::vector<std::string_view>;
  CHECK(rx::split("a\nbb\n\nc", '\n') == V{"a", "bb", "c"});
  CHECK(rx::split("\n\nx\n", '\n') == V{"x"});
  CHECK(rx::split("", '\n').empty());
  CHECK(rx::split(",,,", ',').empty());
  CHECK(rx::split("no separator", ',') == V{"no separator"});
}

TEST_CASE("words splits on blanks and line ends", "[common]") {
  using V = std::vector<std::string_view>;
  CHECK(rx::words("usage_usec 12\nuser_usec\t3 \r\n") == V{"usage_usec", "12", "user_usec", "3"});
  CHECK(rx::words("   ").empty());
  CHECK(rx::words("").empty());
  CHECK(rx::words("one") == V{"one"});
}
