// SPDX-License-Identifier: MIT
// Session recordings: asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/) written by
// the server from the output it routes, one per shell, named <session>-<UTC time>-<n>.cast:
// files under <dir>/<agent id>/ (SQLite, one instance), or rows of the PostgreSQL database that
// every instance of a cluster shares. Which agents are recorded is a per-agent
// policy (off, on, required: docs/protocol.md, "Session recordings"); `required` is fail-closed:
// a terminal that cannot be recorded is refused, and one whose recording fails is closed.
#pragma once

#include "rexec/common/result.h"
#include "rexec/server/storage/store.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rx::server {

enum class RecordingMode { kOff, kOn, kRequired };

// "off" | "on" | "required"; nullopt for anything else.
[[nodiscard]] std::optional<RecordingMode> parse_recording_mode(std::string_view text);
[[nodiscard]] std::string_view recording_mode_name(RecordingMode mode);

// Where the bytes of one recording go: a file, or rows of the shared database. Loop thread only.
class RecordingSink {
 public:
  virtual ~RecordingSink() = default;
  RecordingSink() = default;
  RecordingSink(const RecordingSink&) = delete;
  RecordingSink& operator=(const RecordingSink&) = delete;
  RecordingSink(RecordingSink&&) = delete;
  RecordingSink& operator=(RecordingSink&&) = delete;

  // Appends whole asciicast lines. A sink may hold them back for a short while (database rows
  // are written in batches); an error of such a held-back write is returned by the next call.
  // Errors: kSystem (disk full, ...), kStorage (the database).
  [[nodiscard]] virtual Status write(std::string_view lines) = 0;
  // Writes what is held back. Errors: as write().
  [[nodiscard]] virtual Status flush() = 0;
};

// One recording read from its start, in pieces, up to the size it had when opened (a recording
// still being written goes on growing). Loop thread only.
class RecordingReader {
 public:
  virtual ~RecordingReader() = default;
  RecordingReader() = default;
  RecordingReader(const RecordingReader&) = delete;
  RecordingReader& operator=(const RecordingReader&) = delete;
  RecordingReader(RecordingReader&&) = delete;
  RecordingReader& operator=(RecordingReader&&) = delete;

  [[nodiscard]] virtual std::uint64_t size() const = 0;
  // The next piece (at most about 256 KiB); empty at the end. Errors: kSystem, kStorage.
  [[nodiscard]] virtual Result<std::string> next() = 0;
};

// One open recording. Every event goes to its sink at once: a file sink writes it through (one
// write(2) each), so what a viewer saw is on disk even if the server dies; a database sink
// batches (Recordings). Loop thread only; the Recordings that started it must outlive it.
class Recording {
 public:
  ~Recording();  // writes what is held back; a failure is logged
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;
  Recording(Recording&&) = delete;
  Recording& operator=(Recording&&) = delete;

  // An "o" event. Bytes are held back while they end in an incomplete UTF-8 sequence (asciicast
  // stores text); an ill-formed byte becomes U+FFFD. Errors: kSystem (disk full, ...), kStorage.
  [[nodiscard]] Status output(std::string_view bytes);

  // An "r" event ("COLSxROWS").
  [[nodiscard]] Status resize(std::uint16_t cols, std::uint16_t rows);

  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  friend class Recordings;
  Recording(std::unique_ptr<RecordingSink> sink, std::string name);
  [[nodiscard]] Status event(std::string_view code, std::string_view text);

  std::unique_ptr<RecordingSink> sink_;
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

// Every recording of this server: files under a directory (one instance), or rows of the
// database every instance shares (PostgreSQL: RecordingRows). Loop thread only.
class Recordings {
 public:
  class Backend;

  // Files under `dir`; `dir` empty: recording is not available on this server. `keep`:
  // recordings kept per agent; the oldest go when a new one starts.
  Recordings(std::string dir, std::size_t keep);
  // Rows of `store`'s RecordingRows (it must have them, and outlive this). Output is written in
  // chunks of kChunkBytes, and what is held back at most kFlushDelay later, by a timer on `loop`.
  Recordings(Store& store, uv_loop_t* loop, std::size_t keep);
  ~Recordings();
  Recordings(const Recordings&) = delete;
  Recordings& operator=(const Recordings&) = delete;
  Recordings(Recordings&&) = delete;
  Recordings& operator=(Recordings&&) = delete;

  // bytes; a database row holds at most this much. 64 KiB: a busy terminal's output makes a
  // few rows a second, and a download reads a few rows per socket drain.
  static constexpr std::size_t kChunkBytes = 64U * 1024U;
  // How long a database recording holds output back at most: the part of a viewer's output a
  // database failure or a crash can lose.
  static constexpr std::chrono::milliseconds kFlushDelay{200};

  [[nodiscard]] bool available() const;

  // Where recordings go, for logs: the directory, or "the database".
  [[nodiscard]] std::string where() const;

  // Whether a recording for `agent_id` can be started now: its directory exists or can be made,
  // and its file system has room; or the database answers. Errors: kUnavailable with the reason.
  [[nodiscard]] Status check(const std::string& agent_id) const;

  // Starts a recording (the header line written) and prunes the agent's oldest past `keep`.
  // Errors: kUnavailable (not configured), kSystem, kStorage.
  [[nodiscard]] Result<std::unique_ptr<Recording>> start(const std::string& agent_id,
                                                         const std::string& session_id,
                                                         std::uint16_t cols, std::uint16_t rows);

  // The agent's recordings, newest first.
  [[nodiscard]] std::vector<RecordingInfo> list(const std::string& agent_id) const;

  // One recording, for download. Errors: kInvalidArgument (not a recording name), kNotFound,
  // kSystem, kStorage.
  [[nodiscard]] Result<std::unique_ptr<RecordingReader>> open(const std::string& agent_id,
                                                              const std::string& name) const;

  // Removes every recording of an agent (the agent was deleted).
  void remove_all(const std::string& agent_id) const;

 private:
  std::unique_ptr<Backend> backend_;
  std::size_t keep_;
};

}  // namespace rx::server
