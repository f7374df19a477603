// SPDX-License-Identifier: MIT
// The cluster's binary relay frame parser (relay_frame.h). Property: a frame that decodes
// re-encodes to the same bytes, but for the reserved flag bits, which receivers ignore.
#include "rexec/common/check.h"
#include "rexec/server/relay_frame.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto frame = rx::server::decode_relay_frame(bytes);
  if (!frame) return 0;
  std::string want(bytes);
  want[rx::server::kRelayFlagsOffset] =
      static_cast<char>(static_cast<std::uint8_t>(want[rx::server::kRelayFlagsOffset]) &
                        rx::server::kRelayFlagBinary);
  REXEC_CHECK(rx::server::encode_relay_frame(*frame) == want);
  return 0;
}
