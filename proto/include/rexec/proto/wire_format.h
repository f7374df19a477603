// SPDX-License-Identifier: MIT
// Byte layout of the v2 binary frame (PROTOCOL §3.4; docs/protocol.md), shared by the encoder
// and the decoder so the two cannot drift (LevelDB's log_format.h).
//
//   byte 0       kind (FrameKind)
//   byte 1       n, the length of the id, 1..64
//   bytes 2..    the id (n bytes of [A-Za-z0-9_-]), then the payload up to the end of the frame
//
// A kFileData payload starts with the chunk's sequence number as 8 bytes, big-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rx::proto {

enum class FrameKind : std::uint8_t {
  kShellOutput = 0x01,  // agent → server: raw terminal output of session `id`
  kShellInput = 0x02,   // server → agent: raw input for session `id`
  kFileData = 0x03,     // either way: a chunk of transfer `id` (seq, then bytes)
};

inline constexpr std::uint8_t kMinFrameKind = 0x01;
inline constexpr std::uint8_t kMaxFrameKind = 0x03;

inline constexpr std::size_t kFrameKindOffset = 0;
inline constexpr std::size_t kFrameIdLengthOffset = 1;
inline constexpr std::size_t kFrameIdOffset = 2;
inline constexpr std::size_t kFrameFixedHeaderBytes = 2;  // kind + id length
// Bytes; the id length must fit one byte, and 64 holds "split-" plus a 58-byte connId.
inline constexpr std::size_t kFrameMaxIdBytes = 64;
// Bytes; a uint64 sequence number at the start of every kFileData payload.
inline constexpr std::size_t kFileSeqBytes = 8;

// The id alphabet for session and transfer ids, in frames and in JSON: [A-Za-z0-9_-].
constexpr bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace rx::proto
