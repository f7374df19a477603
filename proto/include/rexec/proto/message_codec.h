// SPDX-License-Identifier: MIT
// Pure JSON codecs for the v1 envelope {"type":"<string>","data":<value>} (PROTOCOL §3.2, §4.2,
// §8). All functions are pure and safe to call from any thread. nlohmann exceptions never leave
// this module: decoding hostile input returns an Error with a stable Errc and a byte offset.
#pragma once

#include "rexec/common/result.h"
#include "rexec/proto/messages.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rx::proto {

// Bytes; PROTOCOL §3.2: the largest text frame either side accepts (configurable; larger frames
// close the socket with 1009).
inline constexpr std::size_t kDefaultMaxFrameBytes = std::size_t{1} << 20U;

struct DecodeLimits {
  std::size_t max_frame_bytes = kDefaultMaxFrameBytes;
};

// ---- Encoding. Never fails, never throws (except std::bad_alloc). ----
// The output is one JSON text: {"type":"<type>","data":...} with the fields in PROTOCOL order and
// std::optional fields omitted when empty. Terminal and file bytes become standard padded base64.
// Strings that are not valid UTF-8 (user `output`, exec output, error texts, paths) are emitted
// with each bad byte replaced by U+FFFD. Non-finite doubles are emitted as 0. Ids are written as
// given; callers pass valid ids (is_valid_id), and invalid ones are still JSON-escaped.
[[nodiscard]] std::string encode(const AgentMessage& message);
[[nodiscard]] std::string encode(const UserMessage& message);

// One overload per message, for callers holding the struct: same bytes as the variant forms.
[[nodiscard]] std::string encode(const ShellStart& m);
[[nodiscard]] std::string encode(const ShellInput& m);
[[nodiscard]] std::string encode(const ShellResize& m);
[[nodiscard]] std::string encode(const ShellStopSession& m);
[[nodiscard]] std::string encode(const ShellFlow& m);
[[nodiscard]] std::string encode(const ShellStop& m);
[[nodiscard]] std::string encode(const Exec& m);
[[nodiscard]] std::string encode(const Ping& m);
[[nodiscard]] std::string encode(const Pong& m);
[[nodiscard]] std::string encode(const SystemInfo& m);
[[nodiscard]] std::string encode(const Stats& m);
[[nodiscard]] std::string encode(const ShellStarting& m);
[[nodiscard]] std::string encode(const ShellStarted& m);
[[nodiscard]] std::string encode(const ShellOutput& m);
[[nodiscard]] std::string encode(const ShellReplay& m);
[[nodiscard]] std::string encode(const ShellStopped& m);
[[nodiscard]] std::string encode(const ShellError& m);
[[nodiscard]] std::string encode(const ExecResult& m);
[[nodiscard]] std::string encode(const FileGet& m);
[[nodiscard]] std::string encode(const FilePut& m);
[[nodiscard]] std::string encode(const FileData& m);
[[nodiscard]] std::string encode(const FileEnd& m);
[[nodiscard]] std::string encode(const FileError& m);
[[nodiscard]] std::string encode(const FileInfo& m);
[[nodiscard]] std::string encode(const FileAck& m);
[[nodiscard]] std::string encode(const FileList& m);
[[nodiscard]] std::string encode(const FileListResult& m);
[[nodiscard]] std::string encode(const Input& m);
[[nodiscard]] std::string encode(const Resize& m);
[[nodiscard]] std::string encode(const UserExec& m);
[[nodiscard]] std::string encode(const UserPing& m);
[[nodiscard]] std::string encode(const UserPong& m);
[[nodiscard]] std::string encode(const Output& m);
[[nodiscard]] std::string encode(const OffsetMsg& m);
[[nodiscard]] std::string encode(const Gap& m);
[[nodiscard]] std::string encode(const AgentDisconnected& m);
[[nodiscard]] std::string encode(const AgentConnected& m);

// The v1 hot path without copying terminal bytes into a struct first. Same bytes as
// encode(ShellOutput{...}), encode(ShellInput{...}) and encode(Output{...}).
[[nodiscard]] std::string encode_shell_output(std::string_view session_id, std::string_view bytes,
                                              std::optional<std::uint64_t> offset);
[[nodiscard]] std::string encode_shell_input(std::string_view session_id, std::string_view bytes);
[[nodiscard]] std::string encode_output(std::string_view text, std::optional<std::uint64_t> offset);

// ---- Decoding. Never throws (except std::bad_alloc), parses `text` once. ----
// decode_agent_message accepts every message of the agent socket in both directions;
// decode_user_message every message of the user terminal socket. Extra keys are ignored; a JSON
// null in an optional field counts as absent. Errors, checked in this order (Error::offset is a
// byte offset into `text`; for field errors it is best effort, see docs/protocol.md):
//   kFrameTooLarge  text.size() > limits.max_frame_bytes, checked before parsing; offset = the
//                   limit
//   kBadJson        not JSON, or truncated; offset = where the parser stopped
//   kBadUtf8        a JSON string with ill-formed UTF-8 or an unpaired \u surrogate; offset =
//                   where the parser stopped
//   kMissingType    not an object (offset 0), or "type" missing or not a string (offset of the
//                   "type" key, or 0)
//   kUnknownType    a well-formed message of a type this socket does not carry; offset 0.
//                   Callers log it at debug and carry on (PROTOCOL §3.2).
//   kBadField       a required field is missing (offset of the enclosing object's key, or 0), or
//                   a field has the wrong JSON type (offset of its value)
//   kBadValue       a number out of range: negative counts or sizes, an int beyond 32 bits, a
//                   file mode above 07777, shell_resize/resize cols or rows outside 1..10000
//   kBadBase64      terminal or file bytes that are not standard padded base64; offset of the
//                   bad character
//   kBadSessionId   a session or transfer id that is empty, longer than 64 bytes or outside
//                   [A-Za-z0-9_-]; offset of its value
[[nodiscard]] Result<AgentMessage> decode_agent_message(std::string_view text,
                                                        const DecodeLimits& limits = {});
[[nodiscard]] Result<UserMessage> decode_user_message(std::string_view text,
                                                      const DecodeLimits& limits = {});

}  // namespace rx::proto
