// SPDX-License-Identifier: MIT
// REXEC_CHECK(cond): an invariant check that logs file:line and aborts in every build type (mosh's
// fatal_assert). For conditions that only a bug can break; hostile input never reaches one.
#pragma once

namespace rx::detail {

[[noreturn]] void check_failed(const char* expr, const char* file, int line) noexcept;

}  // namespace rx::detail

#define REXEC_CHECK(cond)                                    \
  do {                                                       \
    if (!(cond)) {                                           \
      ::rx::detail::check_failed(#cond, __FILE__, __LINE__); \
    }                                                        \
  } while (false)
