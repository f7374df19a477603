// SPDX-License-Identifier: MIT
// Binary relay frames between cluster instances: the byte layout of docs/protocol.md, views into
// the input, and named corruption cases (a LevelDB-style fixture), each with its offset.
#include "rexec/server/relay_frame.h"

#include <catch2/catch.hpp>

#include <string>

using namespace rx::server;
using rx::Errc;

namespace {

// Every byte value, so a payload that is not text (or UTF-8) is seen to pass unchanged.
std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

RelayFrame sample(std::string_view payload) {
  return {RelayType::kOutput,   true,   0x0102030405060708ULL, "host-abc123", "peer-xyz789",
          "0123456789abcdef.2", payload};
}

// A valid frame, corrupted one way at a time.
class Corrupt {
 public:
  Corrupt() : bytes_(encode_relay_frame(sample("payload"))) {}

  Corrupt& set_byte(std::size_t offset, std::uint8_t value) {
    bytes_[offset] = static_cast<char>(value);
    return *this;
  }

  Corrupt& truncate(std::size_t n) {
    bytes_.resize(n);
    return *this;
  }

  [[nodiscard]] rx::Error error() const {
    auto r = decode_relay_frame(bytes_);
    REQUIRE_FALSE(r);
    return r.error();
  }

 private:
  std::string bytes_;
};

}  // namespace

TEST_CASE("relay frames match the byte layout and round-trip", "[server]") {
  const std::string payload = all_bytes();
  const std::string f = encode_relay_frame(sample(payload));
  const std::string header = std::string("\xB1\x01\x01\x0B\x0B\x12", 6) +
                             std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8) +
                             "host-abc123peer-xyz7890123456789abcdef.2";
  CHECK(f == header + payload);
  CHECK(relay_header_size(sample(payload)) == header.size());
  CHECK(is_relay_frame(f));
  auto v = decode_relay_frame(f);
  REQUIRE(v);
  CHECK(v->type == RelayType::kOutput);
  CHECK(v->binary);
  CHECK(v->seq == 0x0102030405060708ULL);
  CHECK(v->origin == "host-abc123");
  CHECK(v->target == "peer-xyz789");
  CHECK(v->viewer == "0123456789abcdef.2");
  CHECK(v->payload == payload);
  CHECK(v->payload.data() == f.data() + header.size());  // a view: nothing copied
  CHECK(encode_relay_frame(*v) == f);
}

TEST_CASE("relay input frames: text, empty payload, longest ids", "[server]") {
  const std::string id(kRelayMaxIdBytes, 'i');
  const RelayFrame in{RelayType::kInput, false, 0, id, "t", "v.1", ""};
  const std::string f = encode_relay_frame(in);
  CHECK(f.size() == kRelayFixedHeaderBytes + kRelayMaxIdBytes + 1 + 3);
  auto v = decode_relay_frame(f);
  REQUIRE(v);
  CHECK(v->type == RelayType::kInput);
  CHECK_FALSE(v->binary);
  CHECK(v->seq == 0);
  CHECK(v->origin == id);
  CHECK(v->target == "t");
  CHECK(v->viewer == "v.1");
  CHECK(v->payload.empty());
}

TEST_CASE("relay frames: JSON envelopes and probes are not relay frames", "[server]") {
  CHECK_FALSE(is_relay_frame(R"({"type":"output"})"));
  CHECK_FALSE(is_relay_frame("rexec-link-probe:1:2"));
  CHECK_FALSE(is_relay_frame(""));
}

TEST_CASE("relay frames: reserved flag bits are ignored", "[server]") {
  std::string f = encode_relay_frame(sample("x"));
  f[kRelayFlagsOffset] = static_cast<char>(0xFE);  // every bit but kRelayFlagBinary
  auto v = decode_relay_frame(f);
  REQUIRE(v);
  CHECK_FALSE(v->binary);
  CHECK(v->payload == "x");
}

TEST_CASE("relay frames: named corruption cases", "[server]") {
  SECTION("TruncatedFixedHeader") {
    for (std::size_t n = 0; n < kRelayFixedHeaderBytes; ++n) {
      const auto e = Corrupt().truncate(n).error();
      CHECK(e.code == Errc::kBadFrame);
      CHECK(e.offset == n);
    }
  }
  SECTION("BadMagic") {
    const auto e = Corrupt().set_byte(kRelayMagicOffset, '{').error();
    CHECK(e.code == Errc::kBadFrame);
    CHECK(e.offset == kRelayMagicOffset);
  }
  SECTION("UnknownType") {
    for (const int t : {0, 3, 255}) {
      const auto e = Corrupt().set_byte(kRelayTypeOffset, static_cast<std::uint8_t>(t)).error();
      CHECK(e.code == Errc::kBadFrame);
      CHECK(e.offset == kRelayTypeOffset);
    }
  }
  SECTION("ZeroLengthId") {
    for (const std::size_t at :
         {kRelayOriginLengthOffset, kRelayTargetLengthOffset, kRelayViewerLengthOffset}) {
      const auto e = Corrupt().set_byte(at, 0).error();
      CHECK(e.code == Errc::kBadFrame);
      CHECK(e.offset == at);
    }
  }
  SECTION("EndsInsideIds") {
    // Header and ids are 14 + 11 + 11 + 18 bytes: every cut inside the ids is refused.
    for (std::size_t n = kRelayFixedHeaderBytes; n < kRelayFixedHeaderBytes + 40; ++n) {
      const auto e = Corrupt().truncate(n).error();
      CHECK(e.code == Errc::kBadFrame);
      CHECK(e.offset == n);
    }
    const auto e = Corrupt().set_byte(kRelayViewerLengthOffset, 255).error();
    CHECK(e.code == Errc::kBadFrame);
  }
  SECTION("TruncatedPayloadStillDecodes") {
    // The payload runs to the end: a shorter one is a valid frame (Redis delivers whole
    // messages, so a cut cannot happen on the wire), never a read past the end.
    const std::string cut = encode_relay_frame(sample("payload")).substr(0, 14 + 40 + 3);
    auto v = decode_relay_frame(cut);  // views into `cut`
    REQUIRE(v);
    CHECK(v->payload == "pay");
  }
}

TEST_CASE("relay frames: every prefix and every single-byte change decodes or fails cleanly",
          "[server]") {
  const std::string f = encode_relay_frame(sample(all_bytes()));
  for (std::size_t n = 0; n <= f.size(); ++n) {
    auto r = decode_relay_frame(std::string_view(f).substr(0, n));
    if (r) CHECK(r->payload.data() + r->payload.size() == f.data() + n);
  }
  for (std::size_t at = 0; at < relay_header_size(sample("")); ++at) {
    for (int b = 0; b < 256; ++b) {
      std::string g = f;
      g[at] = static_cast<char>(b);
      auto r = decode_relay_frame(g);
      if (r) {
        CHECK(r->origin.size() + r->target.size() + r->viewer.size() + r->payload.size() +
                  kRelayFixedHeaderBytes ==
              g.size());
      } else {
        CHECK(r.error().code == Errc::kBadFrame);
        CHECK(r.error().offset <= g.size());
      }
    }
  }
}
