// SPDX-License-Identifier: MIT
// The JSON message decoders of both sockets. Property: whatever decodes is stable under
// encode → decode (the first re-encoding may normalise, e.g. a non-finite number; after that
// nothing changes), and nothing crashes or throws.
#include "rexec/common/check.h"
#include "rexec/proto/message_codec.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

template <class Decode>
void round_trip(std::string_view text, Decode decode) {
  rx::proto::DecodeLimits limits;
  limits.max_frame_bytes = 1U << 20U;
  auto first = decode(text, limits);
  if (!first) return;
  const std::string once = rx::proto::encode(*first);
  auto second = decode(once, limits);
  REXEC_CHECK(second);
  const std::string twice = rx::proto::encode(*second);
  auto third = decode(twice, limits);
  REXEC_CHECK(third);
  REXEC_CHECK(*second == *third);
  REXEC_CHECK(twice == rx::proto::encode(*third));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  round_trip(text, [](std::string_view t, const rx::proto::DecodeLimits& l) {
    return rx::proto::decode_agent_message(t, l);
  });
  round_trip(text, [](std::string_view t, const rx::proto::DecodeLimits& l) {
    return rx::proto::decode_user_message(t, l);
  });
  return 0;
}
