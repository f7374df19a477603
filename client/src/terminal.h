// SPDX-License-Identifier: MIT
// The client's interactive terminal: raw mode, resize on SIGWINCH, the terminal restored on every
// exit path.
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

}  // namespace rx::client
