// SPDX-License-Identifier: MIT
// The Prometheus text exposition format (version 0.0.4) for GET /metrics: a family per call,
// with its HELP and TYPE lines. Written by hand: it is a dozen lines of printf, and the C++
// client libraries (prometheus-cpp) are not packaged in Debian 12.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rx::server {

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

class MetricsText {
 public:
  void gauge(std::string_view name, std::string_view help, double value);
  void counter(std::string_view name, std::string_view help, std::uint64_t value);
  // One sample with a label set, e.g. labels = R"(version="0.1.0")"; the family's HELP and TYPE
  // are written when `help` is not empty.
  void labelled(std::string_view name, std::string_view type, std::string_view help,
                std::string_view labels, double value);

  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void family(std::string_view name, std::string_view type, std::string_view help);
  std::string out_;
};

// This process's resident memory (bytes) and open file descriptors, from /proc/self; 0 when
// /proc is not readable.
std::uint64_t process_resident_bytes();
std::uint64_t process_open_fds();

}  // namespace rx::server
