// SPDX-License-Identifier: MIT
// The client's two socket modes: an interactive terminal (raw mode, resize on SIGWINCH, the
// terminal restored on every exit path) and a one-shot exec.
#pragma once

#include <string>

namespace rx::client {

struct Target {
  std::string server;  // http(s)://host[:port]
  std::string token;
  std::string agent_id;
};

// Runs an interactive terminal on the agent's main session (or a split). Returns the process
// exit code: the shell's exit code when it stops, 1 on a connection error.
int run_terminal(const Target& target, bool split);

// Runs `command` on the agent without a PTY and prints its output. Returns its exit code.
int run_exec(const Target& target, const std::string& command);

}  // namespace rx::client
