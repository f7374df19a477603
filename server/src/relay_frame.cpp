// SPDX-License-Identifier: MIT
// Binary relay frames (relay_frame.h): one copy of the payload to encode, views to decode.
#include "rexec/server/relay_frame.h"

#include "rexec/common/check.h"

#include <array>
#include <cstring>

namespace rx::server {

std::string encode_relay_frame(const RelayFrame& f) {
  for (const std::string_view id : {f.origin, f.target, f.viewer}) {
    REXEC_CHECK(!id.empty() && id.size() <= kRelayMaxIdBytes);
  }
  std::string out(relay_header_size(f) + f.payload.size(), '\0');
  out[kRelayMagicOffset] = static_cast<char>(kRelayMagic);
  out[kRelayTypeOffset] = static_cast<char>(f.type);
  out[kRelayFlagsOffset] = static_cast<char>(f.binary ? kRelayFlagBinary : 0U);
  out[kRelayOriginLengthOffset] = static_cast<char>(f.origin.size());
  out[kRelayTargetLengthOffset] = static_cast<char>(f.target.size());
  out[kRelayViewerLengthOffset] = static_cast<char>(f.viewer.size());
  for (std::size_t i = 0; i < kRelaySeqBytes; ++i) {
    out[kRelaySeqOffset + i] =
        static_cast<char>((f.seq >> (8U * (kRelaySeqBytes - 1 - i))) & 0xFFU);
  }
  char* p = out.data() + kRelayFixedHeaderBytes;
  for (const std::string_view part : {f.origin, f.target, f.viewer, f.payload}) {
    if (!part.empty()) std::memcpy(p, part.data(), part.size());
    p += part.size();
  }
  return out;
}

Result<RelayFrame> decode_relay_frame(std::string_view bytes) {
  if (bytes.size() < kRelayFixedHeaderBytes) {
    return Error(Errc::kBadFrame, "relay frame shorter than its header", 0, bytes.size());
  }
  if (!is_relay_frame(bytes)) {
    return Error(Errc::kBadFrame, "not a relay frame", 0, kRelayMagicOffset);
  }
  const auto type = static_cast<std::uint8_t>(bytes[kRelayTypeOffset]);
  if (type < kMinRelayType || type > kMaxRelayType) {
    return Error(Errc::kBadFrame, "unknown relay frame type", 0, kRelayTypeOffset);
  }
  RelayFrame f;
  f.type = static_cast<RelayType>(type);
  f.binary = (static_cast<std::uint8_t>(bytes[kRelayFlagsOffset]) & kRelayFlagBinary) != 0;
  for (std::size_t i = 0; i < kRelaySeqBytes; ++i) {
    f.seq = (f.seq << 8U) | static_cast<std::uint8_t>(bytes[kRelaySeqOffset + i]);
  }
  const std::array<std::size_t, 3> length_at = {kRelayOriginLengthOffset, kRelayTargetLengthOffset,
                                                kRelayViewerLengthOffset};
  std::array<std::string_view*, 3> ids = {&f.origin, &f.target, &f.viewer};
  std::size_t at = kRelayFixedHeaderBytes;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto n = static_cast<std::uint8_t>(bytes[length_at[i]]);
    if (n == 0) return Error(Errc::kBadFrame, "relay frame id of length 0", 0, length_at[i]);
    if (bytes.size() - at < n) {
      return Error(Errc::kBadFrame, "relay frame ends inside its ids", 0, bytes.size());
    }
    *ids[i] = bytes.substr(at, n);
    at += n;
  }
  f.payload = bytes.substr(at);
  return f;
}

}  // namespace rx::server
