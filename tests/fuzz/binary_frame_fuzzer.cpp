// SPDX-License-Identifier: MIT
// The v2 binary frame parser. Property: a frame that decodes re-encodes to the same bytes.
#include "rexec/common/check.h"
#include "rexec/proto/binary_frame.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto frame = rx::proto::decode_frame(bytes);
  if (!frame) return 0;
  REXEC_CHECK(rx::proto::encode_frame(frame->kind, frame->id, frame->payload) == bytes);
  if (frame->kind == rx::proto::FrameKind::kFileData) {
    auto chunk = rx::proto::decode_file_payload(frame->payload);
    if (chunk) {
      REXEC_CHECK(rx::proto::encode_file_frame(frame->id, chunk->seq, chunk->data) == bytes);
    }
  }
  return 0;
}
