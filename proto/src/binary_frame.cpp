// SPDX-License-Identifier: MIT
#include "rexec/proto/binary_frame.h"

#include "rexec/proto/messages.h"

#include <cstring>

namespace rx::proto {

namespace {

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

}  // namespace

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (char c : id) {
    if (!is_id_char(c)) return false;
  }
  return true;
}

void write_frame_header(FrameKind kind, std::string_view id, char* out) {
  out[kFrameKindOffset] = static_cast<char>(kind);
  out[kFrameIdLengthOffset] = static_cast<char>(id.size());
  std::memcpy(out + kFrameIdOffset, id.data(), id.size());
}

std::string encode_frame(FrameKind kind, std::string_view id, std::string_view payload) {
  std::string out(frame_header_size(id) + payload.size(), '\0');
  write_frame_header(kind, id, out.data());
  if (!payload.empty())
    std::memcpy(out.data() + frame_header_size(id), payload.data(), payload.size());
  return out;
}

std::string encode_file_frame(std::string_view transfer_id, std::uint64_t seq,
                              std::string_view data) {
  std::string payload(kFileSeqBytes, '\0');
  for (std::size_t i = 0; i < kFileSeqBytes; ++i) {
    payload[i] = static_cast<char>((seq >> (8U * (kFileSeqBytes - 1 - i))) & 0xFFU);
  }
  payload.append(data);
  return encode_frame(FrameKind::kFileData, transfer_id, payload);
}

Result<FrameView> decode_frame(std::string_view frame) {
  if (frame.size() < kFrameFixedHeaderBytes) {
    return Error(Errc::kBadFrame, "binary frame shorter than its header", 0, frame.size());
  }
  const auto kind = static_cast<unsigned char>(frame[kFrameKindOffset]);
  if (kind < 0x01U || kind > 0x03U) {
    return Error(Errc::kBadFrame, "unknown binary frame kind", 0, kFrameKindOffset);
  }
  const auto n = static_cast<unsigned char>(frame[kFrameIdLengthOffset]);
  if (n == 0 || n > kFrameMaxIdBytes) {
    return Error(Errc::kBadFrame, "binary frame id length outside 1..64", 0, kFrameIdLengthOffset);
  }
  if (frame.size() < kFrameFixedHeaderBytes + n) {
    return Error(Errc::kBadFrame, "binary frame truncated inside its id", 0, frame.size());
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
    v.seq = (v.seq << 8U) | static_cast<unsigned char>(payload[i]);
  }
  v.data = payload.substr(kFileSeqBytes);
  return v;
}

}  // namespace rx::proto
