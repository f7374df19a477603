// SPDX-License-Identifier: MIT
// LevelDB-style corruption fixture: start from a valid encoding, damage it, and check the
// named error and its byte offset. Plus exhaustive truncation/corruption that must never throw.
#include "rexec/proto/message_codec.h"

#include <catch2/catch.hpp>

using namespace rx::proto;
using rx::Errc;

namespace {

class Corruption {
 public:
  explicit Corruption(std::string text) : text_(std::move(text)) {}

  Corruption& truncate(std::size_t n) {
    text_.resize(n);
    return *this;
  }

  Corruption& corrupt_byte(std::size_t offset, char c) {
    text_.at(offset) = c;
    return *this;
  }

  Corruption& replace(const std::string& from, const std::string& to) {
    const auto pos = text_.find(from);
    REQUIRE(pos != std::string::npos);
    text_.replace(pos, from.size(), to);
    return *this;
  }

  [[nodiscard]] const std::string& text() const { return text_; }

  [[nodiscard]] rx::Error agent_error() const {
    auto r = decode_agent_message(text_);
    REQUIRE_FALSE(r);
    return r.error();
  }

  [[nodiscard]] rx::Error user_error() const {
    auto r = decode_user_message(text_);
    REQUIRE_FALSE(r);
    return r.error();
  }

 private:
  std::string text_;
};

const std::string kStart = R"({"type":"shell_start","data":{"session_id":"main","cols":80}})";
const std::string kInput = R"({"type":"shell_input","data":{"session_id":"main","data":"bHMK"}})";

}  // namespace

TEST_CASE("TruncatedJsonIsBadJson", "[proto]") {
  Corruption c(kStart);
  c.truncate(30);
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadJson);
  CHECK(e.offset == 30);  // the parser ran out at the end of the input
}

TEST_CASE("GarbageIsBadJsonAtItsOffset", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("shell_start")", R"("shell_start"!)");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadJson);
  CHECK(e.offset == c.text().find('!', 10));
}

TEST_CASE("MissingTypeRejected", "[proto]") {
  Corruption c(R"({"data":{"session_id":"main"}})");
  CHECK(c.agent_error().code == Errc::kMissingType);
  CHECK(Corruption("[1,2]").agent_error().code == Errc::kMissingType);
  CHECK(Corruption("\"shell_start\"").user_error().code == Errc::kMissingType);
}

TEST_CASE("NonStringTypeRejected", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("shell_start")", "17");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kMissingType);
  CHECK(e.offset == 1);  // where "type" is
}

TEST_CASE("UnknownTypeReported", "[proto]") {
  Corruption c(kStart);
  c.replace("shell_start", "shell_explode");
  CHECK(c.agent_error().code == Errc::kUnknownType);
  // The two sockets carry different types: "input" is a user message only.
  CHECK(Corruption(R"({"type":"input","data":"x"})").agent_error().code == Errc::kUnknownType);
  CHECK(Corruption(kInput).user_error().code == Errc::kUnknownType);
}

TEST_CASE("WrongFieldTypeIsBadField", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("cols":80)", R"("cols":"80")");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadField);
  CHECK(e.offset == c.text().find("\"cols\""));
  Corruption missing(R"({"type":"shell_input","data":{"session_id":"main"}})");
  CHECK(missing.agent_error().code == Errc::kBadField);
  Corruption data_not_object(R"({"type":"shell_input","data":[1]})");
  CHECK(data_not_object.agent_error().code == Errc::kBadField);
}

TEST_CASE("OversizedFrameRejected", "[proto]") {
  const std::string big = R"({"type":"input","data":")" + std::string(2U << 20U, 'a') + "\"}";
  auto r = decode_user_message(big);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kFrameTooLarge);
  CHECK(r.error().offset == (1U << 20U));
  auto ok = decode_user_message(big, DecodeLimits{4U << 20U});
  CHECK(ok);
}

TEST_CASE("InvalidBase64Rejected", "[proto]") {
  Corruption c(kInput);
  c.replace("bHMK", "bH*K");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadBase64);
  CHECK(e.offset == c.text().find("\"data\":\"bH"));
}

TEST_CASE("InvalidUtf8Rejected", "[proto]") {
  Corruption c(R"({"type":"input","data":"abc"})");
  c.corrupt_byte(25, '\xff');
  const auto e = c.user_error();
  CHECK(e.code == Errc::kBadUtf8);
  CHECK(e.offset == 25);
}

TEST_CASE("SessionIdTooLong", "[proto]") {
  Corruption c(kStart);
  c.replace(R"("main")", "\"" + std::string(65, 'a') + "\"");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadSessionId);
  CHECK(e.offset == c.text().find("\"session_id\""));
}

TEST_CASE("SessionIdBadChars", "[proto]") {
  for (const char* id : {"ma in", "../etc", "", "main\\u0000"}) {
    Corruption c(kStart);
    c.replace(R"("main")", std::string("\"") + id + "\"");
    CHECK(c.agent_error().code == Errc::kBadSessionId);
  }
}

TEST_CASE("NegativeResizeRejected", "[proto]") {
  Corruption c(R"({"type":"shell_resize","data":{"session_id":"main","cols":-1,"rows":24}})");
  const auto e = c.agent_error();
  CHECK(e.code == Errc::kBadValue);
  CHECK(e.offset == c.text().find("\"cols\""));
  CHECK(Corruption(R"({"type":"resize","cols":-80,"rows":24})").user_error().code ==
        Errc::kBadValue);
}

TEST_CASE("AbsurdResizeRejected", "[proto]") {
  for (const char* cols : {"0", "10001", "4294967296", "1e9", "80.5"}) {
    Corruption c(std::string(R"({"type":"resize","cols":)") + cols + R"(,"rows":24})");
    const auto code = c.user_error().code;
    CHECK((code == Errc::kBadValue || code == Errc::kBadField));
  }
}

TEST_CASE("every truncation and every byte corruption is handled", "[proto]") {
  const std::string samples[] = {
      kStart, kInput, R"({"type":"resize","cols":80,"rows":24})",
      R"({"type":"exec_result","data":{"command":"x","output":"y","success":true,"exit_code":0}})",
      R"({"type":"stats","data":{"cpu_percent":1.5,"memory":1,"memory_limit":2,"disk_usage":3,"disk_limit":4,"load1":0,"load5":0,"load15":0,"uptime_s":5,"sessions":1}})"};
  std::size_t failures = 0;
  std::size_t successes = 0;
  for (const std::string& s : samples) {
    for (std::size_t n = 0; n < s.size(); ++n) {
      const std::string t = s.substr(0, n);
      auto a = decode_agent_message(t);
      auto u = decode_user_message(t);
      failures += static_cast<std::size_t>(!a) + static_cast<std::size_t>(!u);
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
      for (const char c : {'\0', '"', '}', '\xff', '9', '-'}) {
        std::string t = s;
        t[i] = c;
        auto a = decode_agent_message(t);
        auto u = decode_user_message(t);
        if (a) {
          ++successes;
          CHECK(decode_agent_message(encode(*a)));  // whatever decodes re-encodes decodably
        }
        if (u) CHECK(decode_user_message(encode(*u)));
      }
    }
  }
  CHECK(failures > 0);
  CHECK(successes > 0);
}
