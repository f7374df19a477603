// SPDX-License-Identifier: MIT
// rx::Error and rx::Errc: the one error value every module returns (LevelDB's Status, with
// mosh's function + errno pair). Errc names are stable ids: tests and logs rely on them.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rx {

// Stable error codes. Never renumber or rename: errc_name() strings appear in logs and tests.
enum class Errc {
  kOk = 0,
  // General.
  kInvalidArgument,  // a caller passed a value outside the contract
  kNotFound,
  kExists,
  kPermission,
  kTimeout,
  kUnavailable,  // the peer or resource is not there now; retrying may help
  kClosed,       // the object was closed or is shutting down
  kLimit,        // a configured limit (size, count) was reached
  kSystem,       // a system call failed; sys_errno says which
  kConfig,       // configuration is missing or invalid
  kStorage,      // the database failed
  kInternal,     // a bug: an invariant did not hold
  // Protocol decoding (proto). Each carries Error::offset.
  kBadJson,        // not valid JSON, or truncated
  kMissingType,    // no "type" member, or it is not a string
  kUnknownType,    // a well-formed message of a type this side does not handle
  kBadField,       // a required field is missing or has the wrong JSON type
  kBadValue,       // a field has the right type but an impossible value
  kFrameTooLarge,  // the frame exceeds the configured maximum
  kBadBase64,      // terminal bytes are not standard padded base64
  kBadUtf8,        // text that must be UTF-8 is not
  kBadSessionId,   // empty, longer than 64 bytes, or outside [A-Za-z0-9_-]
  kBadFrame,       // a v2 binary frame with a bad header
  // Authentication and authorisation (server).
  kUnauthorized,
  kForbidden,
};

// A short, stable, snake_case name for `code`, for logs and tests ("bad_json").
std::string_view errc_name(Errc code);

struct Error {
  Errc code = Errc::kInternal;
  std::string message;     // one sentence for a person; never contains secrets or payload bytes
  int sys_errno = 0;       // errno (positive) when code == kSystem, else 0
  std::size_t offset = 0;  // byte offset into the input, for protocol errors

  Error() = default;

  Error(Errc c, std::string msg, int err = 0, std::size_t off = 0)
      : code(c), message(std::move(msg)), sys_errno(err), offset(off) {}

  // "fn: strerror(err)" with code kSystem (or a more specific code for common errnos).
  static Error from_errno(std::string_view fn, int err);
  // libuv returns negated errnos on Unix; "fn: <uv name>" with code kSystem.
  static Error from_uv(std::string_view fn, int rc);

  // "<errc_name>: <message>" plus " (at byte N)" for protocol errors.
  [[nodiscard]] std::string to_string() const;
};

}  // namespace rx
