// SPDX-License-Identifier: MIT
// The v2 binary frame codec (wire_format.h). The hot path writes the header in front of bytes
// it already holds (write_frame_header into LWS_PRE-headroom buffers); decode returns views.
#pragma once

#include "rexec/common/result.h"
#include "rexec/proto/wire_format.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace rx::proto {

// Header bytes for `id` (precondition: 1 <= id.size() <= 64).
constexpr std::size_t frame_header_size(std::string_view id) {
  return kFrameFixedHeaderBytes + id.size();
}

// Writes the header at `out` (frame_header_size(id) bytes). Precondition: is_valid_id(id).
void write_frame_header(FrameKind kind, std::string_view id, char* out);

// A whole frame. Precondition: is_valid_id(id).
std::string encode_frame(FrameKind kind, std::string_view id, std::string_view payload);

// A kFileData frame: seq as 8 bytes big-endian, then `data`.
std::string encode_file_frame(std::string_view transfer_id, std::uint64_t seq,
                              std::string_view data);

// Views into the decoded buffer: valid only while that buffer is.
struct FrameView {
  FrameKind kind = FrameKind::kShellOutput;
  std::string_view id;
  std::string_view payload;
};

// Errors: kBadFrame (empty, unknown kind at offset 0, id length 0 or > 64 at offset 1, frame
// shorter than its header), kBadSessionId (id characters, offset of the bad byte).
Result<FrameView> decode_frame(std::string_view frame);

// Splits a kFileData payload into its sequence number and bytes. Errors: kBadFrame.
struct FileChunkView {
  std::uint64_t seq = 0;
  std::string_view data;
};

Result<FileChunkView> decode_file_payload(std::string_view payload);

}  // namespace rx::proto
