// SPDX-License-Identifier: MIT
// ExecRunner: runs `<shell> -c <command>` without a PTY (PROTOCOL §3.2 `exec`), stdout and
// stderr merged, output capped, with a time limit. One object per command.
#pragma once

#include "rexec/proto/messages.h"
#include "rexec/uvx/timer.h"
#include "rexec/uvx/uv_handle.h"

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace rx::agent {

// Loop thread only. `done` runs exactly once and never inside start(): a spawn failure is
// reported on the next loop turn. `done` may destroy the runner.
class ExecRunner {
 public:
  using Done = std::function<void(proto::ExecResult)>;
  ExecRunner(uv_loop_t* loop, std::string shell, std::string command,
             std::chrono::milliseconds timeout, std::size_t output_limit, Done done);
  ~ExecRunner();
  ExecRunner(const ExecRunner&) = delete;
  ExecRunner& operator=(const ExecRunner&) = delete;
  ExecRunner(ExecRunner&&) = delete;
  ExecRunner& operator=(ExecRunner&&) = delete;

  void start();

 private:
  void maybe_finish();
  void fail(const std::string& error);

  uv_loop_t* loop_;
  std::string shell_;
  std::string command_;
  std::chrono::milliseconds timeout_;
  std::size_t output_limit_;
  Done done_;
  uvx::UvHandle<uv_process_t> process_;
  uvx::UvHandle<uv_pipe_t> out_;
  uvx::Timer timer_;
  uvx::Timer defer_;
  std::string output_;
  bool truncated_ = false;
  bool exited_ = false;
  bool eof_ = false;
  bool timed_out_ = false;
  bool finished_ = false;
  std::int64_t exit_status_ = 0;
  int term_signal_ = 0;

  friend struct ExecRunnerAccess;
};

}  // namespace rx::agent
