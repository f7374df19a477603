// SPDX-License-Identifier: MIT
// Pure parsers over /proc and os-release text.
#include "rexec/sysinfo/sysinfo.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace rx::sysinfo {

namespace {

std::size_t offset_in(std::string_view whole, std::string_view part) {
  return static_cast<std::size_t>(part.data() - whole.data());
}

// Splits off the next whitespace-separated token of `s` (advancing it).
std::string_view next_token(std::string_view& s) {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  std::size_t j = i;
  while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
  std::string_view tok = s.substr(i, j - i);
  s.remove_prefix(j);
  return tok;
}

Result<std::uint64_t> to_u64(std::string_view whole, std::string_view tok) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (tok.empty() || ec != std::errc() || end != tok.data() + tok.size()) {
    return Error(Errc::kBadValue,
                 "not a non-negative integer: '" + std::string(tok.substr(0, 32)) + "'", 0,
                 offset_in(whole, tok));
  }
  return v;
}

Result<double> to_double(std::string_view whole, std::string_view tok) {
  // strtod, not std::from_chars: libstdc++'s from_chars for double brings 25 KB and glibc's
  // locale switching into the static agent. Nothing in the agent calls setlocale, so the decimal
  // point is the C locale's '.'. Decimal digits only: strtod would also take hex floats.
  std::array<char, 64> text{};
  double v = -1;
  char* end = nullptr;
  const bool decimal = !tok.empty() && tok.size() < text.size() && tok[0] >= '0' && tok[0] <= '9' &&
                       tok.find_first_of("xX") == std::string_view::npos;
  if (decimal) {
    std::memcpy(text.data(), tok.data(), tok.size());
    v = std::strtod(text.data(), &end);
  }
  if (!decimal || end != text.data() + tok.size() || !std::isfinite(v) || v < 0) {
    return Error(Errc::kBadValue,
                 "not a non-negative number: '" + std::string(tok.substr(0, 32)) + "'", 0,
                 offset_in(whole, tok));
  }
  return v;
}

// Calls fn(line) for each line of text.
template <class F>
void for_each_line(std::string_view text, F fn) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!fn(line)) return;
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

Result<MemInfo> parse_meminfo(std::string_view text) {
  std::optional<std::uint64_t> total, free, available, buffers, cached;
  std::optional<Error> error;
  constexpr std::uint64_t kMaxKb = std::numeric_limits<std::uint64_t>::max() / 1024;
  for_each_line(text, [&](std::string_view line) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return true;
    const std::string_view key = line.substr(0, colon);
    std::optional<std::uint64_t>* slot = nullptr;
    if (key == "MemTotal") slot = &total;
    if (key == "MemFree") slot = &free;
    if (key == "MemAvailable") slot = &available;
    if (key == "Buffers") slot = &buffers;
    if (key == "Cached") slot = &cached;
    if (slot == nullptr) return true;
    std::string_view rest = line.substr(colon + 1);
    auto v = to_u64(text, next_token(rest));
    if (!v || *v > kMaxKb) {
      error = v ? Error(Errc::kBadValue, std::string(key) + " overflows", 0, offset_in(text, line))
                : v.error();
      return false;
    }
    *slot = *v * 1024;
    return true;
  });
  if (error) return *error;
  if (!total || !free) return Error(Errc::kBadField, "meminfo has no MemTotal or MemFree");
  MemInfo m;
  m.total = *total;
  m.free = *free;
  if (available) {
    m.available = *available;
  } else {
    m.available = std::min(m.total, *free + buffers.value_or(0) + cached.value_or(0));
    m.available_estimated = true;
  }
  return m;
}

Result<CpuTimes> parse_proc_stat(std::string_view text) {
  std::optional<std::string_view> cpu_line;
  for_each_line(text, [&](std::string_view line) {
    if (line.substr(0, 4) == "cpu " || line == "cpu") {
      cpu_line = line;
      return false;
    }
    return true;
  });
  if (!cpu_line) return Error(Errc::kBadField, "/proc/stat has no aggregate cpu line");
  std::string_view rest = cpu_line->substr(3);
  std::uint64_t values[8] = {};
  int n = 0;
  for (; n < 8; ++n) {
    const std::string_view tok = next_token(rest);
    if (tok.empty()) break;
    auto v = to_u64(text, tok);
    if (!v) return v.error();
    values[n] = *v;
  }
  if (n < 4) {
    return Error(Errc::kBadField, "cpu line has fewer than 4 columns", 0,
                 offset_in(text, *cpu_line));
  }
  CpuTimes t;
  t.user = values[0];
  t.nice = values[1];
  t.system = values[2];
  t.idle = values[3];
  t.iowait = values[4];
  t.irq = values[5];
  t.softirq = values[6];
  t.steal = values[7];
  return t;
}

double cpu_percent(const CpuTimes& prev, const CpuTimes& cur) {
  if (cur.total() <= prev.total() || cur.idle_all() < prev.idle_all()) return 0.0;
  const auto total = static_cast<double>(cur.total() - prev.total());
  const auto idle = static_cast<double>(cur.idle_all() - prev.idle_all());
  const double busy = (total - idle) / total * 100.0;
  return std::clamp(busy, 0.0, 100.0);
}

double CpuSampler::sample(const CpuTimes& now) {
  const double pct = prev_ ? cpu_percent(*prev_, now) : 0.0;
  prev_ = now;
  return pct;
}

Result<LoadAvg> parse_loadavg(std::string_view text) {
  std::string_view rest = text;
  LoadAvg l;
  double* out[] = {&l.load1, &l.load5, &l.load15};
  for (double* o : out) {
    auto v = to_double(text, next_token(rest));
    if (!v) return v.error();
    *o = *v;
  }
  return l;
}

Result<double> parse_uptime(std::string_view text) {
  std::string_view rest = text;
  return to_double(text, next_token(rest));
}

std::string OsRelease::distro() const {
  if (!pretty_name.empty()) return pretty_name;
  if (!name.empty()) return name;
  return id;
}

OsRelease parse_os_release(std::string_view text) {
  OsRelease r;
  for_each_line(text, [&](std::string_view line) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') return true;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return true;
    const std::string_view key = line.substr(0, eq);
    std::string_view raw = line.substr(eq + 1);
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\r')) raw.remove_suffix(1);
    std::string value;
    if (!raw.empty() && (raw.front() == '"' || raw.front() == '\'')) {
      const char quote = raw.front();
      raw.remove_prefix(1);
      if (!raw.empty() && raw.back() == quote) raw.remove_suffix(1);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        // Inside double quotes, \" \\ \$ \` are escapes (os-release(5) follows shell rules).
        if (quote == '"' && raw[i] == '\\' && i + 1 < raw.size()) ++i;
        value += raw[i];
      }
    } else {
      value = std::string(raw);
    }
    if (key == "ID") r.id = value;
    if (key == "NAME") r.name = value;
    if (key == "PRETTY_NAME") r.pretty_name = value;
    if (key == "VERSION_ID") r.version_id = value;
    return true;
  });
  return r;
}

Result<std::optional<std::uint64_t>> parse_cgroup_memory_limit(std::string_view text) {
  std::string_view rest = text;
  const std::string_view tok = next_token(rest);
  if (tok == "max") return std::optional<std::uint64_t>();
  auto v = to_u64(text, tok);
  if (!v) return v.error();
  // cgroup v1 reports "no limit" as the largest page-aligned value below 2^63.
  constexpr std::uint64_t kUnlimited = 1ULL << 62U;
  if (*v >= kUnlimited) return std::optional<std::uint64_t>();
  return std::optional<std::uint64_t>(*v);
}

}  // namespace rx::sysinfo
