// SPDX-License-Identifier: MIT
// The v2 binary frame codec (wire_format.h, docs/protocol.md). The hot path writes the header in
// front of bytes it already holds (write_frame_header into a buffer with LWS_PRE headroom before
// it) and decodes into views, so terminal bytes are never copied by this layer.
#pragma once

#include "rexec/common/result.h"
#include "rexec/proto/wire_format.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rx::proto {

// The number of header bytes in front of the payload for `id`: 2 + id.size().
// Precondition for using the result with write_frame_header: is_valid_id(id).
constexpr std::size_t frame_header_size(std::string_view id) {
  return kFrameFixedHeaderBytes + id.size();
}

// Writes the header (kind, n, id) to out[0 .. frame_header_size(id)); the caller owns `out` and
// puts the payload right after it. Preconditions (checked with REXEC_CHECK): is_valid_id(id).
void write_frame_header(FrameKind kind, std::string_view id, char* out);

// A whole frame: header then `payload`. Precondition (REXEC_CHECK): is_valid_id(id).
[[nodiscard]] std::string encode_frame(FrameKind kind, std::string_view id,
                                       std::string_view payload);

// The header of a kFileData frame, sequence number included: frame_header_size(id) + 8.
constexpr std::size_t file_frame_header_size(std::string_view transfer_id) {
  return frame_header_size(transfer_id) + kFileSeqBytes;
}

// Writes a kFileData frame's header and `seq` (8 bytes big-endian) to
// out[0 .. file_frame_header_size(id)); the chunk's bytes go right after it.
// Precondition (REXEC_CHECK): is_valid_id(transfer_id).
void write_file_frame_header(std::string_view transfer_id, std::uint64_t seq, char* out);

// A kFileData frame whose payload is `seq` as 8 bytes big-endian, then `data`.
// Precondition (REXEC_CHECK): is_valid_id(transfer_id).
[[nodiscard]] std::string encode_file_frame(std::string_view transfer_id, std::uint64_t seq,
                                            std::string_view data);

// A decoded frame. `id` and `payload` point into the buffer given to decode_frame: they are valid
// only while that buffer is alive and unmodified (copy them to keep them longer).
struct FrameView {
  FrameKind kind = FrameKind::kShellOutput;
  std::string_view id;
  std::string_view payload;  // may be empty
};

// Never throws. Errors, with Error::offset:
//   kBadFrame      frame shorter than 2 bytes (offset = size), unknown kind (0), id length 0 or
//                  above 64 (1), frame ends inside the id (offset = size)
//   kBadSessionId  an id byte outside [A-Za-z0-9_-] (offset of that byte)
// The kind is checked against all three kinds; whether it is allowed in this direction is the
// caller's decision.
[[nodiscard]] Result<FrameView> decode_frame(std::string_view frame);

// A kFileData payload split into its sequence number and bytes; `data` views the payload.
struct FileChunkView {
  std::uint64_t seq = 0;
  std::string_view data;
};

// Errors: kBadFrame (payload shorter than 8 bytes; offset = payload size).
[[nodiscard]] Result<FileChunkView> decode_file_payload(std::string_view payload);

}  // namespace rx::proto
