// SPDX-License-Identifier: MIT
#include "rexec/common/unique_fd.h"

#include <unistd.h>

namespace rx {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

}  // namespace rx
