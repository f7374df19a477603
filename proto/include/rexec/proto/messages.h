// SPDX-License-Identifier: MIT
// Every message of PROTOCOL.md §3 (agent socket), §4 (user terminal socket) and §8 (files) as a
// plain value. Terminal and file bytes are raw bytes here; the codecs add base64 or binary
// framing. Field names in comments are the exact JSON names; std::optional fields are omitted from
// the JSON when empty. Plain values: copy, compare and move them freely on any thread.
#pragma once

#include "rexec/proto/wire_format.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace rx::proto {

// Session and transfer ids: 1..64 bytes of [A-Za-z0-9_-] ("main", "split-<connId>"). 64 is the
// most a v2 frame header can carry, so a connId used for a split is at most 58 characters.
inline constexpr std::size_t kMaxIdBytes = kFrameMaxIdBytes;

[[nodiscard]] constexpr bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdBytes) return false;
  for (const char c : id) {
    if (!is_id_char(c)) return false;
  }
  return true;
}

// Terminal sizes the agent accepts (PROTOCOL §3.2: it ignores 0 or > 10000).
inline constexpr std::uint32_t kMinTerminalDim = 1;
inline constexpr std::uint32_t kMaxTerminalDim = 10000;

// ---- agent socket: server → agent ----
// "shell_start". new_session defaults to false when absent. cols/rows outside 1..10000 decode as
// absent (the agent then uses its default size) rather than failing the start.
struct ShellStart {
  std::string session_id;
  bool new_session = false;
  std::optional<std::uint16_t> cols;
  std::optional<std::uint16_t> rows;
  std::optional<std::uint64_t> resume_offset;
  bool operator==(const ShellStart&) const = default;
};

struct ShellInput {  // "shell_input"; data: bytes (base64 in v1 JSON)
  std::string session_id;
  std::string data;
  bool operator==(const ShellInput&) const = default;
};

struct ShellResize {  // "shell_resize"; cols/rows outside 1..10000 fail to decode (kBadValue)
  std::string session_id;
  std::uint16_t cols = 0;
  std::uint16_t rows = 0;
  bool operator==(const ShellResize&) const = default;
};

// Ours, v2 links only (docs/protocol.md "Flow control"): stop or resume reading the session's
// PTY because every viewer of it is behind.
struct ShellFlow {  // "shell_flow"
  std::string session_id;
  bool paused = false;
  bool operator==(const ShellFlow&) const = default;
};

struct ShellStopSession {  // "shell_stop_session"
  std::string session_id;
  bool operator==(const ShellStopSession&) const = default;
};

struct ShellStop {  // "shell_stop"
  bool operator==(const ShellStop&) const = default;
};

// "exec" on the agent socket: {"command","timeout_s"?,"exec_id"?}. `exec_id` is ours (v2 links
// only, docs/protocol.md "Exec"): the agent copies it into the exec_result, so results of
// commands that run at the same time find their request.
struct Exec {
  std::string command;
  std::optional<std::uint32_t> timeout_s;
  std::optional<std::string> exec_id;
  bool operator==(const Exec&) const = default;
};

struct Ping {  // "ping" on the agent socket; its data (any value) is ignored
  bool operator==(const Ping&) const = default;
};

struct Pong {  // "pong" on the agent socket: {"type":"pong","data":null}
  bool operator==(const Pong&) const = default;
};

// ---- agent socket: agent → server ----
struct ByteCounts {  // {"total","available","free"}, bytes
  std::uint64_t total = 0;
  std::uint64_t available = 0;
  std::uint64_t free = 0;
  bool operator==(const ByteCounts&) const = default;
};

struct SystemInfo {  // "system_info"
  std::string hostname;
  std::uint32_t num_cpu = 0;
  ByteCounts memory;
  ByteCounts disk;
  std::string region;
  std::string os;
  std::string arch;
  std::string distro;
  std::string kernel;
  std::string agent_version;
  std::string shell;
  bool operator==(const SystemInfo&) const = default;
};

// "stats" (also forwarded to user sockets). Sizes in bytes; cpu_percent 0..100; load averages as
// in /proc/loadavg. Non-finite doubles are sent as 0 (JSON has no NaN).
// Ours: one session's resources, read from its cgroup (docs/protocol.md, "Session usage").
struct SessionUsage {
  std::string session_id;
  std::uint64_t cpu_usec = 0;           // CPU time of every process the session ever ran
  std::optional<std::uint64_t> memory;  // bytes now (memory.current); absent without that file
  std::uint32_t pids = 0;               // processes in it now
  bool operator==(const SessionUsage&) const = default;
};

// At most this many session_usage entries are accepted in one stats message.
inline constexpr std::size_t kMaxSessionUsage = 1024;

struct Stats {
  double cpu_percent = 0;
  std::uint64_t memory = 0;
  std::uint64_t memory_limit = 0;
  std::uint64_t disk_usage = 0;
  std::uint64_t disk_limit = 0;
  double load1 = 0;
  double load5 = 0;
  double load15 = 0;
  std::uint64_t uptime_s = 0;
  std::uint32_t sessions = 0;
  // Ours, sent only when set: how the agent confines a session ("cgroup", or "process_group"
  // when it cannot use cgroups), and each session's usage (with cgroups only).
  std::string isolation;
  std::vector<SessionUsage> session_usage;
  bool operator==(const Stats&) const = default;
};

struct ShellStarting {  // "shell_starting"
  std::string session_id;
  bool operator==(const ShellStarting&) const = default;
};

struct ShellStarted {  // "shell_started"
  std::string session_id;
  // Ours (§4.3): true when this start spawned a new shell, whose output numbers from 0 again.
  // Sent only when true; a peer that does not know it ignores it.
  bool new_shell = false;
  bool operator==(const ShellStarted&) const = default;
};

struct ShellOutput {  // "shell_output"; data: bytes (base64 in v1 JSON)
  std::string session_id;
  std::string data;
  std::optional<std::uint64_t> offset;
  bool operator==(const ShellOutput&) const = default;
};

// Ours (§4.3): the answer to shell_start's resume_offset, sent between shell_starting and
// shell_started: the session's output from `offset` (the oldest the ring still holds, if the
// request was older) up to now. The server gives it only to the sockets that asked.
struct ShellReplay {  // "shell_replay"; data: bytes (base64)
  std::string session_id;
  std::uint64_t offset = 0;
  std::string data;
  bool operator==(const ShellReplay&) const = default;
};

struct ShellStopped {  // "shell_stopped"
  std::string session_id;
  std::optional<int> exit_code;
  std::optional<int> signal;
  bool operator==(const ShellStopped&) const = default;
};

struct ShellError {  // "shell_error"
  std::string session_id;
  std::string error;
  bool operator==(const ShellError&) const = default;
};

// "exec_result". A v1 agent that sends no exit_code (the deployed Go agent) gets one derived from
// `success` and its `error` text when decoded (docs/protocol.md "Compatibility").
struct ExecResult {
  std::string command;
  std::string output;
  bool success = false;
  int exit_code = 0;
  std::optional<std::string> error;
  std::optional<std::string> exec_id;  // ours: the exec's exec_id, when it had one
  bool operator==(const ExecResult&) const = default;
};

// ---- files (§8), both directions ----
struct FileGet {  // "file_get"
  std::string transfer_id;
  std::string path;
  bool operator==(const FileGet&) const = default;
};

struct FilePut {  // "file_put"
  std::string transfer_id;
  std::string path;
  std::uint64_t size = 0;
  std::optional<std::uint32_t> mode;
  bool operator==(const FilePut&) const = default;
};

struct FileData {  // "file_data"; data: bytes (base64 in v1 JSON)
  std::string transfer_id;
  std::uint64_t seq = 0;
  std::string data;
  bool operator==(const FileData&) const = default;
};

struct FileEnd {  // "file_end"
  std::string transfer_id;
  std::string sha256;
  bool operator==(const FileEnd&) const = default;
};

struct FileError {  // "file_error"
  std::string transfer_id;
  std::string error;
  // Ours (docs/protocol.md "Files"): the HTTP status the server answers with (404 not found,
  // 403 permission denied, 400 bad path or a directory, 507 disk full, ...). Absent: 502.
  std::optional<std::uint16_t> status;
  bool operator==(const FileError&) const = default;
};

// Ours: the agent's first answer to file_get, before any file_data, so the server can send a
// Content-Length. The agent then sends exactly `size` bytes (or a file_error).
struct FileInfo {  // "file_info"
  std::string transfer_id;
  std::uint64_t size = 0;
  std::uint32_t mode = 0;   // permission bits, 0..07777
  std::uint64_t mtime = 0;  // seconds since the epoch
  bool operator==(const FileInfo&) const = default;
};

// Ours: flow control of one transfer. The receiver has consumed `bytes` of file data in total
// (written to disk, or to the HTTP client); the sender keeps at most its window beyond it
// (FileWindow, file_window.h).
struct FileAck {  // "file_ack"
  std::string transfer_id;
  std::uint64_t bytes = 0;
  bool operator==(const FileAck&) const = default;
};

// Ours: list a directory (GET /api/agents/:id/files/list). Answered by file_list_result or
// file_error.
struct FileList {  // "file_list"
  std::string transfer_id;
  std::string path;
  bool operator==(const FileList&) const = default;
};

struct FileEntry {  // one entry of file_list_result
  std::string name;
  std::string type;  // "file", "dir", "symlink" or "other" (the entry itself: lstat)
  std::uint64_t size = 0;
  std::uint32_t mode = 0;  // permission bits
  std::uint64_t mtime = 0;
  bool operator==(const FileEntry&) const = default;
};

// At most kMaxListEntries entries (sorted by name); `truncated` says there were more.
inline constexpr std::size_t kMaxListEntries = 5000;

struct FileListResult {  // "file_list_result"
  std::string transfer_id;
  std::string path;
  std::vector<FileEntry> entries;
  bool truncated = false;
  bool operator==(const FileListResult&) const = default;
};

// ---- user terminal socket ----
struct Input {  // "input": {"type":"input","data":"<text>"}
  std::string data;
  bool operator==(const Input&) const = default;
};

struct UserExec {  // "exec" on the user socket: {"type":"exec","data":{"command"}}
  std::string command;
  bool operator==(const UserExec&) const = default;
};

struct UserPing {  // "ping" on the user socket: {"type":"ping"}
  bool operator==(const UserPing&) const = default;
};

struct UserPong {  // "pong" on the user socket: {"type":"pong"}
  bool operator==(const UserPong&) const = default;
};

// Ours, v2 user sockets only (docs/protocol.md): the viewer asks the server to treat it as
// behind (paused) or caught up, e.g. a browser whose terminal has too much still to draw.
struct UserFlow {  // "flow": {"type":"flow","data":{"paused":bool}}
  bool paused = false;
  bool operator==(const UserFlow&) const = default;
};

struct Resize {  // "resize": {"type":"resize","cols":N,"rows":M} — top level, not in data
  std::uint16_t cols = 0;
  std::uint16_t rows = 0;
  bool operator==(const Resize&) const = default;
};

struct Output {  // "output": text (v1); invalid UTF-8 is replaced by U+FFFD when encoding
  std::string data;
  std::optional<std::uint64_t> offset;
  bool operator==(const Output&) const = default;
};

struct OffsetMsg {  // "offset": {"type":"offset","data":N}
  std::uint64_t offset = 0;
  bool operator==(const OffsetMsg&) const = default;
};

struct Gap {  // "gap": {"from","to"}
  std::uint64_t from = 0;
  std::uint64_t to = 0;
  bool operator==(const Gap&) const = default;
};

struct AgentDisconnected {  // "agent_disconnected": {"agent_id"}
  std::string agent_id;
  bool operator==(const AgentDisconnected&) const = default;
};

struct AgentConnected {  // "agent_connected": bare, or with data {"agent_id"}
  std::optional<std::string> agent_id;
  bool operator==(const AgentConnected&) const = default;
};

// Everything on the agent socket, both directions.
using AgentMessage =
    std::variant<ShellStart, ShellInput, ShellResize, ShellStopSession, ShellStop, Exec, Ping, Pong,
                 SystemInfo, Stats, ShellStarting, ShellStarted, ShellOutput, ShellReplay,
                 ShellStopped, ShellError, ExecResult, FileGet, FilePut, FileData, FileEnd,
                 FileError, ShellFlow, FileInfo, FileAck, FileList, FileListResult>;

// Everything on the user terminal socket, both directions.
// Stats, ShellStarting/Started/Stopped/Error and ExecResult have the same shape on both sockets.
using UserMessage = std::variant<Input, Resize, UserExec, UserPing, UserPong, Output, OffsetMsg,
                                 Gap, AgentDisconnected, AgentConnected, Stats, ShellStarting,
                                 ShellStarted, ShellStopped, ShellError, ExecResult, UserFlow>;

// The JSON "type" string of a message ("shell_output"). The view is of a string literal.
[[nodiscard]] std::string_view type_name(const AgentMessage& m);
[[nodiscard]] std::string_view type_name(const UserMessage& m);

}  // namespace rx::proto
