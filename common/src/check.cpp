// SPDX-License-Identifier: MIT
// The failure path of REXEC_CHECK. Writes with plain stdio so it works before logging is set up
// and inside signal-adjacent code paths.
#include "rexec/common/check.h"

#include <cstdio>
#include <cstdlib>

namespace rx::detail {

void check_failed(const char* expr, const char* file, int line) noexcept {
  std::fprintf(stderr, "rexec: check failed: %s at %s:%d\n", expr, file, line);  // NOLINT
  std::abort();
}

}  // namespace rx::detail
