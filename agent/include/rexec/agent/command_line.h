// SPDX-License-Identifier: MIT
// rexec-agent's command line: subcommands, their options, and their help text.
//
// Parsed with glibc's getopt_long rather than CLI11 (the server and the client use CLI11). CLI11
// builds its help and its conversions on iostreams, and any use of them links libstdc++'s locale
// machinery into the static agent: about 0.5 MB of the binary, for a program that has no other
// use for it (docs/install.md, "Size").
#pragma once

#include "rexec/common/result.h"

#include <cstddef>
#include <string>
#include <vector>

namespace rx::agent {

enum class Command { kHelp, kRegister, kRun, kStatus, kUnregister, kVersion, kKeeper };

// Everything the command line can say. Fields a subcommand does not take keep their defaults.
struct CommandLine {
  Command command = Command::kHelp;
  std::string help_text;  // kHelp: what to print (the overall usage, or one subcommand's)

  // Global options (before or after the subcommand).
  std::string config_path;
  std::string log_level;
  std::string ca_file;

  // register, run, unregister
  std::string server, token, name, description, shell, region;
  std::vector<std::string> tags;  // --tags a,b (or repeated)
  std::string agent_id;           // register --agent-id; keeper --agent-id
  bool token_stdin = false;

  // run
  std::size_t max_sessions = 64;
  long long handover_s = 0;
  bool no_session_cgroups = false;
  std::string cgroup_root;
  std::string session_memory_max;
  std::string session_pids_max;
  std::string session_cpu_max;
};

// Parses `argv` on top of `defaults` (the values from the environment: flags win). An option of
// another subcommand, an unknown option, a missing value, a number out of range and a missing or
// unknown subcommand are errors (kInvalidArgument) whose message is one sentence for stderr.
// `--help` (or `-h`) anywhere gives Command::kHelp with the matching text. Not thread-safe
// (getopt_long keeps global state); call it once, from main().
[[nodiscard]] Result<CommandLine> parse_command_line(int argc, char** argv,
                                                     const CommandLine& defaults);

}  // namespace rx::agent
