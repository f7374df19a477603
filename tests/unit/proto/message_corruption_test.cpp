// SPDX-License-Identifier: MIT
// LevelDB-style corruption fixture: start from a valid encoding, damage it (truncate,
// corrupt_byte, set_length, replace) and check the named error and its byte offset. Then damage
// every message of both families at every byte and require that decoding never throws.
#include "rexec/proto/binary_frame.h"
#include "rexec/proto/message_codec.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "test_messages.h"

using namespace rx::proto;
using rx::Errc;

namespace {

class Corruption {
 public:
  explicit Corruption(std::string bytes) : bytes_(std::move(bytes)) {}

  Corruption& truncate(std::size_t n) {
    REQUIRE(n <= bytes_.size());
    bytes_.resize(n);
    return *this;
  }

  Corruption& corrupt_byte(std::size_t offset, char value) {
    bytes_.at(offset) = value;
    return *this;
  }

  // v2 frames: overwrite the id length byte.
  Corruption& set_length(std::size_t n) {
    REQUIRE(n <= 0xFF);
    return corrupt_byte(kFrameIdLengthOffset, static_cast<char>(n));
  }

  Corruption& replace(const std::string& from, const std::string& to) {
    const auto pos = bytes_.find(from);
    REQUIRE(pos != std::string::npos);
    bytes_.replace(pos, from.size(), to);
    return *this;
  }

  [[nodiscard]] std::size_t find(const std::string& s) const {
    const auto pos = bytes_.find(s);
    REQUIRE(pos != std::string::npos);
    return pos;
  }

  [[nodiscard]] const std::string& bytes() const { return bytes_; }

  [[nodiscard]] rx::Error agent_error(const DecodeLimits& limits = {}) const {
    INFO(bytes_);
    auto r = decode_agent_message(bytes_, limits);
    REQUIRE_FALSE(r);
    return r.error();
  }

  [[nodiscard]] rx::Error user_error() const {
    INFO(bytes_);
    auto r = decode_user_message(bytes_);
    REQUIRE_FALSE(r);
    return r.error();
  }

  [[nodiscard]] rx::Error frame_error() const {
    auto r = decode_frame(bytes_);
    REQUIRE_FALSE(r);
    return r.error();
  }

 private:
  std::string bytes_;
};

const std::string kStart = R"({"type":"shell_start","data":{"session_id":"main","cols":80}})";
const std::string kInput = R"({"type":"shell_input","data":{"session_id":"main","data":"bHMK"}})";
const std::string kResize =
    R"({"type":"shell_resize","data":{"session_id":"main","cols":80,"rows":24}})";

std::string frame() { return encode_frame(FrameKind::kShellOutput, "main", "hello"); }

}  // namespace

TEST_CASE("TruncatedJsonIsBadJson", "[proto]") {
  const auto e = Corruption(kStart).truncate(30).agent_error();
  CHECK(e.code == Errc::kBadJson);
  CHECK(e.offset == 30);  // the parser ran out at the end of the input
  // Every shorter prefix: bad JSON, reported where the input ends.
  for (std::size_t n = 0; n < kStart.size(); ++n) {
    const auto t = Corruption(kStart).truncate(n).agent_error();
    INFO(n);
    CHECK(t.code == Errc::kBadJson);
    CHECK(t.offset == n);
  }
}

TEST_CASE("GarbageIsBadJsonAtItsOffset", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("shell_start")", R"("shell_start"!)");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadJson);
  CHECK(e.offset == c.find("!"));
}

TEST_CASE("MissingTypeRejected", "[proto]") {
  const auto e = Corruption(R"({"data":{"session_id":"main"}})").agent_error();
  CHECK(e.code == Errc::kMissingType);
  CHECK(e.offset == 0);
  CHECK(Corruption("[1,2]").agent_error().code == Errc::kMissingType);
  CHECK(Corruption("\"shell_start\"").user_error().code == Errc::kMissingType);
  CHECK(Corruption("null").user_error().code == Errc::kMissingType);
}

TEST_CASE("NonStringTypeRejected", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("shell_start")", "17");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kMissingType);
  CHECK(e.offset == 1);  // where "type" is
  CHECK(Corruption(R"({"type":null})").user_error().code == Errc::kMissingType);
}

TEST_CASE("UnknownTypeReported", "[proto]") {
  Corruption c(kStart);
  c.replace("shell_start", "shell_explode");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kUnknownType);
  CHECK(e.message.find("shell_explode") != std::string::npos);
  // Unknown wins over a malformed body: callers ignore it at debug level.
  CHECK(Corruption(R"({"type":"future","data":7})").agent_error().code == Errc::kUnknownType);
  // The two sockets carry different types.
  CHECK(Corruption(R"({"type":"input","data":"x"})").agent_error().code == Errc::kUnknownType);
  CHECK(Corruption(kInput).user_error().code == Errc::kUnknownType);
  // A non-printable type name is not copied into the message.
  const auto odd = Corruption("{\"type\":\"a\\u0001b\"}").user_error();
  CHECK(odd.code == Errc::kUnknownType);
  CHECK(odd.message.find('\x01') == std::string::npos);
}

TEST_CASE("WrongFieldTypeIsBadField", "[proto]") {
  Corruption c(kResize);
  c.replace(R"("cols":80)", R"("cols":"80")");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadField);
  CHECK(e.offset == c.find(R"("80")"));  // the value
  Corruption data_not_object(R"({"type":"shell_input","data":[1]})");
  const auto d = data_not_object.agent_error();
  CHECK(d.code == Errc::kBadField);
  CHECK(d.offset == data_not_object.find("[1]"));
  Corruption flt(R"({"type":"resize","cols":80.5,"rows":24})");
  CHECK(flt.user_error().code == Errc::kBadField);
  CHECK(flt.user_error().offset == flt.find("80.5"));
}

TEST_CASE("MissingFieldIsBadField", "[proto]") {
  Corruption c(R"({"type":"shell_input","data":{"session_id":"main"}})");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadField);
  CHECK(e.message.find("'data'") != std::string::npos);
  CHECK(e.offset == c.find(R"("data")"));  // the object that lacks it
  const auto top = Corruption(R"({"type":"shell_input"})").agent_error();
  CHECK(top.code == Errc::kBadField);
  CHECK(top.offset == 0);
}

TEST_CASE("NestedFieldErrorPointsInsideItsObject", "[proto]") {
  Corruption c(encode(rx::proto::test::sample_system_info()));
  c.replace(R"("total":107374182400)", R"("total":"x")");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadField);
  CHECK(e.offset == c.find(R"("x")"));  // disk.total, not memory.total
}

TEST_CASE("OversizedFrameRejected", "[proto]") {
  const std::string body = R"({"type":"input","data":")";
  const std::size_t limit = 1U << 20U;
  const std::string big = body + std::string(limit - body.size() - 1, 'a') + "\"}";  // limit + 1
  REQUIRE(big.size() == limit + 1);
  auto r = decode_user_message(big);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kFrameTooLarge);
  CHECK(r.error().offset == limit);
  CHECK(decode_user_message(big.substr(0, limit - 2) + "\"}"));  // exactly the limit
  CHECK(decode_user_message(big, DecodeLimits{limit + 1}));
  // Checked before parsing: even garbage is reported as too large.
  const auto e = Corruption(std::string(100, '{')).agent_error(DecodeLimits{99});
  CHECK(e.code == Errc::kFrameTooLarge);
  CHECK(e.offset == 99);
}

TEST_CASE("InvalidBase64Rejected", "[proto]") {
  Corruption c(kInput);
  c.replace("bHMK", "bH*K");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadBase64);
  CHECK(e.offset == c.find("*"));
  Corruption unpadded(kInput);
  unpadded.replace("bHMK", "bHM");
  CHECK(unpadded.agent_error().code == Errc::kBadBase64);
  Corruption file(encode(FileData{"t1", 0, "abc"}));
  file.replace("YWJj", "YW=j");
  CHECK(file.agent_error().code == Errc::kBadBase64);
  CHECK(file.agent_error().offset == file.find("=j"));
}

TEST_CASE("InvalidUtf8Rejected", "[proto]") {
  Corruption c(R"({"type":"input","data":"abc"})");
  c.corrupt_byte(25, '\xff');
  const auto e = c.user_error();
  CHECK(e.code == Errc::kBadUtf8);
  CHECK(e.offset == 25);
  Corruption split(R"({"type":"input","data":"ab€"})");  // € is 3 bytes; drop the last one
  split.replace("\xe2\x82\xac", "\xe2\x82");
  CHECK(split.user_error().code == Errc::kBadUtf8);
  CHECK(split.user_error().offset == split.find("\xe2\x82") + 2);
  Corruption surrogate(R"({"type":"input","data":"\ud800x"})");
  CHECK(surrogate.user_error().code == Errc::kBadUtf8);
}

TEST_CASE("SessionIdTooLong", "[proto]") {
  const std::string id64(64, 'a');
  CHECK(decode_agent_message(Corruption(kStart).replace("main", id64).bytes()));
  Corruption c(kStart);
  c.replace("main", id64 + "a");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadSessionId);
  CHECK(e.offset == c.find("\"aaaa"));
}

TEST_CASE("SessionIdBadChars", "[proto]") {
  for (const char* id : {"ma in", "../etc", "", "main\\u0000", "m\xc3\xa9", "a.b"}) {
    Corruption c(kStart);
    c.replace(R"("main")", std::string("\"") + id + "\"");
    const auto e = c.agent_error();
    INFO(id);
    CHECK(e.code == Errc::kBadSessionId);
    CHECK(e.offset == c.find(R"("session_id":)") + 13);  // the value's opening quote
  }
  CHECK(Corruption(R"({"type":"file_end","data":{"transfer_id":"t/1","sha256":""}})")
            .agent_error()
            .code == Errc::kBadSessionId);
}

TEST_CASE("NegativeResizeRejected", "[proto]") {
  Corruption c(kResize);
  c.replace(R"("cols":80)", R"("cols":-1)");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadValue);
  CHECK(e.offset == c.find("-1"));
  Corruption user(R"({"type":"resize","cols":-80,"rows":24})");
  CHECK(user.user_error().code == Errc::kBadValue);
  CHECK(user.user_error().offset == user.find("-80"));
}

TEST_CASE("AbsurdResizeRejected", "[proto]") {
  for (const char* rows : {"0", "10001", "65536", "4294967296", "18446744073709551615"}) {
    Corruption c(kResize);
    c.replace(R"("rows":24)", std::string(R"("rows":)") + rows);
    const auto e = c.agent_error();
    INFO(rows);
    CHECK(e.code == Errc::kBadValue);
    CHECK(e.offset == c.find(std::string(":") + rows) + 1);
  }
  // Above 2^64 nlohmann yields a float, which is the wrong JSON type.
  CHECK(Corruption(R"({"type":"resize","cols":1e9,"rows":24})").user_error().code ==
        Errc::kBadField);
}

TEST_CASE("IntegerOutOfRangeRejected", "[proto]") {
  for (const char* code : {"2147483648", "-2147483649", "9223372036854775808"}) {
    Corruption c(R"({"type":"shell_stopped","data":{"session_id":"main","exit_code":0}})");
    c.replace(R"("exit_code":0)", std::string(R"("exit_code":)") + code);
    INFO(code);
    CHECK(c.agent_error().code == Errc::kBadValue);
  }
  CHECK(Corruption(R"({"type":"stats","data":{"cpu_percent":1,"memory":-1}})").agent_error().code ==
        Errc::kBadValue);
  CHECK(Corruption(R"({"type":"file_put","data":{"transfer_id":"t","path":"/x","size":1,)"
                   R"("mode":4096}})")
            .agent_error()
            .code == Errc::kBadValue);
}

TEST_CASE("ImpossibleValuesRejected", "[proto]") {
  Corruption gap(R"({"type":"gap","data":{"from":20,"to":10}})");
  CHECK(gap.user_error().code == Errc::kBadValue);
  CHECK(gap.user_error().offset == gap.find("10"));
  Corruption sha(encode(FileEnd{"t", std::string(64, 'a')}));
  sha.replace(std::string(64, 'a'), std::string(63, 'a') + "g");
  CHECK(sha.agent_error().code == Errc::kBadValue);
}

TEST_CASE("BinaryFrameTruncatedHeader", "[proto]") {
  for (std::size_t n : {0U, 1U}) {
    const auto e = Corruption(frame()).truncate(n).frame_error();
    CHECK(e.code == Errc::kBadFrame);
    CHECK(e.offset == n);
  }
  for (std::size_t n = 2; n < 6; ++n) {  // inside the 4-byte id "main"
    const auto e = Corruption(frame()).truncate(n).frame_error();
    CHECK(e.code == Errc::kBadFrame);
    CHECK(e.offset == n);
  }
  CHECK(decode_frame(Corruption(frame()).truncate(6).bytes()));  // header only, empty payload
}

TEST_CASE("BinaryFrameBadKind", "[proto]") {
  for (char kind : {'\x00', '\x04', '\x7f', '\xff'}) {
    const auto e = Corruption(frame()).corrupt_byte(kFrameKindOffset, kind).frame_error();
    CHECK(e.code == Errc::kBadFrame);
    CHECK(e.offset == 0);
  }
}

TEST_CASE("BinaryFrameIdLengthZero", "[proto]") {
  const auto e = Corruption(frame()).set_length(0).frame_error();
  CHECK(e.code == Errc::kBadFrame);
  CHECK(e.offset == 1);
}

TEST_CASE("BinaryFrameIdLengthOver64", "[proto]") {
  const std::string long_frame =
      encode_frame(FrameKind::kShellInput, std::string(64, 'x'), std::string(10, 'y'));
  CHECK(decode_frame(long_frame));
  const auto e = Corruption(long_frame).set_length(65).frame_error();
  CHECK(e.code == Errc::kBadFrame);
  CHECK(e.offset == 1);
  CHECK(Corruption(long_frame).set_length(255).frame_error().offset == 1);
}

TEST_CASE("BinaryFrameIdLongerThanFrame", "[proto]") {
  const std::string f = frame();  // 11 bytes
  const auto e = Corruption(f).set_length(40).frame_error();
  CHECK(e.code == Errc::kBadFrame);
  CHECK(e.offset == f.size());
}

TEST_CASE("BinaryFrameBadIdChars", "[proto]") {
  const auto e = Corruption(frame()).corrupt_byte(4, '/').frame_error();
  CHECK(e.code == Errc::kBadSessionId);
  CHECK(e.offset == 4);
  // A longer id length swallows payload bytes: 'l' is fine, then ' ' is not.
  const auto swallow =
      Corruption(encode_frame(FrameKind::kShellOutput, "main", "ll x")).set_length(7).frame_error();
  CHECK(swallow.code == Errc::kBadSessionId);
  CHECK(swallow.offset == 8);
}

namespace {

// Decodes `bytes` with both decoders. Counts throws (which must never happen) and checks the
// nlohmann-style round-trip property on success: decode(encode(m)) == m.
struct Tally {
  std::size_t decoded = 0;
  std::size_t rejected = 0;
  std::size_t thrown = 0;
  std::size_t bad_offsets = 0;
  std::size_t unstable = 0;

  void json_text(const std::string& bytes) {
    try {
      auto a = decode_agent_message(bytes);
      if (a) {
        ++decoded;
        auto again = decode_agent_message(encode(*a));
        if (!again || !(*again == *a)) ++unstable;
      } else {
        ++rejected;
        if (a.error().offset > bytes.size()) ++bad_offsets;
      }
      auto u = decode_user_message(bytes);
      if (u) {
        ++decoded;
        auto again = decode_user_message(encode(*u));
        if (!again || !(*again == *u)) ++unstable;
      } else {
        ++rejected;
        if (u.error().offset > bytes.size()) ++bad_offsets;
      }
    } catch (...) {
      ++thrown;
    }
  }

  void binary(const std::string& bytes) {
    try {
      auto f = decode_frame(bytes);
      if (f) {
        ++decoded;
        const bool inside = f->id.data() >= bytes.data() &&
                            f->payload.data() + f->payload.size() == bytes.data() + bytes.size();
        if (!inside || !is_valid_id(f->id)) ++unstable;
        if (f->kind == FrameKind::kFileData) (void)decode_file_payload(f->payload);
      } else {
        ++rejected;
        if (f.error().offset > bytes.size()) ++bad_offsets;
      }
    } catch (...) {
      ++thrown;
    }
  }
};

}  // namespace

TEST_CASE("every truncation and every byte corruption of every message is handled", "[proto]") {
  std::vector<std::string> samples;
  for (const auto& m : rx::proto::test::all_agent_messages()) samples.push_back(encode(m));
  for (const auto& m : rx::proto::test::all_user_messages()) samples.push_back(encode(m));
  Tally t;
  for (const std::string& s : samples) {
    for (std::size_t n = 0; n <= s.size(); ++n) t.json_text(s.substr(0, n));
    for (std::size_t i = 0; i < s.size(); ++i) {
      for (const char c : {'\0', '"', '}', '\xff', '\xc3', '9', '-', '\\'}) {
        std::string damaged = s;
        damaged[i] = c;
        t.json_text(damaged);
      }
    }
  }
  CHECK(t.thrown == 0);
  CHECK(t.bad_offsets == 0);
  CHECK(t.unstable == 0);
  CHECK(t.rejected > 0);
  CHECK(t.decoded > samples.size());  // some damage is harmless (e.g. inside a text field)
}

TEST_CASE("every truncation and every byte value of binary frames is handled", "[proto]") {
  const std::string samples[] = {frame(), encode_frame(FrameKind::kShellInput, "split-a_b", ""),
                                 encode_file_frame("t-1", 258, "chunk")};
  Tally t;
  for (const std::string& s : samples) {
    for (std::size_t n = 0; n <= s.size(); ++n) t.binary(s.substr(0, n));
    for (std::size_t i = 0; i < s.size(); ++i) {
      for (int v = 0; v < 256; ++v) {
        std::string damaged = s;
        damaged[i] = static_cast<char>(v);
        t.binary(damaged);
      }
    }
  }
  CHECK(t.thrown == 0);
  CHECK(t.bad_offsets == 0);
  CHECK(t.unstable == 0);
  CHECK(t.rejected > 0);
  CHECK(t.decoded > 0);
}
