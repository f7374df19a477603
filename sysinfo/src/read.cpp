// SPDX-License-Identifier: MIT
// Readers: fetch the text (or call the system) and hand it to the pure parsers.
#include "rexec/common/file.h"
#include "rexec/sysinfo/sysinfo.h"

#include <sched.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace rx::sysinfo {

namespace {

template <class T, class Parse>
Result<T> read_and_parse(const std::string& path, Parse parse) {
  auto text = read_file(path);
  if (!text) return std::move(text).error();
  return parse(*text);
}

}  // namespace

Result<MemInfo> read_meminfo() { return read_and_parse<MemInfo>("/proc/meminfo", parse_meminfo); }

Result<CpuTimes> read_cpu_times() {
  return read_and_parse<CpuTimes>("/proc/stat", parse_proc_stat);
}

Result<LoadAvg> read_loadavg() { return read_and_parse<LoadAvg>("/proc/loadavg", parse_loadavg); }

Result<double> read_uptime() { return read_and_parse<double>("/proc/uptime", parse_uptime); }

OsRelease read_os_release() {
  for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
    if (auto text = read_file(path)) return parse_os_release(*text);
  }
  return {};
}

std::optional<std::uint64_t> read_memory_limit() {
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    auto text = read_file(path);
    if (!text) continue;
    auto limit = parse_cgroup_memory_limit(*text);
    if (limit) return *limit;
  }
  return std::nullopt;
}

Result<DiskInfo> read_disk(const std::string& path) {
  struct statvfs st {};

  if (::statvfs(path.c_str(), &st) != 0) return Error::from_errno("statvfs " + path, errno);
  const std::uint64_t unit = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
  return DiskInfo{st.f_blocks * unit, st.f_bavail * unit, st.f_bfree * unit};
}

std::string read_hostname() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "unknown";
  return buf.data();
}

unsigned read_num_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<unsigned>(online) : 1U;
}

KernelInfo read_kernel() {
  struct utsname u {};

  if (::uname(&u) != 0) return {"Linux", "", ""};
  return {u.sysname, u.release, u.machine};
}

std::string go_arch(std::string_view machine) {
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64" || machine == "arm64") return "arm64";
  if (machine == "i386" || machine == "i686") return "386";
  if (machine.substr(0, 3) == "arm") return "arm";
  return std::string(machine);
}

std::string region_from(std::string_view configured,
                        const std::function<std::optional<std::string>(const char*)>& getenv) {
  if (!configured.empty()) return std::string(configured);
  if (auto env = getenv("REXEC_REGION"); env && !env->empty()) return *env;
  return "";
}

}  // namespace rx::sysinfo
