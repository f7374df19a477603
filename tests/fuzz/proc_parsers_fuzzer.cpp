// SPDX-License-Identifier: MIT
// The /proc and /etc parsers: any text gives a value or an error, never a crash.
#include "rexec/sysinfo/sysinfo.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)rx::sysinfo::parse_meminfo(text);
  (void)rx::sysinfo::parse_proc_stat(text);
  (void)rx::sysinfo::parse_loadavg(text);
  (void)rx::sysinfo::parse_uptime(text);
  (void)rx::sysinfo::parse_os_release(text);
  (void)rx::sysinfo::parse_cgroup_memory_limit(text);
  return 0;
}
