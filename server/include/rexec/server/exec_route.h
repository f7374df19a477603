// SPDX-License-Identifier: MIT
// POST /api/agents/:id/exec (docs/protocol.md "Exec over HTTP"): one command run by the agent
// without a terminal, answered with its exec_result. The Api makes the caller's checks; the
// handlers here read the JSON body and run the command through the Hub of the agent's instance:
// this one (LocalExec), or another one through the FileRelay (RelayedExec).
#pragma once

#include "rexec/common/result.h"
#include "rexec/server/file_relay.h"
#include "rexec/server/http_server.h"
#include "rexec/server/hub.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rx::server {

struct ExecParams {
  std::string command;
  std::uint32_t timeout_s = 60;  // the agent's own default when none is given
};

// Limits of the request: a command is one argument of `sh -c`, which Linux caps at 128 KiB
// (MAX_ARG_STRLEN), so a larger body cannot be a command that runs; an hour bounds the wait.
inline constexpr std::size_t kMaxExecBodyBytes = 256U * 1024U;
inline constexpr std::uint32_t kMaxExecTimeoutS = 3600;
// The server answers 504 this long after the command's own timeout if the agent has not (the
// deployed Go agent has no timeout of its own).
inline constexpr std::chrono::seconds kExecAnswerGrace{15};

// {"command":"<non-empty>","timeout_s"?:1..3600}; other keys are ignored. Errors:
// kInvalidArgument with the sentence to answer 400 with.
[[nodiscard]] Result<ExecParams> parse_exec_body(std::string_view body);

// Runs the command on `agent_id`, connected to this instance's hub, for `user_id`. Answers 200
// with the exec_result ({"command","output","success","exit_code","error"?}), 400 for a bad
// body, 413 for one over kMaxExecBodyBytes, 404 when the agent is not connected, 502 when its
// link goes before the result, 504 after timeout_s + kExecAnswerGrace. `hub` must outlive the
// handler, and the stream is the handler's until it is destroyed.
std::unique_ptr<HttpStreamHandler> make_local_exec(Hub& hub, std::string agent_id,
                                                   std::string user_id, HttpStream& stream);

// The same for an agent on `instance`: the body is checked here, then the exchange is relayed
// there (FileRequest kind "exec"), where make_local_exec runs it. `relay` must outlive the
// handler.
std::unique_ptr<HttpStreamHandler> make_relayed_exec(FileRelay& relay, std::string instance,
                                                     std::string agent_id, std::string user_id,
                                                     HttpStream& stream);

}  // namespace rx::server
