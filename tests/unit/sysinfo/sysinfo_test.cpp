// SPDX-License-Identifier: MIT
// sysinfo parsers against captured and documented fixtures (tests/fixtures/proc/README.md), and
// one smoke test of the live readers.
#include "rexec/sysinfo/sysinfo.h"

#include "rexec/common/file.h"

#include <catch2/catch.hpp>

#include <map>

using namespace rx::sysinfo;
using rx::Errc;

namespace {

std::string fixture(const std::string& rel) {
  auto t = rx::read_file(std::string(REXEC_FIXTURES_DIR) + "/proc/" + rel);
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("meminfo from a 6.18 VM", "[sysinfo]") {
  auto m = parse_meminfo(fixture("live-6.18-vm/meminfo"));
  REQUIRE(m);
  CHECK(m->total == 24684096ULL * 1024);
  CHECK(m->free == 24058508ULL * 1024);
  CHECK(m->available == 24276228ULL * 1024);
  CHECK_FALSE(m->available_estimated);
}

TEST_CASE("meminfo from a 2.6.32 kernel estimates MemAvailable", "[sysinfo]") {
  auto m = parse_meminfo(fixture("rhel6-2.6.32/meminfo"));
  REQUIRE(m);
  CHECK(m->total == 8061064ULL * 1024);
  CHECK(m->free == 412348ULL * 1024);
  CHECK(m->available == (412348ULL + 201568ULL + 5312040ULL) * 1024);  // free+buffers+cached
  CHECK(m->available_estimated);
}

TEST_CASE("proc stat: modern and 2.6-era column counts", "[sysinfo]") {
  auto now = parse_proc_stat(fixture("live-6.18-vm/stat"));
  REQUIRE(now);
  CHECK(now->user == 27202);
  CHECK(now->system == 9728);
  CHECK(now->idle == 609946);
  CHECK(now->iowait == 2025);
  CHECK(now->softirq == 79);
  CHECK(now->steal == 147);
  auto old = parse_proc_stat(fixture("rhel6-2.6.32/stat"));
  REQUIRE(old);
  CHECK(old->user == 2255);
  CHECK(old->nice == 34);
  CHECK(old->idle == 22625563);
  CHECK(old->steal == 0);
  auto four = parse_proc_stat("cpu  1 2 3 4\n");  // 2.4-era: four columns, rest are 0
  REQUIRE(four);
  CHECK(four->total() == 10);
}

TEST_CASE("cpu percent from deltas", "[sysinfo]") {
  CpuTimes a;
  a.user = 100;
  a.idle = 900;
  CpuTimes b = a;
  b.user += 30;
  b.system += 20;
  b.idle += 50;
  CHECK(cpu_percent(a, b) == Approx(50.0));
  CHECK(cpu_percent(a, a) == 0.0);  // no time passed
  CHECK(cpu_percent(b, a) == 0.0);  // counters went backwards
  CpuTimes busy = a;
  busy.user += 100;
  CHECK(cpu_percent(a, busy) == Approx(100.0));
  CpuSampler s;
  CHECK(s.sample(a) == 0.0);
  CHECK(s.sample(b) == Approx(50.0));
}

TEST_CASE("loadavg and uptime", "[sysinfo]") {
  auto l = parse_loadavg(fixture("live-6.18-vm/loadavg"));
  REQUIRE(l);
  CHECK(l->load1 == Approx(0.12));
  CHECK(l->load15 == Approx(0.04));
  auto u = parse_uptime(fixture("live-6.18-vm/uptime"));
  REQUIRE(u);
  CHECK(*u == Approx(3253.29));
  CHECK(*parse_uptime(fixture("rhel6-2.6.32/uptime")) == Approx(350735.47));
}

TEST_CASE("os-release quoting and fallbacks", "[sysinfo]") {
  CHECK(parse_os_release(fixture("live-6.18-vm/os-release")).distro() ==
        "Debian GNU/Linux 12 (bookworm)");
  const auto centos = parse_os_release(fixture("rhel6-2.6.32/os-release"));
  CHECK(centos.id == "centos");
  CHECK(centos.version_id == "6");
  CHECK(parse_os_release("NAME='Alpine Linux'\nID=alpine\n").distro() == "Alpine Linux");
  CHECK(parse_os_release("ID=arch\n").distro() == "arch");
  CHECK(parse_os_release(R"(PRETTY_NAME="say \"hi\" \\ \$x")").pretty_name == R"(say "hi" \ $x)");
  CHECK(parse_os_release("# comment\n\n  garbage line\n").distro().empty());
}

TEST_CASE("cgroup memory limits: v1 root, v1 limited, v2", "[sysinfo]") {
  auto root = parse_cgroup_memory_limit(fixture("live-6.18-vm/memory.limit_in_bytes"));
  REQUIRE(root);
  CHECK_FALSE(root->has_value());
  auto limited = parse_cgroup_memory_limit(fixture("cgroup-v1-limited/memory.limit_in_bytes"));
  REQUIRE(limited);
  CHECK(**limited == 536870912ULL);
  auto v2max = parse_cgroup_memory_limit(fixture("cgroup-v2/memory.max"));
  REQUIRE(v2max);
  CHECK_FALSE(v2max->has_value());
  CHECK(**parse_cgroup_memory_limit(fixture("cgroup-v2/memory.max.limited")) == 268435456ULL);
}

TEST_CASE("malformed files give errors, not numbers", "[sysinfo]") {
  const std::map<std::string, Errc> meminfo = {{"malformed/meminfo-no-memfree", Errc::kBadField},
                                               {"malformed/meminfo-garbage", Errc::kBadValue},
                                               {"malformed/meminfo-overflow", Errc::kBadValue},
                                               {"malformed/empty", Errc::kBadField}};
  for (const auto& [file, code] : meminfo) {
    auto r = parse_meminfo(fixture(file));
    INFO(file);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == code);
  }
  auto garbage = parse_meminfo(fixture("malformed/meminfo-garbage"));
  CHECK(garbage.error().offset == std::string("MemTotal:        ").size());
  CHECK(parse_proc_stat(fixture("malformed/stat-nonnumeric")).error().code == Errc::kBadValue);
  CHECK(parse_proc_stat(fixture("malformed/stat-short")).error().code == Errc::kBadField);
  CHECK(parse_proc_stat(fixture("malformed/stat-no-aggregate")).error().code == Errc::kBadField);
  CHECK(parse_proc_stat(fixture("malformed/empty")).error().code == Errc::kBadField);
  CHECK(parse_loadavg(fixture("malformed/loadavg-garbage")).error().code == Errc::kBadValue);
  CHECK_FALSE(parse_loadavg(fixture("malformed/empty")));
  CHECK(parse_uptime(fixture("malformed/uptime-negative")).error().code == Errc::kBadValue);
  CHECK_FALSE(parse_cgroup_memory_limit(fixture("malformed/memory.limit_in_bytes-garbage")));
}

TEST_CASE("arch names and region", "[sysinfo]") {
  CHECK(go_arch("x86_64") == "amd64");
  CHECK(go_arch("aarch64") == "arm64");
  CHECK(go_arch("armv7l") == "arm");
  CHECK(go_arch("riscv64") == "riscv64");
  auto env = [](const char* k) -> std::optional<std::string> {
    return std::string(k) == "REXEC_REGION" ? std::optional<std::string>("eu-west") : std::nullopt;
  };
  auto none = [](const char*) -> std::optional<std::string> { return std::nullopt; };
  CHECK(region_from("us", env) == "us");
  CHECK(region_from("", env) == "eu-west");
  CHECK(region_from("", none).empty());
}

TEST_CASE("live /proc and statvfs smoke test", "[sysinfo]") {
  auto m = read_meminfo();
  REQUIRE(m);
  CHECK(m->total > 0);
  CHECK(m->available <= m->total);
  auto c = read_cpu_times();
  REQUIRE(c);
  CHECK(c->total() > 0);
  auto d = read_disk("/");
  REQUIRE(d);
  CHECK(d->total > 0);
  CHECK(d->available <= d->total);
  CHECK(read_num_cpu() >= 1);
  CHECK_FALSE(read_hostname().empty());
  CHECK(read_kernel().sysname == "Linux");
  CHECK(read_loadavg());
  CHECK(*read_uptime() > 0);
  CHECK_FALSE(read_disk("/no/such/path"));
}
