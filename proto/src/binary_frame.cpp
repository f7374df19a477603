// SPDX-License-Identifier: MIT
// v2 binary frames: header writer and a decoder that returns views into its input.
#include "rexec/proto/binary_frame.h"

#include "rexec/common/check.h"
#include "rexec/proto/messages.h"

#include <cstring>

namespace rx::proto {

void write_frame_header(FrameKind kind, std::string_view id, char* out) {
  REXEC_CHECK(is_valid_id(id));
  out[kFrameKindOffset] = static_cast<char>(kind);
  out[kFrameIdLengthOffset] = static_cast<char>(static_cast<std::uint8_t>(id.size()));
  std::memcpy(out + kFrameIdOffset, id.data(), id.size());
}

std::string encode_frame(FrameKind kind, std::string_view id, std::string_view payload) {
  const std::size_t header = frame_header_size(id);
  std::string out(header + payload.size(), '\0');
  write_frame_header(kind, id, out.data());
  if (!payload.empty()) std::memcpy(out.data() + header, payload.data(), payload.size());
  return out;
}

void write_file_frame_header(std::string_view transfer_id, std::uint64_t seq, char* out) {
  const std::size_t header = frame_header_size(transfer_id);
  write_frame_header(FrameKind::kFileData, transfer_id, out);
  for (std::size_t i = 0; i < kFileSeqBytes; ++i) {
    out[header + i] = static_cast<char>((seq >> (8U * (kFileSeqBytes - 1 - i))) & 0xFFU);
  }
}

std::string encode_file_frame(std::string_view transfer_id, std::uint64_t seq,
                              std::string_view data) {
  const std::size_t header = file_frame_header_size(transfer_id);
  std::string out(header + data.size(), '\0');
  write_file_frame_header(transfer_id, seq, out.data());
  if (!data.empty()) std::memcpy(out.data() + header, data.data(), data.size());
  return out;
}

Result<FrameView> decode_frame(std::string_view frame) {
  if (frame.size() < kFrameFixedHeaderBytes) {
    return Error(Errc::kBadFrame, "binary frame shorter than its header", 0, frame.size());
  }
  const auto kind = static_cast<std::uint8_t>(frame[kFrameKindOffset]);
  if (kind < kMinFrameKind || kind > kMaxFrameKind) {
    return Error(Errc::kBadFrame, "unknown binary frame kind", 0, kFrameKindOffset);
  }
  const auto n = static_cast<std::uint8_t>(frame[kFrameIdLengthOffset]);
  if (n == 0 || n > kFrameMaxIdBytes) {
    return Error(Errc::kBadFrame, "binary frame id length outside 1..64", 0, kFrameIdLengthOffset);
  }
  if (frame.size() < kFrameIdOffset + n) {
    return Error(Errc::kBadFrame, "binary frame ends inside its id", 0, frame.size());
  }
  FrameView v;
  v.kind = static_cast<FrameKind>(kind);
  v.id = frame.substr(kFrameIdOffset, n);
  for (std::size_t i = 0; i < v.id.size(); ++i) {
    if (!is_id_char(v.id[i])) {
      return Error(Errc::kBadSessionId, "bad character in binary frame id", 0, kFrameIdOffset + i);
    }
  }
  v.payload = frame.substr(kFrameIdOffset + n);
  return v;
}

Result<FileChunkView> decode_file_payload(std::string_view payload) {
  if (payload.size() < kFileSeqBytes) {
    return Error(Errc::kBadFrame, "file chunk shorter than its sequence number", 0, payload.size());
  }
  FileChunkView v;
  for (std::size_t i = 0; i < kFileSeqBytes; ++i) {
    v.seq = (v.seq << 8U) | static_cast<std::uint8_t>(payload[i]);
  }
  v.data = payload.substr(kFileSeqBytes);
  return v;
}

}  // namespace rx::proto
