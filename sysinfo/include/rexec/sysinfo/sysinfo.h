// SPDX-License-Identifier: MIT
// Host facts for system_info and stats (PROTOCOL §3.2): pure parse_* functions over the text of
// /proc and /etc files, and thin read_* functions that fetch the text or call the system.
// No event loop: read_disk() may block (a hung NFS mount), so the agent calls it off the loop.
#pragma once

#include "rexec/common/result.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace rx::sysinfo {

// ---- pure parsers (errors: kBadField for a missing key or line, kBadValue for a value that
// is not a number or overflows; Error::offset points into the input) ----

struct MemInfo {
  std::uint64_t total = 0;      // bytes
  std::uint64_t available = 0;  // bytes; estimated before Linux 3.14 (see below)
  std::uint64_t free = 0;       // bytes
  bool available_estimated = false;
};

// MemTotal, MemFree, MemAvailable (kB → bytes). Kernels before 3.14 have no MemAvailable; it is
// then estimated as MemFree + Buffers + Cached, the figure `free` used to show.
Result<MemInfo> parse_meminfo(std::string_view text);

struct CpuTimes {  // jiffies from the aggregate "cpu " line
  std::uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                steal = 0;

  [[nodiscard]] std::uint64_t idle_all() const { return idle + iowait; }

  [[nodiscard]] std::uint64_t total() const {
    return user + nice + system + idle + iowait + irq + softirq + steal;
  }
};

// Older kernels have fewer columns; missing trailing ones are 0. Fewer than 4 is an error.
Result<CpuTimes> parse_proc_stat(std::string_view text);
// Busy share of the time between two samples, 0..100; 0 when no time passed or the counters
// went backwards (a reboot between samples).
double cpu_percent(const CpuTimes& prev, const CpuTimes& cur);

// Keeps the previous sample: each call returns the CPU use since the last one (0 the first time).
class CpuSampler {
 public:
  double sample(const CpuTimes& now);

 private:
  std::optional<CpuTimes> prev_;
};

struct LoadAvg {
  double load1 = 0, load5 = 0, load15 = 0;
};

Result<LoadAvg> parse_loadavg(std::string_view text);

// Seconds since boot (first field of /proc/uptime).
Result<double> parse_uptime(std::string_view text);

struct OsRelease {
  std::string id, name, pretty_name, version_id;
  // PRETTY_NAME, else NAME, else ID, else "".
  [[nodiscard]] std::string distro() const;
};

// os-release(5): KEY=value lines, values optionally quoted with shell escapes, # comments.
OsRelease parse_os_release(std::string_view text);

// cgroup memory limit: v2 "memory.max" ("max" = none) or v1 "memory.limit_in_bytes" (a value
// near 2^63 = none). nullopt means unlimited.
Result<std::optional<std::uint64_t>> parse_cgroup_memory_limit(std::string_view text);

// ---- readers ----

Result<MemInfo> read_meminfo();
Result<CpuTimes> read_cpu_times();
Result<LoadAvg> read_loadavg();
Result<double> read_uptime();
OsRelease read_os_release();  // /etc/os-release, then /usr/lib/os-release; empty if neither
// The memory limit of our cgroup (v2, then v1), nullopt if none or unknown.
std::optional<std::uint64_t> read_memory_limit();

struct DiskInfo {
  std::uint64_t total = 0, available = 0, free = 0;  // bytes
};

// statvfs(path). May block on a hung mount: call it off the loop thread.
Result<DiskInfo> read_disk(const std::string& path);

std::string read_hostname();
// CPUs this process may run on (sched_getaffinity), else the online count; at least 1.
unsigned read_num_cpu();

struct KernelInfo {
  std::string sysname, release, machine;
};

KernelInfo read_kernel();

// The Go-style architecture name the deployed service expects ("amd64", "arm64", "386", "arm"),
// from uname's machine ("x86_64", "aarch64", ...); other names pass through.
std::string go_arch(std::string_view machine);

// `configured` if non-empty, else $REXEC_REGION, else "".
std::string region_from(std::string_view configured,
                        const std::function<std::optional<std::string>(const char*)>& getenv);

}  // namespace rx::sysinfo
