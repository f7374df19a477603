// SPDX-License-Identifier: MIT
#include "rexec/proto/utf8.h"

#include <catch2/catch.hpp>

#include <string>

using rx::proto::is_valid_utf8;
using rx::proto::utf8_complete_prefix;

TEST_CASE("complete prefix holds back a split multi-byte sequence at every position", "[proto]") {
  const std::string samples[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};  // é € 😀
  for (const std::string& ch : samples) {
    const std::string text = "ab" + ch;
    for (std::size_t cut = 3; cut < text.size(); ++cut) {
      CHECK(utf8_complete_prefix(text.substr(0, cut)) == 2);
    }
    CHECK(utf8_complete_prefix(text) == text.size());
  }
}

TEST_CASE("complete prefix never holds back bytes that cannot become valid", "[proto]") {
  CHECK(utf8_complete_prefix("ab\xFF") == 3);
  CHECK(utf8_complete_prefix("ab\x80") == 3);      // stray continuation
  CHECK(utf8_complete_prefix("ab\xE2\x41") == 4);  // lead then ASCII
  CHECK(utf8_complete_prefix("ab\xE0\x80") == 4);  // overlong start
  CHECK(utf8_complete_prefix("ab\xED\xA0") == 4);  // surrogate start
  CHECK(utf8_complete_prefix("\xC3") == 0);
  CHECK(utf8_complete_prefix("") == 0);
  // A stream of random binary never stalls: at most 3 bytes are held.
  std::string noise;
  for (int i = 0; i < 1000; ++i) noise += static_cast<char>((i * 131 + 7) & 0xFF);
  CHECK(noise.size() - utf8_complete_prefix(noise) <= 3);
}

TEST_CASE("is_valid_utf8 follows RFC 3629", "[proto]") {
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
}
