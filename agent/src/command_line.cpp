// SPDX-License-Identifier: MIT
// The agent's options in one table: getopt_long parses them, the table says which subcommand
// takes which, and the help text is made from it.
#include "rexec/agent/command_line.h"

#include <getopt.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <string_view>

namespace rx::agent {

namespace {

// Which subcommands take an option: a bit per Command.
constexpr unsigned bit(Command c) { return 1U << static_cast<unsigned>(c); }

constexpr unsigned kRegister = bit(Command::kRegister);
constexpr unsigned kRun = bit(Command::kRun);
constexpr unsigned kUnregister = bit(Command::kUnregister);
constexpr unsigned kKeeper = bit(Command::kKeeper);
constexpr unsigned kGlobal = ~0U;

enum Opt : int {
  kOptConfig = 256,  // above every character getopt_long returns
  kOptLogLevel,
  kOptCaFile,
  kOptServer,
  kOptToken,
  kOptName,
  kOptDescription,
  kOptTags,
  kOptShell,
  kOptAgentId,
  kOptTokenStdin,
  kOptRegion,
  kOptMaxSessions,
  kOptHandover,
  kOptNoSessionCgroups,
  kOptCgroupRoot,
  kOptSessionMemoryMax,
  kOptSessionPidsMax,
  kOptSessionCpuMax,
};

struct Spec {
  const char* name;
  Opt id;
  const char* value;  // the value's name in the help; nullptr: a flag
  unsigned commands;
  const char* help;  // nullptr: not listed (the keeper's own options)
};

constexpr std::array kSpecs = {
    Spec{"config", kOptConfig, "FILE", kGlobal,
         "Config file (default: /etc/rexec/agent.json as root, else "
         "~/.config/rexec/agent.json; or REXEC_CONFIG)"},
    Spec{"log-level", kOptLogLevel, "LEVEL", kGlobal, "trace, debug, info, warn, error"},
    Spec{"ca-file", kOptCaFile, "FILE", kGlobal,
         "PEM file of CA certificates to trust (default: SSL_CERT_FILE, SSL_CERT_DIR, then the "
         "system bundle); saved by register"},
    Spec{"server", kOptServer, "URL", kRegister | kRun,
         "Server URL, e.g. https://rexec.example.com (run: override the saved one)"},
    Spec{"token", kOptToken, "TOKEN", kRegister | kUnregister,
         "register: your rexec_ API token (or REXEC_TOKEN); unregister: a user API token allowed "
         "to delete the agent (default: the agent's own token, which a server may refuse)"},
    Spec{"token-stdin", kOptTokenStdin, nullptr, kRegister | kUnregister,
         "Read the token from the first line of stdin"},
    Spec{"name", kOptName, "NAME", kRegister, "Agent name (default: hostname)"},
    Spec{"description", kOptDescription, "TEXT", kRegister, "Description"},
    Spec{"tags", kOptTags, "A,B", kRegister, "Tags, comma-separated"},
    Spec{"shell", kOptShell, "PATH", kRegister | kRun,
         "Shell for terminals (default: $SHELL, zsh, bash, sh)"},
    Spec{"agent-id", kOptAgentId, "ID", kRegister | kKeeper,
         "Already registered: save this id with its agent token (--token) instead"},
    Spec{"region", kOptRegion, "REGION", kRun, "Region reported to the server (or REXEC_REGION)"},
    Spec{"max-sessions", kOptMaxSessions, "N", kRun,
         "Shells open at once; more get shell_error (default 64; or REXEC_MAX_SESSIONS)"},
    Spec{"handover", kOptHandover, "SECONDS", kRun,
         "Seconds shells outlive this process, for the next `run` to take them over (default 0: "
         "they end with it; or REXEC_HANDOVER_S)"},
    Spec{"no-session-cgroups", kOptNoSessionCgroups, nullptr, kRun,
         "Isolate sessions by process group only (or REXEC_SESSION_CGROUPS=0)"},
    Spec{"cgroup-root", kOptCgroupRoot, "DIR", kRun,
         "cgroup v2 directory for session cgroups (default: our own; or REXEC_CGROUP_ROOT)"},
    Spec{"session-memory-max", kOptSessionMemoryMax, "BYTES", kRun,
         "memory.max of each session, e.g. 1G (or REXEC_SESSION_MEMORY_MAX)"},
    Spec{"session-pids-max", kOptSessionPidsMax, "N", kRun,
         "pids.max of each session (or REXEC_SESSION_PIDS_MAX)"},
    Spec{"session-cpu-max", kOptSessionCpuMax, "\"QUOTA PERIOD\"", kRun,
         "cpu.max of each session, e.g. \"50000 100000\" for half a CPU (or "
         "REXEC_SESSION_CPU_MAX)"},
};

struct CommandSpec {
  const char* name;
  Command command;
  const char* help;  // nullptr: not listed
};

constexpr std::array kCommands = {
    CommandSpec{"register", Command::kRegister, "Register this machine and save its agent token"},
    CommandSpec{"run", Command::kRun, "Connect and serve terminals (foreground)"},
    CommandSpec{"status", Command::kStatus,
                "Ask the running agent how it is (as root), show the config, check the server"},
    CommandSpec{"unregister", Command::kUnregister,
                "Delete this agent on the server and its config"},
    CommandSpec{"version", Command::kVersion, "Print version, commit and build date"},
    CommandSpec{"keeper", Command::kKeeper, nullptr},  // started by `run --handover`
};

// The help lines of the global options (`command` kHelp) or of one command's own options.
std::string option_lines(Command command) {
  std::string out;
  for (const Spec& s : kSpecs) {
    const bool global = s.commands == kGlobal;
    if (s.help == nullptr ||
        (command == Command::kHelp ? !global : global || (s.commands & bit(command)) == 0)) {
      continue;
    }
    std::string left = std::string("  --") + s.name;
    if (s.value != nullptr) left += std::string(" ") + s.value;
    left.resize(std::max<std::size_t>(left.size() + 2, 30), ' ');
    out += left + s.help + "\n";
  }
  return out;
}

std::string usage() {
  std::string out =
      "rexec-agent: connects this machine to a Rexec server\n\n"
      "usage: rexec-agent [global options] COMMAND [options]\n\ncommands:\n";
  for (const CommandSpec& c : kCommands) {
    if (c.help == nullptr) continue;
    std::string left = std::string("  ") + c.name;
    left.resize(14, ' ');
    out += left + c.help + "\n";
  }
  return out + "\nglobal options (before or after the command):\n" + option_lines(Command::kHelp) +
         "\n`rexec-agent COMMAND --help` lists the options of a command.\n";
}

std::string usage(const CommandSpec& c) {
  std::string out = std::string("rexec-agent ") + c.name + ": " +
                    (c.help != nullptr ? c.help : "") + "\n\nusage: rexec-agent " + c.name +
                    " [options]\n";
  if (const std::string own = option_lines(c.command); !own.empty()) out += "\noptions:\n" + own;
  return out + "\nglobal options:\n" + option_lines(Command::kHelp);
}

Error usage_error(const std::string& sentence) {
  return Error(Errc::kInvalidArgument, sentence + " (see rexec-agent --help)");
}

// A whole number in [min, max] from an option's value.
Result<long long> number(std::string_view name, std::string_view text, long long min,
                         long long max) {
  long long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return usage_error("--" + std::string(name) + " needs a whole number from " +
                       std::to_string(min) + ", not '" + std::string(text) + "'");
  }
  return v;
}

void split_tags(std::string_view text, std::vector<std::string>& tags) {
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view tag = text.substr(0, comma);
    if (!tag.empty()) tags.emplace_back(tag);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
}

const Spec* spec_of(int id) {
  for (const Spec& s : kSpecs) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

}  // namespace

Result<CommandLine> parse_command_line(int argc, char** argv, const CommandLine& defaults) {
  CommandLine cl = defaults;
  std::array<option, kSpecs.size() + 2> longopts{};
  for (std::size_t i = 0; i < kSpecs.size(); ++i) {
    longopts.at(i) = {kSpecs.at(i).name,
                      kSpecs.at(i).value != nullptr ? required_argument : no_argument, nullptr,
                      kSpecs.at(i).id};
  }
  longopts.at(kSpecs.size()) = {"help", no_argument, nullptr, 'h'};

  std::vector<const Spec*> seen;
  bool help = false;
  optind = 0;  // GNU: start over, as for a new argv
  opterr = 0;  // our own sentences
  for (;;) {
    const int c = getopt_long(argc, argv, ":h", longopts.data(), nullptr);
    if (c == -1) break;
    if (c == 'h') {
      help = true;
      continue;
    }
    if (c == '?') return usage_error("unknown option '" + std::string(argv[optind - 1]) + "'");
    if (c == ':') return usage_error(std::string(argv[optind - 1]) + " needs a value");
    const Spec* s = spec_of(c);
    if (s == nullptr) return usage_error("unknown option");
    seen.push_back(s);
    const std::string value = optarg != nullptr ? optarg : "";
    switch (s->id) {
      case kOptConfig:
        cl.config_path = value;
        break;
      case kOptLogLevel:
        cl.log_level = value;
        break;
      case kOptCaFile:
        cl.ca_file = value;
        break;
      case kOptServer:
        cl.server = value;
        break;
      case kOptToken:
        cl.token = value;
        break;
      case kOptName:
        cl.name = value;
        break;
      case kOptDescription:
        cl.description = value;
        break;
      case kOptTags:
        split_tags(value, cl.tags);
        break;
      case kOptShell:
        cl.shell = value;
        break;
      case kOptAgentId:
        cl.agent_id = value;
        break;
      case kOptTokenStdin:
        cl.token_stdin = true;
        break;
      case kOptRegion:
        cl.region = value;
        break;
      case kOptMaxSessions: {
        auto n = number(s->name, value, 1, 1000000);
        if (!n) return n.error();
        cl.max_sessions = static_cast<std::size_t>(*n);
        break;
      }
      case kOptHandover: {
        auto n = number(s->name, value, 0, 86400);
        if (!n) return n.error();
        cl.handover_s = *n;
        break;
      }
      case kOptNoSessionCgroups:
        cl.no_session_cgroups = true;
        break;
      case kOptCgroupRoot:
        cl.cgroup_root = value;
        break;
      case kOptSessionMemoryMax:
        cl.session_memory_max = value;
        break;
      case kOptSessionPidsMax:
        cl.session_pids_max = value;
        break;
      case kOptSessionCpuMax:
        cl.session_cpu_max = value;
        break;
    }
  }

  // getopt_long moved every operand after the options: the first is the subcommand.
  const CommandSpec* command = nullptr;
  if (optind < argc) {
    const std::string_view word = argv[optind];
    for (const CommandSpec& c : kCommands) {
      if (word == c.name) command = &c;
    }
    if (command == nullptr) return usage_error("unknown command '" + std::string(word) + "'");
    if (optind + 1 < argc) {
      return usage_error("unexpected argument '" + std::string(argv[optind + 1]) + "'");
    }
  }
  if (help) {
    cl.command = Command::kHelp;
    cl.help_text = command != nullptr ? usage(*command) : usage();
    return cl;
  }
  if (command == nullptr) return usage_error("no command given");
  for (const Spec* s : seen) {
    if ((s->commands & bit(command->command)) == 0) {
      return usage_error("--" + std::string(s->name) + " is not an option of `" + command->name +
                         "`");
    }
  }
  if (command->command == Command::kKeeper && cl.agent_id.empty()) {
    return usage_error("keeper needs --agent-id");
  }
  cl.command = command->command;
  return cl;
}

}  // namespace rx::agent
