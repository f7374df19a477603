// SPDX-License-Identifier: MIT
// spdlog set-up: stderr in the foreground, syslog under systemd.
#include "rexec/common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>

namespace rx {

Status init_logging(const LogOptions& options) {
  const auto level = spdlog::level::from_str(options.level);
  // from_str() maps anything unknown to "off"; only accept "off" when asked for it.
  if (level == spdlog::level::off && options.level != "off") {
    return Error(Errc::kInvalidArgument, "unknown log level '" + options.level + "'");
  }
  std::shared_ptr<spdlog::logger> logger;
  if (options.sink == LogSink::kSyslog) {
    logger = spdlog::syslog_logger_mt("rexec", options.ident, 0, LOG_DAEMON);
    logger->set_pattern("%v");
  } else {
    logger = spdlog::stderr_color_mt("rexec");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return {};
}

bool is_under_journald() {
  return std::getenv("JOURNAL_STREAM") != nullptr;  // NOLINT(concurrency-mt-unsafe): at start-up
}

}  // namespace rx
