// SPDX-License-Identifier: MIT
// base64 against RFC 4648 §10 test vectors, every byte value, and strict rejection with offsets.
#include "rexec/proto/base64.h"

#include <catch2/catch.hpp>

#include <string>
#include <utility>

using rx::Errc;
using rx::proto::base64_decode;
using rx::proto::base64_encode;
using rx::proto::base64_encoded_size;

TEST_CASE("base64 matches the RFC 4648 test vectors", "[proto]") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    CHECK(base64_encode(plain) == encoded);
    auto back = base64_decode(encoded);
    REQUIRE(back);
    CHECK(*back == plain);
  }
}

TEST_CASE("base64 round-trips every byte value at every length", "[proto]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(255 - i);
  for (std::size_t len = 0; len <= all.size(); ++len) {
    const std::string s = all.substr(0, len);
    const std::string e = base64_encode(s);
    CHECK(e.size() == base64_encoded_size(len));
    auto d = base64_decode(e);
    REQUIRE(d);
    CHECK(*d == s);
  }
  CHECK(base64_encode(std::string("\xfb\xff", 2)) == "+/8=");  // both non-alphanumeric digits
}

namespace {

void check_rejected(const std::string& text, std::size_t offset) {
  INFO(text);
  auto r = base64_decode(text);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kBadBase64);
  CHECK(r.error().offset == offset);
}

}  // namespace

TEST_CASE("base64 decoding is strict and reports where", "[proto]") {
  check_rejected("Zm9v!mFy", 4);
  check_rejected("Zm9", 3);         // length
  check_rejected("Zm9v\nYmFy", 9);  // whitespace makes the length wrong
  check_rejected("Zm9v\nYmF", 4);   // and is not in the alphabet
  check_rejected("Zg=a", 2);        // data after padding
  check_rejected("=Zg=", 0);        // padding first
  check_rejected("Z===", 1);        // three padding characters
  check_rejected("====", 0);
  check_rejected("Zg==Zg==", 2);  // padding in the middle
  check_rejected("Zm9-YmFy", 3);  // the URL-safe alphabet is not standard base64
  check_rejected("Zm9_YmFy", 3);
  check_rejected("Zm9vYmF\xff", 7);  // high byte in the last quad
  check_rejected(std::string("Zm\0vYmFy", 8), 2);
}
