// SPDX-License-Identifier: MIT
// Process-wide logging set-up (spdlog), called once from main(). Message shape: a lower-case event
// then key=value pairs ("session opened sid=main pid=4121"). Never log tokens or terminal bytes.
#pragma once

#include "rexec/common/result.h"

#include <string>
#include <string_view>

namespace rx {

enum class LogSink {
  kStderr,  // foreground: human-readable lines on stderr
  kSyslog,  // under systemd: syslog, which journald collects
};

struct LogOptions {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
  LogSink sink = LogSink::kStderr;
  std::string ident = "rexec";  // syslog identifier
};

// Replaces the default logger. Returns kInvalidArgument for an unknown level.
[[nodiscard]] Status init_logging(const LogOptions& options);

// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM).
[[nodiscard]] bool is_under_journald();

}  // namespace rx
