// SPDX-License-Identifier: MIT
// Process: a child program for integration tests, in its own process group, with stdout and
// stderr captured to a log file. Teardown kills the whole group, so nothing outlives a test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rx::test {

class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  // Starts argv[0] (a path) with `env` added to the environment; output goes to `log_path`.
  // Throws std::runtime_error when the program cannot be started.
  static Process start(const std::vector<std::string>& argv, const std::string& log_path,
                       const std::vector<std::string>& env = {});

  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] const std::string& log_path() const { return log_path_; }

  [[nodiscard]] std::string log() const;

  // Sends `sig` to the process group.
  void signal(int sig) const;
  // Waits for the exit status (as from waitpid) at most `timeout`; nullopt on time-out.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGKILL to the group and reap.
  void kill();
  [[nodiscard]] bool running();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;  // waitpid status, once reaped
  std::string log_path_;
};

// Runs a program to completion (at most `timeout`), returning its exit code and stdout.
// stderr goes to `log_path`. Throws std::runtime_error on a time-out.
struct RunResult {
  int exit_code = -1;
  std::string out;
};

RunResult run_program(const std::vector<std::string>& argv, const std::string& log_path,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30),
                      const std::vector<std::string>& env = {});

// Reads a whole file ("" if missing).
std::string read_file(const std::string& path);

// The number after `key` in /proc/PID/<file>, e.g. ("status", "VmRSS:") in KiB or
// ("io", "wchar:"); 0 when the process or the key is gone.
std::uint64_t proc_number(pid_t pid, const std::string& file, const std::string& key);

// True while `pid` exists and is not a zombie (a dead child nobody reaped yet).
bool process_alive(long pid);

// Polls `done` every 10 ms until it returns true or `timeout` passes.
template <class F>
bool wait_until(F done, std::chrono::milliseconds timeout);

}  // namespace rx::test

#include <thread>

template <class F>
bool rx::test::wait_until(F done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}
