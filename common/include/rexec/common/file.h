// SPDX-License-Identifier: MIT
// Whole small files (/proc, /sys, /etc/passwd, configs) and the text in them, on plain POSIX
// calls. The agent uses no iostreams: in a static binary they bring libstdc++'s locale
// machinery, about 0.5 MB (docs/install.md, "Size").
#pragma once

#include "rexec/common/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace rx {

// The whole content of `path`. Errors: Error::from_errno("open PATH" or "read PATH"), so
// sys_errno says why (ENOENT for a missing file).
[[nodiscard]] Result<std::string> read_file(const std::string& path);

// The non-empty pieces of `text` between `separator`s, in order. Views into `text`.
std::vector<std::string_view> split(std::string_view text, char separator);

// The words of `text`: the non-empty pieces between spaces, tabs and line ends. Views into `text`.
std::vector<std::string_view> words(std::string_view text);

}  // namespace rx
