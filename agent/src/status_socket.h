// SPDX-License-Identifier: MIT
// The running agent's status socket: `rexec-agent status` asks it how it is (connected since
// when, to which server, the sessions, the last error, the handover state). An abstract Unix
// socket, "@rexec-agent-status/<agent id>": nothing on disk to leave behind. An abstract socket has
// no permissions of its own, so the agent answers only peers of its own uid (root, under systemd)
// and closes any other connection unanswered.
#pragma once

#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"
#include "rexec/uvx/uv_handle.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>

namespace rx::agent {

// Answers each connection with one JSON object (what `snapshot` returns), then closes it.
// Thread/loop: loop thread only; `loop` outlives it.
class StatusSocket {
 public:
  using Snapshot = std::function<nlohmann::json()>;

  // Listens for `agent_id`. Errors: kSystem (EADDRINUSE: another agent with this id runs).
  [[nodiscard]] static Result<std::unique_ptr<StatusSocket>> open(uv_loop_t* loop,
                                                                  const std::string& agent_id,
                                                                  Snapshot snapshot);

 private:
  StatusSocket(UniqueFd fd, Snapshot snapshot)
      : fd_(std::move(fd)), snapshot_(std::move(snapshot)) {}

  void on_accept();

  UniqueFd fd_;
  uvx::UvHandle<uv_poll_t> poll_;
  Snapshot snapshot_;
};

}  // namespace rx::agent
