// SPDX-License-Identifier: MIT
// UniqueFd: a move-only owner of a file descriptor that closes it in its destructor. release() is
// the only way to hand the fd to another owner (for example uv_pipe_open, which closes it later).
#pragma once

#include <cstdint>
#include <utility>

namespace rx {

class UniqueFd {
 public:
  UniqueFd() = default;

  explicit UniqueFd(int fd) : fd_(fd) {}

  ~UniqueFd() { reset(); }

  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}

  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }

  [[nodiscard]] int get() const { return fd_; }

  [[nodiscard]] bool is_valid() const { return fd_ >= 0; }

  explicit operator bool() const { return is_valid(); }

  // Gives up ownership without closing; returns the fd (or -1).
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }

  // Closes the current fd (errors are ignored: there is nothing useful to do on close failure)
  // and takes ownership of `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Raises this process's soft limit on open files to its hard limit (systemd starts services at
// 1,024) and returns the soft limit now in force (0 if it cannot be read). Children inherit it.
std::uint64_t raise_open_file_limit();

}  // namespace rx
