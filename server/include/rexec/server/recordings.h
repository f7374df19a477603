// SPDX-License-Identifier: MIT
// Session recordings: asciicast v2 files (https://docs.asciinema.org/manual/asciicast/v2/)
// written by the server from the output it routes, one per shell, under
// <dir>/<agent id>/<session>-<UTC time>-<n>.cast. Which agents are recorded is a per-agent
// policy (off, on, required: docs/protocol.md, "Session recordings"); `required` is fail-closed:
// a terminal that cannot be recorded is refused, and one whose recording fails is closed.
#pragma once

#include "rexec/common/result.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rx::server {

enum class RecordingMode { kOff, kOn, kRequired };

// "off" | "on" | "required"; nullopt for anything else.
[[nodiscard]] std::optional<RecordingMode> parse_recording_mode(std::string_view text);
[[nodiscard]] std::string_view recording_mode_name(RecordingMode mode);

// One open recording. Every event is written through to the file (one write(2) each), so what
// a viewer saw is on disk even if the server dies. Loop thread only.
class Recording {
 public:
  ~Recording();
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;
  Recording(Recording&&) = delete;
  Recording& operator=(Recording&&) = delete;

  // An "o" event. Bytes are held back while they end in an incomplete UTF-8 sequence (asciicast
  // stores text); an ill-formed byte becomes U+FFFD. Errors: kSystem (disk full, ...).
  [[nodiscard]] Status output(std::string_view bytes);

  // An "r" event ("COLSxROWS").
  [[nodiscard]] Status resize(std::uint16_t cols, std::uint16_t rows);

  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  friend class Recordings;
  Recording(std::FILE* file, std::string name);
  [[nodiscard]] Status event(std::string_view code, std::string_view text);

  std::FILE* file_;
  std::string name_;
  std::string pending_;  // an incomplete UTF-8 sequence at the end of the last output
  double started_ = 0;   // seconds, CLOCK_MONOTONIC
};

struct RecordingInfo {
  std::string name;        // file name, e.g. main-20261130T231700Z-1.cast
  std::string session_id;  // parsed from the name
  std::int64_t started_ms = 0;
  std::uint64_t bytes = 0;
};

class Recordings {
 public:
  // `dir` empty: recording is not available on this server. `keep`: recordings kept per agent;
  // the oldest go when a new one starts.
  Recordings(std::string dir, std::size_t keep);

  [[nodiscard]] bool available() const { return !dir_.empty(); }

  [[nodiscard]] const std::string& dir() const { return dir_; }

  // Whether a recording for `agent_id` can be started now: its directory exists or can be made,
  // and its file system has room. Errors: kUnavailable with the reason.
  [[nodiscard]] Status check(const std::string& agent_id) const;

  // Starts a recording (the header line written) and prunes the agent's oldest past `keep`.
  // Errors: kUnavailable (not configured), kSystem.
  [[nodiscard]] Result<std::unique_ptr<Recording>> start(const std::string& agent_id,
                                                         const std::string& session_id,
                                                         std::uint16_t cols, std::uint16_t rows);

  // The agent's recordings, newest first.
  [[nodiscard]] std::vector<RecordingInfo> list(const std::string& agent_id) const;

  // The path of one recording, for download. Errors: kInvalidArgument (not a recording name),
  // kNotFound.
  [[nodiscard]] Result<std::string> path_of(const std::string& agent_id,
                                            const std::string& name) const;

  // Removes every recording of an agent (the agent was deleted).
  void remove_all(const std::string& agent_id) const;

 private:
  void prune(const std::string& agent_dir) const;

  std::string dir_;
  std::size_t keep_;
  std::uint64_t next_ = 0;
};

}  // namespace rx::server
