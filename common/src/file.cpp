// SPDX-License-Identifier: MIT
// read_file: open and read until EOF; split and words: string_view scanning.
#include "rexec/common/file.h"

#include "rexec/common/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace rx {

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + path, errno);
  std::string out;
  // /proc and /sys files report a size of 0 (or of a page) whatever they hold: read until EOF.
  constexpr std::size_t kStep = 4096;
  for (;;) {
    const std::size_t have = out.size();
    out.resize(have + kStep);
    const ssize_t n = ::read(fd.get(), out.data() + have, kStep);
    if (n < 0 && errno == EINTR) {
      out.resize(have);
      continue;
    }
    if (n < 0) return Error::from_errno("read " + path, errno);
    out.resize(have + static_cast<std::size_t>(n));
    if (n == 0) return out;
  }
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto at = text.find(separator);
    if (at != 0) out.push_back(text.substr(0, at));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return out;
}

std::vector<std::string_view> words(std::string_view text) {
  constexpr std::string_view kBlank = " \t\r\n";
  std::vector<std::string_view> out;
  for (auto start = text.find_first_not_of(kBlank); start != std::string_view::npos;) {
    const auto end = text.find_first_of(kBlank, start);
    out.push_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = text.find_first_not_of(kBlank, end);
  }
  return out;
}

}  // namespace rx
