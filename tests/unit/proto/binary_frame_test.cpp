// SPDX-License-Identifier: MIT
// v2 binary frames: the byte layout of docs/protocol.md, header writing into caller-owned
// buffers with headroom, and views into the input. Corruption cases are in
// message_corruption_test.cpp.
#include "rexec/proto/binary_frame.h"

#include "rexec/proto/messages.h"

#include <catch2/catch.hpp>

#include <cstring>

using namespace rx::proto;
using rx::Errc;

TEST_CASE("binary frames match the byte layout and round-trip", "[proto]") {
  const std::string payload("\x00\x1b[0mhi\xff", 8);
  const std::string f = encode_frame(FrameKind::kShellOutput, "main", payload);
  CHECK(f == std::string("\x01\x04main", 6) + payload);
  auto v = decode_frame(f);
  REQUIRE(v);
  CHECK(v->kind == FrameKind::kShellOutput);
  CHECK(v->id == "main");
  CHECK(v->payload == payload);
  // Views point into the input: nothing was copied.
  CHECK(v->id.data() == f.data() + kFrameIdOffset);
  CHECK(v->payload.data() == f.data() + 6);
}

TEST_CASE("write_frame_header fills only its bytes of a buffer with headroom", "[proto]") {
  constexpr std::size_t kHeadroom = 16;  // stands in for LWS_PRE
  const std::string id = "split-x";
  REQUIRE(frame_header_size(id) == 9);
  std::string buf(kHeadroom + frame_header_size(id) + 2, '#');
  write_frame_header(FrameKind::kShellInput, id, buf.data() + kHeadroom);
  std::memcpy(buf.data() + kHeadroom + frame_header_size(id), "ls", 2);
  CHECK(buf.substr(0, kHeadroom) == std::string(kHeadroom, '#'));
  auto in = decode_frame(std::string_view(buf).substr(kHeadroom));
  REQUIRE(in);
  CHECK(in->kind == FrameKind::kShellInput);
  CHECK(in->id == id);
  CHECK(in->payload == "ls");
}

TEST_CASE("file_data frames carry a big-endian sequence number", "[proto]") {
  const std::string f = encode_file_frame("t1", 0x0102030405060708ULL, "data");
  CHECK(f == std::string("\x03\x02t1\x01\x02\x03\x04\x05\x06\x07\x08"
                         "data",
                         16));
  auto fv = decode_frame(f);
  REQUIRE(fv);
  CHECK(fv->kind == FrameKind::kFileData);
  CHECK(fv->id == "t1");
  auto chunk = decode_file_payload(fv->payload);
  REQUIRE(chunk);
  CHECK(chunk->seq == 0x0102030405060708ULL);
  CHECK(chunk->data == "data");
  auto empty = decode_file_payload(std::string(8, '\xff'));
  REQUIRE(empty);
  CHECK(empty->seq == ~0ULL);
  CHECK(empty->data.empty());
}

TEST_CASE("file payload shorter than its sequence number", "[proto]") {
  auto r = decode_file_payload("1234567");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kBadFrame);
  CHECK(r.error().offset == 7);
}

TEST_CASE("ids: 1..64 of [A-Za-z0-9_-]", "[proto]") {
  CHECK(is_valid_id("main"));
  CHECK(is_valid_id("split-0b1c2d3e-aaaa-4bbb-8ccc-0123456789ab"));
  CHECK(is_valid_id("split-" + std::string(58, 'c')));  // the longest connId a split can use
  CHECK_FALSE(is_valid_id("split-" + std::string(59, 'c')));
  CHECK(is_valid_id("A_z-09"));
  CHECK_FALSE(is_valid_id(""));
  CHECK_FALSE(is_valid_id("a b"));
  CHECK_FALSE(is_valid_id("../x"));
  CHECK_FALSE(is_valid_id(std::string("a\0b", 3)));
  static_assert(is_valid_id("main"));
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    const bool expected = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
    CHECK(is_valid_id(std::string(1, ch)) == expected);
  }
}
