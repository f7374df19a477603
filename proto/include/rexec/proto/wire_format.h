// SPDX-License-Identifier: MIT
// Byte layout of the v2 binary frame (PROTOCOL §3.4; docs/protocol.md), shared by the encoder
// and the decoder so the two cannot drift (LevelDB's log_format.h).
//
//   byte 0       kind (FrameKind)
//   byte 1       n, the length of the id, 1..64
//   bytes 2..    the id (ASCII, [A-Za-z0-9_-]), then the payload
//
// kFileData payloads start with the chunk's sequence number as 8 bytes, big-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rx::proto {

enum class FrameKind : std::uint8_t {
  kShellOutput = 0x01,  // agent → server: raw terminal output of session `id`
  kShellInput = 0x02,   // server → agent: raw input for session `id`
  kFileData = 0x03,     // either way: a chunk of transfer `id` (seq, then bytes)
};

inline constexpr std::size_t kFrameKindOffset = 0;
inline constexpr std::size_t kFrameIdLengthOffset = 1;
inline constexpr std::size_t kFrameIdOffset = 2;
inline constexpr std::size_t kFrameFixedHeaderBytes = 2;  // kind + id length
inline constexpr std::size_t kFrameMaxIdBytes = 64;
inline constexpr std::size_t kFileSeqBytes = 8;

}  // namespace rx::proto
