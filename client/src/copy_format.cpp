// SPDX-License-Identifier: MIT
#include "copy_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace rx::client {

std::optional<RemotePath> parse_remote(std::string_view arg) {
  const std::size_t colon = arg.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  const std::string_view agent = arg.substr(0, colon);
  if (agent.find('/') != std::string_view::npos) return std::nullopt;
  return RemotePath{std::string(agent), std::string(arg.substr(colon + 1))};
}

std::string base_name(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string dir_name(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string with_name_if_dir(const std::string& path, const std::string& name) {
  return !path.empty() && path.back() == '/' ? path + name : path;
}

std::string format_mode(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned int>(mode & 07777U));
  return buf;
}

std::optional<mode_t> parse_mode(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned int value = 0;
  for (const char c : text) {
    if (c < '0' || c > '7') return std::nullopt;
    value = value * 8U + static_cast<unsigned int>(c - '0');
  }
  if (value > 07777U) return std::nullopt;
  return static_cast<mode_t>(value);
}

std::string human_bytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, kUnits[unit]);
  }
  return buf;
}

namespace {

// Bytes per second as text; a transfer that took no measurable time shows no speed.
std::string speed(std::uint64_t bytes, double seconds) {
  if (seconds < 0.001) return "- B/s";
  return human_bytes(static_cast<double>(bytes) / seconds) + "/s";
}

}  // namespace

std::string progress_line(std::string_view name, std::uint64_t done,
                          std::optional<std::uint64_t> total, double seconds) {
  std::string line(name);
  if (total) {
    const std::uint64_t percent =
        *total == 0 ? 100 : std::min<std::uint64_t>(100, done * 100 / *total);
    char pct[8];
    std::snprintf(pct, sizeof pct, "%u%%", static_cast<unsigned int>(percent));
    line += "  " + std::string(pct) + "  " + human_bytes(static_cast<double>(done)) + " / " +
            human_bytes(static_cast<double>(*total));
  } else {
    line += "  " + human_bytes(static_cast<double>(done));
  }
  return line + "  " + speed(done, seconds);
}

std::string summary_line(std::string_view name, std::uint64_t total, double seconds) {
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", seconds);
  return std::string(name) + "  100%  " + human_bytes(static_cast<double>(total)) + " in " + took +
         "  " + speed(total, seconds);
}

std::string server_error_text(int status, std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return j["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

}  // namespace rx::client
