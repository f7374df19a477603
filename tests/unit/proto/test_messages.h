// SPDX-License-Identifier: MIT
// One sample of every message of both families (optional fields both set and unset), shared by
// the round-trip, golden and corruption tests.
#pragma once

#include "rexec/proto/messages.h"

#include <optional>
#include <string>
#include <vector>

namespace rx::proto::test {

inline SystemInfo sample_system_info() {
  SystemInfo info;
  info.hostname = "box";
  info.num_cpu = 8;
  info.memory = {16ULL << 30U, 8ULL << 30U, 4ULL << 30U};
  info.disk = {100ULL << 30U, 50ULL << 30U, 55ULL << 30U};
  info.region = "eu";
  info.os = "linux";
  info.arch = "amd64";
  info.distro = "Debian GNU/Linux 12 (bookworm)";
  info.kernel = "6.1.0";
  info.agent_version = "0.1.0";
  info.shell = "/bin/bash";
  return info;
}

inline Stats sample_stats() {
  return Stats{12.5, 1ULL << 30U, 2ULL << 30U, 3ULL << 30U, 4ULL << 30U, 0.5,
               0.25, 0.125,       3600,        2,           "",          {}};
}

inline std::vector<AgentMessage> all_agent_messages() {
  return {
      ShellStart{"main", false, std::nullopt, std::nullopt, std::nullopt},
      ShellStart{"split-abc", true, 120, 40, 4096},
      ShellInput{"main", std::string("ls -la\n\x00\xff", 9)},
      ShellInput{"main", ""},
      ShellResize{"main", 80, 24},
      ShellResize{"split-x", 1, 10000},
      ShellStopSession{"split-abc"},
      ShellStop{},
      ShellFlow{"main", true},
      ShellFlow{"split-abc", false},
      Exec{"uname -a", std::nullopt, std::nullopt},
      Exec{"sleep 1", 30, std::string("e17")},
      Ping{},
      Pong{},
      sample_system_info(),
      sample_stats(),
      ShellStarting{"main"},
      ShellStarted{"main"},
      ShellStarted{"split-9", true},
      ShellReplay{"main", 0, ""},
      ShellReplay{"split-1", 262144, std::string("\0\xff\r\n", 4)},
      ShellOutput{"main", "\x1b[32mok\x1b[0m\r\n", std::nullopt},
      ShellOutput{"split-1", std::string("\xe2\x82", 2), 123456789},
      ShellStopped{"main", 0, std::nullopt},
      ShellStopped{"split-1", std::nullopt, 9},
      ShellStopped{"split-2", std::nullopt, std::nullopt},
      ShellError{"main", "shell not found: /bin/nope"},
      ExecResult{"false", "", false, 1, std::nullopt, std::string("e17")},
      ExecResult{"x", "out\n\"quoted\"", false, -1, std::string("timed out"), std::nullopt},
      FileGet{"t1", "/etc/hostname"},
      FilePut{"t2", "/tmp/x", 42, 0644},
      FilePut{"t3", "/tmp/y", 0, std::nullopt},
      FileData{"t2", 7, std::string("\x00\x01\x02", 3)},
      FileEnd{"t2", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
      FileError{"t2", "no space left on device", std::nullopt},
      FileError{"t2", "no space left on device", 507},
      FileInfo{"t4", 1U << 30U, 0644, 1764000000},
      FileAck{"t4", 1048576},
      FileList{"t5", "/home/a b/\"q\""},
      FileListResult{"t5", "/tmp", {}, false},
      FileListResult{
          "t5", "/tmp", {{"a", "file", 3, 0600, 5}, {"d\xC3\xA9", "dir", 4096, 0755, 6}}, true},
  };
}

inline std::vector<UserMessage> all_user_messages() {
  return {Input{"echo hi\r"},
          Input{""},
          Resize{132, 43},
          UserExec{"id"},
          UserPing{},
          UserPong{},
          Output{"h\xc3\xa9llo \x1b[0m", std::nullopt},
          Output{"x", 99},
          OffsetMsg{1024},
          Gap{10, 20},
          AgentDisconnected{"a-1"},
          AgentConnected{"a-1"},
          AgentConnected{std::nullopt},
          sample_stats(),
          ShellStarting{"main"},
          ShellStarted{"split-x"},
          ShellStopped{"main", 130, std::nullopt},
          ShellError{"main", "boom"},
          ExecResult{"id", "uid=0", true, 0, std::nullopt, std::nullopt},
          UserFlow{true},
          UserFlow{false}};
}

}  // namespace rx::proto::test
