// SPDX-License-Identifier: MIT
#include "rexec/agent/command_line.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using rx::agent::Command;
using rx::agent::CommandLine;

namespace {

rx::Result<CommandLine> parse(std::vector<std::string> args, const CommandLine& defaults = {}) {
  static char program[] = "rexec-agent";
  std::vector<char*> argv{program};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return rx::agent::parse_command_line(static_cast<int>(argv.size() - 1), argv.data(), defaults);
}

std::string error_of(std::vector<std::string> args) {
  auto r = parse(std::move(args));
  REQUIRE_FALSE(r);
  CHECK(r.error().code == rx::Errc::kInvalidArgument);
  return r.error().message;
}

}  // namespace

TEST_CASE("command line: register with every option, = and space forms", "[agent]") {
  auto r = parse({"register", "--server", "https://rexec.test", "--token=rexec_abc", "--name", "n",
                  "--description", "d e", "--tags", "a,b", "--tags=c", "--shell", "/bin/sh",
                  "--token-stdin", "--agent-id", "id1"});
  REQUIRE(r);
  CHECK(r->command == Command::kRegister);
  CHECK(r->server == "https://rexec.test");
  CHECK(r->token == "rexec_abc");
  CHECK(r->name == "n");
  CHECK(r->description == "d e");
  CHECK(r->tags == std::vector<std::string>{"a", "b", "c"});
  CHECK(r->shell == "/bin/sh");
  CHECK(r->token_stdin);
  CHECK(r->agent_id == "id1");
}

TEST_CASE("command line: global options before and after the command", "[agent]") {
  auto before = parse({"--config", "/c.json", "--log-level", "debug", "run"});
  REQUIRE(before);
  CHECK(before->command == Command::kRun);
  CHECK(before->config_path == "/c.json");
  CHECK(before->log_level == "debug");
  auto after = parse({"status", "--ca-file", "/ca.pem", "--config=/d.json"});
  REQUIRE(after);
  CHECK(after->command == Command::kStatus);
  CHECK(after->ca_file == "/ca.pem");
  CHECK(after->config_path == "/d.json");
}

TEST_CASE("command line: run's options, over the environment's defaults", "[agent]") {
  CommandLine env;
  env.max_sessions = 7;
  env.handover_s = 30;
  env.cgroup_root = "/sys/fs/cgroup/x";
  auto kept = parse({"run"}, env);
  REQUIRE(kept);
  CHECK(kept->max_sessions == 7);
  CHECK(kept->handover_s == 30);
  CHECK(kept->cgroup_root == "/sys/fs/cgroup/x");
  auto r = parse({"run", "--max-sessions", "3", "--handover", "0", "--no-session-cgroups",
                  "--session-memory-max", "1G", "--session-pids-max", "64", "--session-cpu-max",
                  "50000 100000", "--region", "eu", "--cgroup-root", "/cg"},
                 env);
  REQUIRE(r);
  CHECK(r->max_sessions == 3);
  CHECK(r->handover_s == 0);
  CHECK(r->no_session_cgroups);
  CHECK(r->session_memory_max == "1G");
  CHECK(r->session_pids_max == "64");
  CHECK(r->session_cpu_max == "50000 100000");
  CHECK(r->region == "eu");
  CHECK(r->cgroup_root == "/cg");
}

TEST_CASE("command line: mistakes are one sentence each", "[agent]") {
  CHECK(error_of({}).find("no command given") != std::string::npos);
  CHECK(error_of({"launch"}).find("unknown command 'launch'") != std::string::npos);
  CHECK(error_of({"run", "--bogus"}).find("unknown option '--bogus'") != std::string::npos);
  CHECK(error_of({"run", "--server"}).find("--server needs a value") != std::string::npos);
  CHECK(error_of({"run", "--name", "x"}).find("--name is not an option of `run`") !=
        std::string::npos);
  CHECK(error_of({"status", "--token", "t"}).find("--token is not an option of `status`") !=
        std::string::npos);
  CHECK(error_of({"run", "--max-sessions", "0"}).find("--max-sessions needs a whole number") !=
        std::string::npos);
  CHECK(error_of({"run", "--max-sessions", "12x"}).find("--max-sessions") != std::string::npos);
  CHECK(error_of({"run", "--handover", "-1"}).find("--handover") != std::string::npos);
  CHECK(error_of({"run", "extra"}).find("unexpected argument 'extra'") != std::string::npos);
  CHECK(error_of({"keeper"}).find("keeper needs --agent-id") != std::string::npos);
}

TEST_CASE("command line: --help lists the commands, or one command's options", "[agent]") {
  auto all = parse({"--help"});
  REQUIRE(all);
  CHECK(all->command == Command::kHelp);
  for (const char* word : {"register", "run", "status", "unregister", "version", "--config"}) {
    CHECK(all->help_text.find(word) != std::string::npos);
  }
  CHECK(all->help_text.find("keeper") == std::string::npos);  // internal: not listed
  auto run = parse({"run", "-h"});
  REQUIRE(run);
  CHECK(run->command == Command::kHelp);
  CHECK(run->help_text.find("--handover SECONDS") != std::string::npos);
  CHECK(run->help_text.find("--ca-file FILE") != std::string::npos);
  CHECK(run->help_text.find("--description") == std::string::npos);  // register's, not run's
}

TEST_CASE("command line: the keeper and version", "[agent]") {
  auto k = parse({"keeper", "--agent-id", "abc"});
  REQUIRE(k);
  CHECK(k->command == Command::kKeeper);
  CHECK(k->agent_id == "abc");
  auto v = parse({"version"});
  REQUIRE(v);
  CHECK(v->command == Command::kVersion);
}
