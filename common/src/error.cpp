// SPDX-License-Identifier: MIT
// Error construction and stable Errc names.
#include "rexec/common/error.h"

#include <cerrno>
#include <cstring>

namespace rx {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::kOk:
      return "ok";
    case Errc::kInvalidArgument:
      return "invalid_argument";
    case Errc::kNotFound:
      return "not_found";
    case Errc::kExists:
      return "exists";
    case Errc::kPermission:
      return "permission";
    case Errc::kTimeout:
      return "timeout";
    case Errc::kUnavailable:
      return "unavailable";
    case Errc::kClosed:
      return "closed";
    case Errc::kLimit:
      return "limit";
    case Errc::kSystem:
      return "system";
    case Errc::kConfig:
      return "config";
    case Errc::kStorage:
      return "storage";
    case Errc::kInternal:
      return "internal";
    case Errc::kBadJson:
      return "bad_json";
    case Errc::kMissingType:
      return "missing_type";
    case Errc::kUnknownType:
      return "unknown_type";
    case Errc::kBadField:
      return "bad_field";
    case Errc::kBadValue:
      return "bad_value";
    case Errc::kFrameTooLarge:
      return "frame_too_large";
    case Errc::kBadBase64:
      return "bad_base64";
    case Errc::kBadUtf8:
      return "bad_utf8";
    case Errc::kBadSessionId:
      return "bad_session_id";
    case Errc::kBadFrame:
      return "bad_frame";
    case Errc::kUnauthorized:
      return "unauthorized";
    case Errc::kForbidden:
      return "forbidden";
  }
  return "unknown";
}

Error Error::from_errno(std::string_view fn, int err) {
  Errc code = Errc::kSystem;
  switch (err) {
    case ENOENT:
      code = Errc::kNotFound;
      break;
    case EEXIST:
      code = Errc::kExists;
      break;
    case EACCES:
    case EPERM:
      code = Errc::kPermission;
      break;
    case ETIMEDOUT:
      code = Errc::kTimeout;
      break;
    default:
      break;
  }
  std::string msg(fn);
  msg += ": ";
  msg += std::strerror(err);  // NOLINT(concurrency-mt-unsafe): glibc returns static strings here
  return {code, std::move(msg), err};
}

Error Error::from_uv(std::string_view fn, int rc) { return from_errno(fn, rc < 0 ? -rc : rc); }

std::string Error::to_string() const {
  std::string s(errc_name(code));
  s += ": ";
  s += message;
  if (code >= Errc::kBadJson && code <= Errc::kBadFrame) {
    s += " (at byte ";
    s += std::to_string(offset);
    s += ')';
  }
  return s;
}

}  // namespace rx
