// SPDX-License-Identifier: MIT
// Binary relay frames: terminal bytes between two instances of a cluster (Cluster), published on
// Redis as binary-safe strings instead of base64 inside JSON. The byte layout is specified in
// docs/protocol.md ("Binary relay frames"); these constants are shared by encoder and decoder.
#pragma once

#include "rexec/common/result.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rx::server {

// Byte 0 of every relay frame. Never '{' (a JSON envelope) nor 'r' (RedisLink's probe), so a
// receiver tells the three apart by the first byte.
inline constexpr std::uint8_t kRelayMagic = 0xB1;

enum class RelayType : std::uint8_t {
  kOutput = 1,  // agent's instance → user's: one message from the hub to a remote viewer
  kInput = 2,   // user's instance → agent's: one message from the user's socket
};

inline constexpr std::uint8_t kMinRelayType = 1;
inline constexpr std::uint8_t kMaxRelayType = 2;

// Flags (byte 2). Bits other than these are reserved: senders set them to 0, receivers ignore
// them, so a later flag does not break an older receiver.
inline constexpr std::uint8_t kRelayFlagBinary = 0x01;  // the WebSocket message was binary

inline constexpr std::size_t kRelayMagicOffset = 0;
inline constexpr std::size_t kRelayTypeOffset = 1;
inline constexpr std::size_t kRelayFlagsOffset = 2;
inline constexpr std::size_t kRelayOriginLengthOffset = 3;
inline constexpr std::size_t kRelayTargetLengthOffset = 4;
inline constexpr std::size_t kRelayViewerLengthOffset = 5;
inline constexpr std::size_t kRelaySeqOffset = 6;  // 8 bytes, big-endian
inline constexpr std::size_t kRelaySeqBytes = 8;
// bytes; the origin, target and viewer strings follow, then the payload to the end.
inline constexpr std::size_t kRelayFixedHeaderBytes = kRelaySeqOffset + kRelaySeqBytes;
// bytes; each of origin, target and viewer is 1..255 bytes (one length byte). Instance ids are
// a hostname (at most 64 bytes) and 7 more; viewer ids are 16 hex digits and a generation.
inline constexpr std::size_t kRelayMaxIdBytes = 255;

// A relay frame's fields. Decoded, the views point into the buffer given to decode_relay_frame
// and are valid only while it is alive and unmodified.
struct RelayFrame {
  RelayType type = RelayType::kOutput;
  bool binary = false;      // the WebSocket message's opcode: binary (true) or text
  std::uint64_t seq = 0;    // kOutput: the attachment's message number; kInput: 0
  std::string_view origin;  // sender's instance id
  std::string_view target;  // receiver's instance id
  std::string_view viewer;  // the attachment (docs/protocol.md: `<16 hex>.<generation>`)
  std::string_view payload;
};

// The header's size for `f`: kRelayFixedHeaderBytes + origin + target + viewer.
constexpr std::size_t relay_header_size(const RelayFrame& f) {
  return kRelayFixedHeaderBytes + f.origin.size() + f.target.size() + f.viewer.size();
}

// Whether `bytes` starts as a relay frame (its first byte is kRelayMagic); says nothing about
// the rest.
constexpr bool is_relay_frame(std::string_view bytes) {
  return !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kRelayMagic;
}

// The whole frame: header, then f.payload. Preconditions (REXEC_CHECK): origin, target and
// viewer are each 1..kRelayMaxIdBytes bytes.
[[nodiscard]] std::string encode_relay_frame(const RelayFrame& f);

// Never throws. Errors are kBadFrame, with Error::offset: shorter than the fixed header
// (offset = size), first byte not kRelayMagic (0), unknown type (1), an id length of 0 (its
// length byte: 3, 4 or 5), the frame ends inside the ids (offset = size). The payload may be
// empty.
[[nodiscard]] Result<RelayFrame> decode_relay_frame(std::string_view bytes);

}  // namespace rx::server
