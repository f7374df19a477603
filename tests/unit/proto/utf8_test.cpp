// SPDX-License-Identifier: MIT
// The UTF-8 "complete prefix" splitter for v1 user output (PROTOCOL §4.2) and the validator.
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
      CHECK(utf8_complete_prefix(text.substr(2, cut - 2)) == 0);  // only the partial sequence
    }
    CHECK(utf8_complete_prefix(text) == text.size());
  }
}

TEST_CASE("complete prefix never holds back bytes that cannot become valid", "[proto]") {
  CHECK(utf8_complete_prefix("ab\xFF") == 3);
  CHECK(utf8_complete_prefix("ab\xC0") == 3);          // never a lead byte
  CHECK(utf8_complete_prefix("ab\xF5") == 3);          // past U+10FFFF
  CHECK(utf8_complete_prefix("ab\x80") == 3);          // stray continuation
  CHECK(utf8_complete_prefix("ab\x80\x80\x80") == 5);  // three stray continuations
  CHECK(utf8_complete_prefix("ab\xE2\x41") == 4);      // lead then ASCII
  CHECK(utf8_complete_prefix("ab\xF0\x9F\x41") == 5);  // lead, continuation, ASCII
  CHECK(utf8_complete_prefix("ab\xE0\x80") == 4);      // overlong start
  CHECK(utf8_complete_prefix("ab\xED\xA0") == 4);      // surrogate start
  CHECK(utf8_complete_prefix("ab\xF4\x90") == 4);      // past U+10FFFF
  CHECK(utf8_complete_prefix("\xC3") == 0);
  CHECK(utf8_complete_prefix("") == 0);
}

namespace {

// Feeds `input` in chunks of `chunk` bytes through the splitter as the server does: emit the
// complete prefix, carry the rest into the next chunk, flush at the end.
std::string stream(const std::string& input, std::size_t chunk, std::size_t& max_held,
                   bool& pieces_valid) {
  std::string out;
  std::string pending;
  for (std::size_t i = 0; i < input.size(); i += chunk) {
    pending += input.substr(i, chunk);
    const std::size_t n = utf8_complete_prefix(pending);
    pieces_valid = pieces_valid && is_valid_utf8(std::string_view(pending).substr(0, n));
    out += pending.substr(0, n);
    pending.erase(0, n);
    max_held = std::max(max_held, pending.size());
  }
  return out + pending;
}

}  // namespace

TEST_CASE("streaming through the splitter loses nothing and never splits a character", "[proto]") {
  const std::string text = "héllo € wörld 😀 \x1b[0m ascii \xF0\x9F\x8E\x89 end";
  REQUIRE(is_valid_utf8(text));
  for (std::size_t chunk = 1; chunk <= text.size(); ++chunk) {
    std::size_t held = 0;
    bool valid = true;
    CHECK(stream(text, chunk, held, valid) == text);
    CHECK(valid);
    CHECK(held <= 3);
  }
}

TEST_CASE("binary noise streams through without stalling", "[proto]") {
  std::string noise;
  for (int i = 0; i < 4096; ++i) noise += static_cast<char>((i * 131 + 7 + (i >> 3)) & 0xFF);
  REQUIRE_FALSE(is_valid_utf8(noise));
  CHECK(noise.size() - utf8_complete_prefix(noise) <= 3);
  for (std::size_t chunk : {1U, 2U, 3U, 7U, 64U}) {
    std::size_t held = 0;
    bool valid = true;
    CHECK(stream(noise, chunk, held, valid) == noise);
    CHECK(held <= 3);
  }
}

TEST_CASE("is_valid_utf8 follows RFC 3629", "[proto]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  CHECK(is_valid_utf8("\xF4\x8F\xBF\xBF"));        // U+10FFFF
  CHECK(is_valid_utf8("\xED\x9F\xBF"));            // U+D7FF, just below the surrogates
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong 3-byte
  CHECK_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
  CHECK_FALSE(is_valid_utf8("\xE2\x82\x41"));      // bad continuation
  CHECK_FALSE(is_valid_utf8("\x80"));
  CHECK_FALSE(is_valid_utf8("\xFF"));
}
