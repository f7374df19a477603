// SPDX-License-Identifier: MIT
#include "rexec/proto/binary_frame.h"

#include "rexec/proto/messages.h"

#include <catch2/catch.hpp>

using namespace rx::proto;
using rx::Errc;

TEST_CASE("binary frames round-trip and match the byte layout", "[proto]") {
  const std::string payload("\x00\x1b[0mhi\xff", 8);
  const std::string f = encode_frame(FrameKind::kShellOutput, "main", payload);
  CHECK(f.substr(0, 6) == std::string("\x01\x04main", 6));
  auto v = decode_frame(f);
  REQUIRE(v);
  CHECK(v->kind == FrameKind::kShellOutput);
  CHECK(v->id == "main");
  CHECK(v->payload == payload);

  std::string buf(frame_header_size("split-x") + 2, '\0');
  write_frame_header(FrameKind::kShellInput, "split-x", buf.data());
  buf.replace(frame_header_size("split-x"), 2, "ls");
  auto in = decode_frame(buf);
  REQUIRE(in);
  CHECK(in->kind == FrameKind::kShellInput);
  CHECK(in->id == "split-x");
  CHECK(in->payload == "ls");

  const std::string file = encode_file_frame("t1", 0x0102030405060708ULL, "data");
  auto fv = decode_frame(file);
  REQUIRE(fv);
  CHECK(fv->kind == FrameKind::kFileData);
  auto chunk = decode_file_payload(fv->payload);
  REQUIRE(chunk);
  CHECK(chunk->seq == 0x0102030405060708ULL);
  CHECK(chunk->data == "data");
}

TEST_CASE("BinaryFrameTruncatedHeader", "[proto]") {
  for (const std::string& f : {std::string(), std::string("\x01", 1)}) {
    auto r = decode_frame(f);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kBadFrame);
    CHECK(r.error().offset == f.size());
  }
  auto inside_id = decode_frame(std::string("\x01\x04ma", 4));
  REQUIRE_FALSE(inside_id);
  CHECK(inside_id.error().code == Errc::kBadFrame);
  CHECK(inside_id.error().offset == 4);
}

TEST_CASE("BinaryFrameBadKind", "[proto]") {
  for (char kind : {'\x00', '\x04', '\xff'}) {
    auto r = decode_frame(std::string(1, kind) + std::string("\x04main", 5));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::kBadFrame);
    CHECK(r.error().offset == 0);
  }
}

TEST_CASE("BinaryFrameIdLengthZero and over 64", "[proto]") {
  auto zero = decode_frame(std::string("\x01\x00xyz", 5));
  REQUIRE_FALSE(zero);
  CHECK(zero.error().code == Errc::kBadFrame);
  CHECK(zero.error().offset == 1);
  auto big = decode_frame(std::string("\x01\x41", 2) + std::string(65, 'a'));
  REQUIRE_FALSE(big);
  CHECK(big.error().offset == 1);
}

TEST_CASE("BinaryFrameBadIdCharacters", "[proto]") {
  auto r = decode_frame(std::string("\x02\x04ma/n", 6));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kBadSessionId);
  CHECK(r.error().offset == 4);
}

TEST_CASE("file payload shorter than its sequence number", "[proto]") {
  auto r = decode_file_payload("1234567");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kBadFrame);
}

TEST_CASE("ids: 1..64 of [A-Za-z0-9_-]", "[proto]") {
  CHECK(is_valid_id("main"));
  CHECK(is_valid_id("split-0b1c2d3e-aaaa-4bbb-8ccc-0123456789ab"));
  CHECK(is_valid_id(std::string(64, 'a')));
  CHECK_FALSE(is_valid_id(std::string(65, 'a')));
  CHECK_FALSE(is_valid_id(""));
  CHECK_FALSE(is_valid_id("a b"));
  CHECK_FALSE(is_valid_id("../x"));
}
