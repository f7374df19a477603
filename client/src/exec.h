// SPDX-License-Identifier: MIT
// `rexec exec`: one command on an agent through POST /api/agents/:id/exec. No terminal is opened
// on the agent, so stdout gets exactly what the command printed.
#pragma once

#include <cstdint>
#include <string>

#include "terminal.h"

namespace rx::client {

// Runs `command` with `<shell> -c` on the target's agent, at most `timeout_s` seconds, and
// writes its output (stdout and stderr merged, as the agent captures them) to stdout. Returns
// the command's exit code; 255 when it could not be run or its result could not be had, with
// the reason on stderr.
int run_exec(const Target& target, const std::string& command, std::uint32_t timeout_s);

}  // namespace rx::client
