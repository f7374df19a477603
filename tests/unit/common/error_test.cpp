// SPDX-License-Identifier: MIT
#include "rexec/common/error.h"

#include <catch2/catch.hpp>

#include <cerrno>

using rx::Errc;
using rx::Error;

TEST_CASE("errc names are stable and distinct", "[common]") {
  CHECK(rx::errc_name(Errc::kBadJson) == "bad_json");
  CHECK(rx::errc_name(Errc::kBadSessionId) == "bad_session_id");
  CHECK(rx::errc_name(Errc::kFrameTooLarge) == "frame_too_large");
  for (int a = 0; a <= static_cast<int>(Errc::kForbidden); ++a) {
    for (int b = a + 1; b <= static_cast<int>(Errc::kForbidden); ++b) {
      CHECK(rx::errc_name(static_cast<Errc>(a)) != rx::errc_name(static_cast<Errc>(b)));
    }
  }
}

TEST_CASE("from_errno maps common errnos and names the function", "[common]") {
  const Error e = Error::from_errno("open", ENOENT);
  CHECK(e.code == Errc::kNotFound);
  CHECK(e.sys_errno == ENOENT);
  CHECK(e.message.rfind("open: ", 0) == 0);
  CHECK(Error::from_errno("kill", EPERM).code == Errc::kPermission);
  CHECK(Error::from_errno("read", EIO).code == Errc::kSystem);
  CHECK(Error::from_uv("uv_pipe_open", -EBADF).sys_errno == EBADF);
}

TEST_CASE("protocol errors print their byte offset", "[common]") {
  const Error e(Errc::kBadJson, "unexpected end", 0, 17);
  CHECK(e.to_string() == "bad_json: unexpected end (at byte 17)");
  CHECK(Error(Errc::kTimeout, "slow").to_string() == "timeout: slow");
}
