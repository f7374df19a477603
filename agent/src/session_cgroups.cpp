// SPDX-License-Identifier: MIT
// Session cgroups: plain file writes under a cgroup v2 directory. Written by hand because the
// only library for it (libcgroup) speaks cgroup v1 first and would be a second dependency for a
// dozen writes.
#include "session_cgroups.h"

#include "rexec/common/file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

namespace rx::agent {

namespace {

Status write_file(const std::string& path, std::string_view text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open " + path, errno);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Error::from_errno("write " + path, errno);
  }
  return {};
}

// The cgroup v2 mount point, from /proc/self/mountinfo (fields: ... mountpoint ... - fstype ...).
std::optional<std::string> cgroup2_mount() {
  auto text = read_file("/proc/self/mountinfo");
  if (!text) return std::nullopt;
  for (const std::string_view line : split(*text, '\n')) {
    const auto dash = line.find(" - ");
    if (dash == std::string_view::npos || line.substr(dash + 3, 8) != "cgroup2 ") continue;
    const auto fields = words(line.substr(0, dash));
    if (fields.size() >= 5) return std::string(fields[4]);  // the 5th field is the mount point
  }
  return std::nullopt;
}

bool has_word(const std::string& text, const std::string& word) {
  for (const std::string_view w : words(text)) {
    if (w == word) return true;
  }
  return false;
}

}  // namespace

// "0::/path" in /proc/self/cgroup, under the cgroup2 mount.
Result<std::string> own_cgroup() {
  const auto mount = cgroup2_mount();
  if (!mount) return Error(Errc::kUnavailable, "no cgroup v2 hierarchy is mounted");
  auto text = read_file("/proc/self/cgroup");
  if (!text) return text.error();
  for (const std::string_view line : split(*text, '\n')) {
    if (line.substr(0, 3) == "0::") {
      const std::string_view rel = line.substr(3);
      return *mount + (rel == "/" ? std::string() : std::string(rel));
    }
  }
  return Error(Errc::kUnavailable, "this process has no cgroup v2 membership");
}

Status join_cgroup(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::from_errno("mkdir " + path, errno);
  }
  return write_file(path + "/cgroup.procs", "0");
}

Result<SessionCgroups> SessionCgroups::open(std::string root, CgroupLimits limits) {
  const bool own = root.empty();
  if (own) {
    auto mine = own_cgroup();
    if (!mine) return Error(Errc::kUnavailable, mine.error().message);
    root = *mine;
  }
  // A child can be made and removed here (cgroup v2, writable: delegated to us, or root).
  const std::string probe = root + "/rexec-probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error(Errc::kUnavailable,
                 "cannot create a cgroup in " + root + ": " + std::strerror(errno));
  }

  struct stat st {};

  const bool is_v2 = ::stat((probe + "/cgroup.procs").c_str(), &st) == 0 &&
                     ::stat((probe + "/cgroup.kill").c_str(), &st) == 0;
  ::rmdir(probe.c_str());
  if (!is_v2) {
    return Error(Errc::kUnavailable, root + " is not a cgroup v2 directory with cgroup.kill");
  }
  if (limits.any()) {
    auto available = read_file(root + "/cgroup.controllers");
    const std::string have = available ? *available : "";
    std::vector<std::string> need;
    if (!limits.memory_max.empty()) need.emplace_back("memory");
    if (!limits.pids_max.empty()) need.emplace_back("pids");
    if (!limits.cpu_max.empty()) need.emplace_back("cpu");
    for (const auto& c : need) {
      if (!has_word(have, c)) {
        return Error(Errc::kUnavailable,
                     "the " + c + " controller is not available in " + root +
                         " (it may be bound to a cgroup v1 hierarchy, or not delegated)");
      }
    }
    if (own) {
      // No internal processes: a cgroup whose children have controllers holds no process
      // itself. Move into a leaf of our own.
      if (auto w = join_cgroup(root + "/agent"); !w) {
        return Error(Errc::kUnavailable, w.error().message);
      }
    }
    for (const auto& c : need) {
      if (auto w = write_file(root + "/cgroup.subtree_control", "+" + c); !w) {
        return Error(Errc::kUnavailable, "cannot enable " + c + ": " + w.error().message);
      }
    }
  }
  return SessionCgroups(std::move(root), std::move(limits));
}

Result<SessionCgroups::Made> SessionCgroups::create(const std::string& session_id) {
  Made m;
  m.path = root_ + "/session-" + session_id + "-" + std::to_string(::getpid()) + "-" +
           std::to_string(next_++);
  if (::mkdir(m.path.c_str(), 0755) != 0) return Error::from_errno("mkdir " + m.path, errno);
  const auto undo = [&m](Error e) -> Error {
    ::rmdir(m.path.c_str());
    return e;
  };
  const std::pair<const char*, const std::string*> files[] = {{"memory.max", &limits_.memory_max},
                                                              {"pids.max", &limits_.pids_max},
                                                              {"cpu.max", &limits_.cpu_max}};
  for (const auto& [file, value] : files) {
    if (value->empty()) continue;
    if (auto w = write_file(m.path + "/" + file, *value); !w) return undo(w.error());
  }
  m.procs = UniqueFd(::open((m.path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
  if (!m.procs) return undo(Error::from_errno("open " + m.path + "/cgroup.procs", errno));
  return m;
}

void signal_cgroup(const std::string& path, int sig) {
  auto procs = read_file(path + "/cgroup.procs");
  if (!procs) return;
  for (const std::string_view w : words(*procs)) {
    pid_t pid = 0;
    if (std::from_chars(w.data(), w.data() + w.size(), pid).ec == std::errc() && pid > 0) {
      (void)::kill(pid, sig);
    }
  }
}

Status kill_cgroup(const std::string& path) {
  if (auto st = write_file(path + "/cgroup.kill", "1"); st) return {};
  // Before Linux 5.14: one SIGKILL per process. A fork racing with this can escape one round;
  // the caller retries removal, and each retry kills again.
  if (!read_file(path + "/cgroup.procs")) {
    return Error(Errc::kNotFound, "no cgroup at " + path);
  }
  signal_cgroup(path, SIGKILL);
  return {};
}

bool remove_cgroup(const std::string& path) {
  return ::rmdir(path.c_str()) == 0 || errno == ENOENT;
}

Result<CgroupUsage> read_cgroup_usage(const std::string& path) {
  auto stat = read_file(path + "/cpu.stat");
  if (!stat) return stat.error();
  CgroupUsage u;
  const auto number = [](std::string_view text, std::uint64_t& out) {
    return std::from_chars(text.data(), text.data() + text.size(), out).ec == std::errc();
  };
  const auto fields = words(*stat);  // "key value" pairs
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i] == "usage_usec") (void)number(fields[i + 1], u.cpu_usec);
  }
  if (auto mem = read_file(path + "/memory.current")) {
    std::uint64_t bytes = 0;
    if (const auto w = words(*mem); !w.empty() && number(w[0], bytes)) u.memory = bytes;
  }
  if (auto procs = read_file(path + "/cgroup.procs")) {
    u.pids = static_cast<std::uint32_t>(split(*procs, '\n').size());
  }
  return u;
}

}  // namespace rx::agent
