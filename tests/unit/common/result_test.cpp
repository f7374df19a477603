// SPDX-License-Identifier: MIT
#include "rexec/common/result.h"

#include <catch2/catch.hpp>

#include <memory>
#include <string>

using rx::Errc;
using rx::Error;
using rx::Result;

namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return Error(Errc::kInvalidArgument, "not a digit");
  return c - '0';
}

}  // namespace

TEST_CASE("Result holds a value or an error", "[common]") {
  auto ok = parse_digit('7');
  REQUIRE(ok.has_value());
  CHECK(*ok == 7);
  CHECK(ok.value_or(0) == 7);

  auto bad = parse_digit('x');
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::kInvalidArgument);
  CHECK(bad.value_or(-1) == -1);
}

TEST_CASE("Result moves move-only values out", "[common]") {
  Result<std::unique_ptr<std::string>> r = std::make_unique<std::string>("x");
  REQUIRE(r);
  std::unique_ptr<std::string> p = std::move(r).value();
  CHECK(*p == "x");
}

TEST_CASE("Status is empty on success", "[common]") {
  rx::Status s;
  CHECK(s.has_value());
  rx::Status f = Error(Errc::kClosed, "gone");
  CHECK_FALSE(f);
  CHECK(f.error().message == "gone");
}
