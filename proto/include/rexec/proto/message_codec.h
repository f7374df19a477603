// SPDX-License-Identifier: MIT
// Pure JSON codecs for the v1 envelope {"type":"<string>","data":<value>} (PROTOCOL §3.2, §4.2).
// decode never throws and never crashes: hostile input returns an Error with a stable Errc and
// the byte offset of the problem.
#pragma once

#include "rexec/common/result.h"
#include "rexec/proto/messages.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace rx::proto {

struct DecodeLimits {
  std::size_t max_frame_bytes = 1U << 20U;  // PROTOCOL §3.2: 1 MiB, configurable
};

// Encoders. Terminal and file bytes become standard padded base64; user-socket text is emitted
// as JSON strings with invalid UTF-8 replaced by U+FFFD (never an exception).
std::string encode(const AgentMessage& message);
std::string encode(const UserMessage& message);

// Decoders. Errors (Error::offset is a byte offset into `text`):
//   kFrameTooLarge  text is larger than limits.max_frame_bytes (checked before parsing; offset
//                   = the limit)
//   kBadJson        not JSON, or truncated (offset from the parser)
//   kBadUtf8        JSON string with ill-formed UTF-8 (offset from the parser)
//   kMissingType    not an object, or "type" missing or not a string
//   kUnknownType    a well-formed message of a type this socket does not carry (callers ignore
//                   it and log at debug, PROTOCOL §3.2)
//   kBadField       a required field is missing or has the wrong JSON type (offset: where its
//                   key appears, or 0)
//   kBadValue       a number out of range (negative sizes, resize outside 1..10000)
//   kBadBase64      terminal or file bytes that are not standard padded base64
//   kBadSessionId   a session or transfer id that is empty, longer than 64 bytes, or outside
//                   [A-Za-z0-9_-]
Result<AgentMessage> decode_agent_message(std::string_view text, const DecodeLimits& limits = {});
Result<UserMessage> decode_user_message(std::string_view text, const DecodeLimits& limits = {});

}  // namespace rx::proto
