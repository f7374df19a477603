// SPDX-License-Identifier: MIT
#include "rexec/proto/base64.h"

#include <catch2/catch.hpp>

using rx::proto::base64_decode;
using rx::proto::base64_encode;

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

TEST_CASE("base64 round-trips every byte value", "[proto]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    const std::string s = all.substr(0, len);
    CHECK(*base64_decode(base64_encode(s)) == s);
  }
}

TEST_CASE("base64 decoding is strict and reports where", "[proto]") {
  auto bad_char = base64_decode("Zm9v!mFy");
  REQUIRE_FALSE(bad_char);
  CHECK(bad_char.error().code == rx::Errc::kBadBase64);
  CHECK(bad_char.error().offset == 4);
  CHECK_FALSE(base64_decode("Zm9"));         // length
  CHECK_FALSE(base64_decode("Zg=a"));        // data after padding
  CHECK_FALSE(base64_decode("=Zg="));        // padding first
  CHECK_FALSE(base64_decode("Zg==Zg=="));    // padding in the middle
  CHECK_FALSE(base64_decode("Zm9v\nYmFy"));  // whitespace
  CHECK_FALSE(base64_decode("Zm9-YmFy"));    // URL alphabet is not standard base64
}
