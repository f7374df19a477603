// SPDX-License-Identifier: MIT
// JSON envelope codecs. Each message's type name and field location are declared once (kType,
// kSource); the decoder tables are generated from the AgentMessage / UserMessage variants, so a
// message cannot be added to a family without being decodable. nlohmann exceptions stop here.
#include "rexec/proto/message_codec.h"

#include "rexec/proto/base64.h"

#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

namespace rx::proto {

namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Per-message facts.

// Where a message's fields are.
enum class Source : std::uint8_t {
  kNone,  // no fields; "data", if any, is ignored (ping, pong, shell_stop)
  kData,  // "data" must be an object holding the fields
  kTop,   // the fields are top-level members (the user socket's input, resize, output, offset)
};

template <class T>
constexpr std::string_view kType{};

template <class T>
constexpr Source kSource = Source::kData;

// clang-format off
template <> constexpr std::string_view kType<ShellStart> = "shell_start";
template <> constexpr std::string_view kType<ShellInput> = "shell_input";
template <> constexpr std::string_view kType<ShellResize> = "shell_resize";
template <> constexpr std::string_view kType<ShellStopSession> = "shell_stop_session";
template <> constexpr std::string_view kType<ShellStop> = "shell_stop";
template <> constexpr std::string_view kType<ShellFlow> = "shell_flow";
template <> constexpr std::string_view kType<Exec> = "exec";
template <> constexpr std::string_view kType<Ping> = "ping";
template <> constexpr std::string_view kType<Pong> = "pong";
template <> constexpr std::string_view kType<SystemInfo> = "system_info";
template <> constexpr std::string_view kType<Stats> = "stats";
template <> constexpr std::string_view kType<ShellStarting> = "shell_starting";
template <> constexpr std::string_view kType<ShellStarted> = "shell_started";
template <> constexpr std::string_view kType<ShellOutput> = "shell_output";
template <> constexpr std::string_view kType<ShellReplay> = "shell_replay";
template <> constexpr std::string_view kType<ShellStopped> = "shell_stopped";
template <> constexpr std::string_view kType<ShellError> = "shell_error";
template <> constexpr std::string_view kType<ExecResult> = "exec_result";
template <> constexpr std::string_view kType<FileGet> = "file_get";
template <> constexpr std::string_view kType<FilePut> = "file_put";
template <> constexpr std::string_view kType<FileData> = "file_data";
template <> constexpr std::string_view kType<FileEnd> = "file_end";
template <> constexpr std::string_view kType<FileError> = "file_error";
template <> constexpr std::string_view kType<FileInfo> = "file_info";
template <> constexpr std::string_view kType<FileAck> = "file_ack";
template <> constexpr std::string_view kType<FileList> = "file_list";
template <> constexpr std::string_view kType<FileListResult> = "file_list_result";
template <> constexpr std::string_view kType<Input> = "input";
template <> constexpr std::string_view kType<Resize> = "resize";
template <> constexpr std::string_view kType<UserExec> = "exec";
template <> constexpr std::string_view kType<UserPing> = "ping";
template <> constexpr std::string_view kType<UserPong> = "pong";
template <> constexpr std::string_view kType<UserFlow> = "flow";
template <> constexpr std::string_view kType<Output> = "output";
template <> constexpr std::string_view kType<OffsetMsg> = "offset";
template <> constexpr std::string_view kType<Gap> = "gap";
template <> constexpr std::string_view kType<AgentDisconnected> = "agent_disconnected";
template <> constexpr std::string_view kType<AgentConnected> = "agent_connected";

template <> constexpr Source kSource<ShellStop> = Source::kNone;
template <> constexpr Source kSource<Ping> = Source::kNone;
template <> constexpr Source kSource<Pong> = Source::kNone;
template <> constexpr Source kSource<UserPing> = Source::kNone;
template <> constexpr Source kSource<UserPong> = Source::kNone;
template <> constexpr Source kSource<Input> = Source::kTop;
template <> constexpr Source kSource<Resize> = Source::kTop;
template <> constexpr Source kSource<Output> = Source::kTop;
template <> constexpr Source kSource<OffsetMsg> = Source::kTop;
template <> constexpr Source kSource<AgentConnected> = Source::kTop;  // "data" is optional

// clang-format on

// ---------------------------------------------------------------------------------------------
// Decoding.

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The offset of `"key"` used as an object key (followed by optional white space and ':') at or
// after `from`, or npos. Only used to report where an error is, so it scans lazily.
std::size_t find_key(std::string_view text, std::size_t from, std::string_view key) {
  while (from < text.size()) {
    const std::size_t q = text.find('"', from);
    if (q == std::string_view::npos) return q;
    const std::size_t end = q + 1 + key.size();
    if (end < text.size() && text[end] == '"' && text.compare(q + 1, key.size(), key) == 0 &&
        (q == 0 || text[q - 1] != '\\')) {
      std::size_t p = end + 1;
      while (p < text.size() && is_json_space(text[p])) ++p;
      if (p < text.size() && text[p] == ':') return q;
    }
    from = q + 1;
  }
  return std::string_view::npos;
}

// The first error of one decode; every read after it is a no-op (LevelDB's sticky status).
struct DecodeState {
  std::string_view text;
  std::optional<Error> error;
};

// Reads the members of one JSON object of a parsed message. Strings are moved out of the parsed
// document (each member is read once). `parent` and `state` must outlive the reader.
class Reader {
 public:
  Reader(json* object, DecodeState* state, const Reader* parent, const char* key)
      : obj_(object), st_(state), parent_(parent), key_(key) {}

  [[nodiscard]] bool failed() const { return st_->error.has_value(); }

  // A nested object. When it is missing or not an object the error is recorded and the returned
  // reader reads nothing.
  Reader object(const char* key) { return nested(key, true); }

  // A nested object that may be absent or null; then every optional read of it yields nothing.
  Reader opt_object(const char* key) { return nested(key, false); }

  void text(const char* key, std::string& out) {
    if (json* v = lookup(key, true)) take_string(key, *v, out);
  }

  void text_or_empty(const char* key, std::string& out) {
    if (json* v = lookup(key, false)) take_string(key, *v, out);
  }

  void opt_text(const char* key, std::optional<std::string>& out) {
    json* v = lookup(key, false);
    std::string s;
    if (v != nullptr && take_string(key, *v, s)) out = std::move(s);
  }

  void id(const char* key, std::string& out) {
    json* v = lookup(key, true);
    if (v == nullptr || !take_string(key, *v, out)) return;
    check_id(key, out);
  }

  void opt_id(const char* key, std::optional<std::string>& out) {
    opt_text(key, out);
    if (out) check_id(key, *out);
  }

  void bytes(const char* key, std::string& out) {
    json* v = lookup(key, true);
    if (v == nullptr) return;
    if (!v->is_string()) return wrong_type(key, "a base64 string");
    auto decoded = base64_decode(v->get_ref<const std::string&>());
    if (!decoded) {
      // +1: past the value's opening quote (base64 never needs JSON escapes).
      fail(Errc::kBadBase64, std::string("'") + key + "' is not standard padded base64",
           value_offset(key) + 1 + decoded.error().offset);
      return;
    }
    out = std::move(decoded).value();
  }

  void boolean(const char* key, bool& out) {
    if (json* v = lookup(key, true)) take_bool(key, *v, out);
  }

  void opt_boolean(const char* key, bool& out) {
    if (json* v = lookup(key, false)) take_bool(key, *v, out);
  }

  template <class T>
  void uint(const char* key, T& out, std::uint64_t max = std::numeric_limits<T>::max()) {
    if (json* v = lookup(key, true)) take_uint(key, *v, out, max);
  }

  template <class T>
  void opt_uint(const char* key, std::optional<T>& out,
                std::uint64_t max = std::numeric_limits<T>::max()) {
    json* v = lookup(key, false);
    T t{};
    if (v != nullptr && take_uint(key, *v, t, max)) out = t;
  }

  void integer(const char* key, int& out) {
    if (json* v = lookup(key, true)) take_int(key, *v, out);
  }

  void opt_integer(const char* key, std::optional<int>& out) {
    json* v = lookup(key, false);
    int i = 0;
    if (v != nullptr && take_int(key, *v, i)) out = i;
  }

  void number(const char* key, double& out) {
    json* v = lookup(key, true);
    if (v == nullptr) return;
    if (!v->is_number()) return wrong_type(key, "a number");
    const auto d = v->get<double>();
    if (!std::isfinite(d)) return out_of_range(key);  // the parser refuses these; belt and braces
    out = d;
  }

  // A terminal dimension that must be in 1..10000 (kBadValue otherwise).
  void dim(const char* key, std::uint16_t& out) {
    json* v = lookup(key, true);
    std::uint16_t d = 0;
    if (v == nullptr || !take_uint(key, *v, d, kMaxTerminalDim)) return;
    if (d < kMinTerminalDim) return out_of_range(key);
    out = d;
  }

  // An optional terminal dimension: an integer outside 1..10000 reads as absent.
  void lenient_dim(const char* key, std::optional<std::uint16_t>& out) {
    json* v = lookup(key, false);
    if (v == nullptr) return;
    if (!v->is_number_integer()) return wrong_type(key, "an integer");
    if (!v->is_number_unsigned()) return;
    const auto u = v->get<std::uint64_t>();
    if (u >= kMinTerminalDim && u <= kMaxTerminalDim) out = static_cast<std::uint16_t>(u);
  }

  // A required array of objects: `each` reads every element with a reader of its own.
  template <class Fn>
  void objects(const char* key, Fn each, bool required = true) {
    json* v = lookup(key, required);
    if (v == nullptr) return;
    if (!v->is_array()) return wrong_type(key, "an array");
    for (json& element : *v) {
      if (failed()) return;
      if (!element.is_object()) return wrong_type(key, "an array of objects");
      Reader r(&element, st_, this, key);
      each(r);
    }
  }

  // kBadValue at `key`'s value unless `ok`; a no-op after an earlier error.
  void require_value(bool ok, const char* key, const char* why) {
    if (!ok && !failed())
      fail(Errc::kBadValue, std::string("'") + key + "' " + why, value_offset(key));
  }

 private:
  // The member `key`: nullptr after an earlier error, when absent, or when null and optional.
  // A missing required member records kBadField.
  json* lookup(const char* key, bool required) {
    if (failed()) return nullptr;
    json* v = nullptr;
    if (obj_ != nullptr) {
      const auto it = obj_->find(key);
      if (it != obj_->end()) v = &*it;
    }
    if (v != nullptr && !required && v->is_null()) return nullptr;
    if (v == nullptr && required) {
      fail(Errc::kBadField, std::string("missing field '") + key + "'", base());
    }
    return v;
  }

  Reader nested(const char* key, bool required) {
    json* v = lookup(key, required);
    if (v != nullptr && !v->is_object()) {
      wrong_type(key, "an object");
      v = nullptr;
    }
    return {v, st_, this, key};
  }

  bool take_string(const char* key, json& v, std::string& out) {
    if (!v.is_string()) {
      wrong_type(key, "a string");
      return false;
    }
    out = std::move(v.get_ref<std::string&>());
    return true;
  }

  void take_bool(const char* key, const json& v, bool& out) {
    if (!v.is_boolean()) return wrong_type(key, "a boolean");
    out = v.get<bool>();
  }

  template <class T>
  bool take_uint(const char* key, const json& v, T& out, std::uint64_t max) {
    if (v.is_number_unsigned()) {  // the parser gives non-negative integers this type
      const auto u = v.get<std::uint64_t>();
      if (u > max) {
        out_of_range(key);
        return false;
      }
      out = static_cast<T>(u);
      return true;
    }
    if (v.is_number_integer()) {
      out_of_range(key);  // negative
    } else {
      wrong_type(key, "a non-negative integer");
    }
    return false;
  }

  bool take_int(const char* key, const json& v, int& out) {
    if (!v.is_number_integer()) {
      wrong_type(key, "an integer");
      return false;
    }
    // Read unsigned values as such: get<int64_t> would wrap those above INT64_MAX.
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
        out_of_range(key);
        return false;
      }
      out = static_cast<int>(u);
      return true;
    }
    const auto i = v.get<std::int64_t>();
    if (i < std::numeric_limits<int>::min()) {
      out_of_range(key);
      return false;
    }
    out = static_cast<int>(i);
    return true;
  }

  void check_id(const char* key, const std::string& id) {
    if (!is_valid_id(id)) {
      fail(Errc::kBadSessionId,
           std::string("'") + key + "' must be 1..64 characters of [A-Za-z0-9_-]",
           value_offset(key));
    }
  }

  void fail(Errc code, std::string message, std::size_t offset) {
    if (!failed()) st_->error.emplace(code, std::move(message), 0, offset);
  }

  void wrong_type(const char* key, const char* what) {
    fail(Errc::kBadField, std::string("'") + key + "' must be " + what, value_offset(key));
  }

  void out_of_range(const char* key) {
    fail(Errc::kBadValue, std::string("'") + key + "' is out of range", value_offset(key));
  }

  // Offsets, computed only when an error is reported. base(): this object's own key in its
  // parent (0 for the envelope). Keys are searched from there, so a nested field is found inside
  // its object unless the text repeats the key in an earlier sibling.
  // NOLINTNEXTLINE(misc-no-recursion): walks up the parents, as deep as the JSON we read (3).
  [[nodiscard]] std::size_t base() const {
    return parent_ == nullptr ? 0 : parent_->key_offset(key_);
  }

  // NOLINTNEXTLINE(misc-no-recursion): see base().
  [[nodiscard]] std::size_t key_offset(const char* key) const {
    const std::size_t from = parent_ == nullptr ? 0 : base() + 1;
    const std::size_t at = find_key(st_->text, from, key);
    return at == std::string_view::npos ? base() : at;
  }

  // The first byte of `key`'s value ('"' of a string, the sign or digit of a number).
  [[nodiscard]] std::size_t value_offset(const char* key) const {
    const std::string_view src = st_->text;
    const std::size_t from = parent_ == nullptr ? 0 : base() + 1;
    const std::size_t at = find_key(src, from, key);
    if (at == std::string_view::npos) return base();
    std::size_t p = at + std::char_traits<char>::length(key) + 2;
    while (p < src.size() && (is_json_space(src[p]) || src[p] == ':')) ++p;
    return p;
  }

  json* obj_;             // not owned; nullptr reads as an empty object
  DecodeState* st_;       // not owned
  const Reader* parent_;  // not owned; nullptr for the envelope
  const char* key_;       // this object's key in parent_; a string literal
};

void read(Reader& r, ShellStart& m) {
  r.id("session_id", m.session_id);
  r.opt_boolean("new_session", m.new_session);
  r.lenient_dim("cols", m.cols);
  r.lenient_dim("rows", m.rows);
  r.opt_uint("resume_offset", m.resume_offset);
}

void read(Reader& r, ShellInput& m) {
  r.id("session_id", m.session_id);
  r.bytes("data", m.data);
}

void read(Reader& r, ShellResize& m) {
  r.id("session_id", m.session_id);
  r.dim("cols", m.cols);
  r.dim("rows", m.rows);
}

void read(Reader& r, ShellStopSession& m) { r.id("session_id", m.session_id); }

void read(Reader& /*r*/, ShellStop& /*m*/) {}

void read(Reader& r, ShellFlow& m) {
  r.id("session_id", m.session_id);
  r.boolean("paused", m.paused);
}

void read(Reader& r, Exec& m) {
  r.text("command", m.command);
  r.opt_uint("timeout_s", m.timeout_s);
  r.opt_id("exec_id", m.exec_id);
}

void read(Reader& /*r*/, Ping& /*m*/) {}

void read(Reader& /*r*/, Pong& /*m*/) {}

void read_counts(Reader& r, const char* key, ByteCounts& c) {
  Reader o = r.object(key);
  o.uint("total", c.total);
  o.uint("available", c.available);
  o.uint("free", c.free);
}

void read(Reader& r, SystemInfo& m) {
  r.text("hostname", m.hostname);
  r.uint("num_cpu", m.num_cpu);
  read_counts(r, "memory", m.memory);
  read_counts(r, "disk", m.disk);
  r.text_or_empty("region", m.region);
  r.text_or_empty("os", m.os);
  r.text_or_empty("arch", m.arch);
  r.text_or_empty("distro", m.distro);
  r.text_or_empty("kernel", m.kernel);
  r.text_or_empty("agent_version", m.agent_version);
  r.text_or_empty("shell", m.shell);
}

void read(Reader& r, Stats& m) {
  r.number("cpu_percent", m.cpu_percent);
  r.uint("memory", m.memory);
  r.uint("memory_limit", m.memory_limit);
  r.uint("disk_usage", m.disk_usage);
  r.uint("disk_limit", m.disk_limit);
  r.number("load1", m.load1);
  r.number("load5", m.load5);
  r.number("load15", m.load15);
  r.uint("uptime_s", m.uptime_s);
  r.uint("sessions", m.sessions);
  r.text_or_empty("isolation", m.isolation);
  r.objects(
      "session_usage",
      [&m](Reader& e) {
        SessionUsage u;
        e.id("session_id", u.session_id);
        e.uint("cpu_usec", u.cpu_usec);
        e.opt_uint("memory", u.memory);
        e.uint("pids", u.pids);
        m.session_usage.push_back(std::move(u));
      },
      false);
  r.require_value(m.session_usage.size() <= kMaxSessionUsage, "session_usage",
                  "has too many entries");
}

void read(Reader& r, ShellStarting& m) { r.id("session_id", m.session_id); }

void read(Reader& r, ShellStarted& m) {
  r.id("session_id", m.session_id);
  r.opt_boolean("new_shell", m.new_shell);
}

void read(Reader& r, ShellReplay& m) {
  r.id("session_id", m.session_id);
  r.uint("offset", m.offset);
  r.bytes("data", m.data);
}

void read(Reader& r, ShellOutput& m) {
  r.id("session_id", m.session_id);
  r.bytes("data", m.data);
  r.opt_uint("offset", m.offset);
}

void read(Reader& r, ShellStopped& m) {
  r.id("session_id", m.session_id);
  r.opt_integer("exit_code", m.exit_code);
  r.opt_integer("signal", m.signal);
}

void read(Reader& r, ShellError& m) {
  r.id("session_id", m.session_id);
  r.text("error", m.error);
}

// The deployed Go agent's exec_result has no exit_code. Its `error` is then the text of Go's
// exec.ExitError: "exit status N", or "signal: <name>" (plus " (core dumped)") with the names of
// Go's signal table for Linux; anything else means the command did not run.
int exit_code_of_go_result(bool success, const std::optional<std::string>& error) {
  if (success) return 0;
  if (!error) return -1;
  const std::string_view e = *error;
  constexpr std::string_view kExit = "exit status ";
  if (e.substr(0, kExit.size()) == kExit) {
    int code = -1;
    const auto digits = e.substr(kExit.size());
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), code);
    return ec == std::errc() && end == digits.data() + digits.size() ? code : -1;
  }
  static constexpr std::array<std::string_view, 15> kSignals = {"hangup",
                                                                "interrupt",
                                                                "quit",
                                                                "illegal instruction",
                                                                "trace/breakpoint trap",
                                                                "aborted",
                                                                "bus error",
                                                                "floating point exception",
                                                                "killed",
                                                                "user defined signal 1",
                                                                "segmentation fault",
                                                                "user defined signal 2",
                                                                "broken pipe",
                                                                "alarm clock",
                                                                "terminated"};
  constexpr std::string_view kSignal = "signal: ";
  if (e.substr(0, kSignal.size()) == kSignal) {
    std::string_view name = e.substr(kSignal.size());
    constexpr std::string_view kCore = " (core dumped)";
    if (name.size() > kCore.size() && name.substr(name.size() - kCore.size()) == kCore) {
      name.remove_suffix(kCore.size());
    }
    for (std::size_t i = 0; i < kSignals.size(); ++i) {
      if (kSignals[i] == name) return 128 + static_cast<int>(i) + 1;
    }
  }
  return -1;
}

void read(Reader& r, ExecResult& m) {
  r.text("command", m.command);
  r.text("output", m.output);
  r.boolean("success", m.success);
  std::optional<int> exit_code;
  r.opt_integer("exit_code", exit_code);
  r.opt_text("error", m.error);
  r.opt_id("exec_id", m.exec_id);
  m.exit_code = exit_code ? *exit_code : exit_code_of_go_result(m.success, m.error);
}

void read(Reader& r, FileGet& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("path", m.path);
}

void read(Reader& r, FilePut& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("path", m.path);
  r.uint("size", m.size);
  r.opt_uint("mode", m.mode, 07777);
}

void read(Reader& r, FileData& m) {
  r.id("transfer_id", m.transfer_id);
  r.uint("seq", m.seq);
  r.bytes("data", m.data);
}

bool is_sha256_hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

void read(Reader& r, FileEnd& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("sha256", m.sha256);
  r.require_value(is_sha256_hex(m.sha256), "sha256", "must be 64 hex digits");
}

void read(Reader& r, FileError& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("error", m.error);
  r.opt_uint("status", m.status, 599);
}

void read(Reader& r, FileInfo& m) {
  r.id("transfer_id", m.transfer_id);
  r.uint("size", m.size);
  r.uint("mode", m.mode, 07777);
  r.uint("mtime", m.mtime);
}

void read(Reader& r, FileAck& m) {
  r.id("transfer_id", m.transfer_id);
  r.uint("bytes", m.bytes);
}

void read(Reader& r, FileList& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("path", m.path);
}

void read(Reader& r, FileListResult& m) {
  r.id("transfer_id", m.transfer_id);
  r.text("path", m.path);
  r.objects("entries", [&m](Reader& e) {
    FileEntry entry;
    e.text("name", entry.name);
    e.text("type", entry.type);
    e.uint("size", entry.size);
    e.uint("mode", entry.mode, 07777);
    e.uint("mtime", entry.mtime);
    m.entries.push_back(std::move(entry));
  });
  r.require_value(m.entries.size() <= kMaxListEntries, "entries", "has too many entries");
  r.opt_boolean("truncated", m.truncated);
}

void read(Reader& r, Input& m) { r.text("data", m.data); }

void read(Reader& r, Resize& m) {
  r.dim("cols", m.cols);
  r.dim("rows", m.rows);
}

void read(Reader& r, UserExec& m) { r.text("command", m.command); }

void read(Reader& /*r*/, UserPing& /*m*/) {}

void read(Reader& /*r*/, UserPong& /*m*/) {}

void read(Reader& r, UserFlow& m) { r.boolean("paused", m.paused); }

void read(Reader& r, Output& m) {
  r.text("data", m.data);
  r.opt_uint("offset", m.offset);
}

void read(Reader& r, OffsetMsg& m) { r.uint("data", m.offset); }

void read(Reader& r, Gap& m) {
  r.uint("from", m.from);
  r.uint("to", m.to);
  r.require_value(m.from <= m.to, "to", "must not be below 'from'");
}

void read(Reader& r, AgentDisconnected& m) { r.text("agent_id", m.agent_id); }

void read(Reader& r, AgentConnected& m) {
  Reader data = r.opt_object("data");
  data.opt_text("agent_id", m.agent_id);
}

template <class Family>
struct Entry {
  std::string_view type;
  Source source = Source::kData;
  Family (*decode)(Reader&) = nullptr;
};

template <class Family, class M>
Family decode_as(Reader& r) {
  M m;
  read(r, m);
  return Family(std::in_place_type<M>, std::move(m));
}

template <class Family, std::size_t... I>
constexpr auto make_table(std::index_sequence<I...> /*unused*/) {
  return std::array<Entry<Family>, sizeof...(I)>{Entry<Family>{
      kType<std::variant_alternative_t<I, Family>>, kSource<std::variant_alternative_t<I, Family>>,
      &decode_as<Family, std::variant_alternative_t<I, Family>>}...};
}

template <class Family>
constexpr auto make_table() {
  return make_table<Family>(std::make_index_sequence<std::variant_size_v<Family>>{});
}

template <class Table>
constexpr bool names_are_unique_and_set(const Table& table) {
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].type.empty()) return false;
    for (std::size_t j = i + 1; j < table.size(); ++j) {
      if (table[i].type == table[j].type) return false;
    }
  }
  return true;
}

constexpr auto kAgentTable = make_table<AgentMessage>();
constexpr auto kUserTable = make_table<UserMessage>();
static_assert(names_are_unique_and_set(kAgentTable));
static_assert(names_are_unique_and_set(kUserTable));

Error from_parse_error(const json::parse_error& e, std::size_t size) {
  const std::string_view what = e.what();
  // nlohmann reports bad UTF-8 and unpaired \u surrogates as syntax errors; tell them apart by
  // the lexer's message ("invalid string: ill-formed UTF-8 byte", "... surrogate U+D800...").
  const bool utf8 = what.find("UTF-8") != std::string_view::npos ||
                    what.find("surrogate") != std::string_view::npos;
  // e.byte counts the bytes read, including the one that failed (or end of input), from 1.
  std::size_t at = e.byte > 0 ? e.byte - 1 : 0;
  if (at > size) at = size;
  if (utf8) return {Errc::kBadUtf8, "ill-formed UTF-8 in a JSON string", 0, at};
  return {Errc::kBadJson, "malformed or truncated JSON", 0, at};
}

Error unknown_type(std::string_view type) {
  // The name goes to debug logs: include it only when it is short and plainly printable.
  bool printable = type.size() <= 64;
  for (const char c : type) printable = printable && c >= 0x20 && c < 0x7F;
  return {Errc::kUnknownType,
          printable ? "unknown message type '" + std::string(type) + "'"
                    : "unknown message type (" + std::to_string(type.size()) + " bytes)"};
}

template <class Family, std::size_t N>
Result<Family> decode_family(std::string_view text, const DecodeLimits& limits,
                             const std::array<Entry<Family>, N>& table) {
  if (text.size() > limits.max_frame_bytes) {
    return Error(Errc::kFrameTooLarge,
                 "frame of " + std::to_string(text.size()) + " bytes exceeds the maximum of " +
                     std::to_string(limits.max_frame_bytes),
                 0, limits.max_frame_bytes);
  }
  try {
    json doc;
    try {
      doc = json::parse(text);
    } catch (const json::parse_error& e) {
      return from_parse_error(e, text.size());
    }
    if (!doc.is_object()) return Error(Errc::kMissingType, "message is not a JSON object");
    const auto t = doc.find("type");
    if (t == doc.end() || !t->is_string()) {
      const std::size_t at = find_key(text, 0, "type");
      return Error(Errc::kMissingType, "message has no string 'type'", 0,
                   at == std::string_view::npos ? 0 : at);
    }
    const auto& type = t->get_ref<const std::string&>();
    const Entry<Family>* entry = nullptr;
    for (const auto& e : table) {
      if (e.type == type) {
        entry = &e;
        break;
      }
    }
    if (entry == nullptr) return unknown_type(type);

    DecodeState state{text, std::nullopt};
    Reader top(&doc, &state, nullptr, nullptr);
    Reader data = entry->source == Source::kData ? top.object("data") : top;
    Family message = entry->decode(data);
    if (state.error) return std::move(*state.error);
    return message;
  } catch (const json::exception& e) {
    // Unreachable by construction (every access is type-checked first); kept so that a missed
    // check still yields an Error rather than an exception.
    return Error(Errc::kBadField, std::string("unexpected JSON shape: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding.

constexpr auto kReplace = ordered_json::error_handler_t::replace;

double finite(double d) { return std::isfinite(d) ? d : 0.0; }

std::string bare(std::string_view type) {
  std::string out = R"({"type":")";
  out += type;
  out += "\"}";
  return out;
}

std::string with_data(std::string_view type, const ordered_json& data) {
  std::string out = R"({"type":")";
  out += type;
  out += R"(","data":)";
  out += data.dump(-1, ' ', false, kReplace);
  out += '}';
  return out;
}

template <class M>
std::string with_data(const M& /*m*/, const ordered_json& data) {
  return with_data(kType<M>, data);
}

// Appends `s` as a JSON string: verbatim when it is a valid id (no escaping needed), else
// escaped by nlohmann.
void append_id(std::string& out, std::string_view s) {
  if (is_valid_id(s)) {
    out += '"';
    out += s;
    out += '"';
  } else {
    out += ordered_json(s).dump(-1, ' ', false, kReplace);
  }
}

void append_number(std::string& out, std::string_view key, std::uint64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  std::array<char, 24> digits{};  // 20 digits hold any uint64
  const auto r = std::to_chars(digits.data(), digits.data() + digits.size(), value);
  out.append(digits.data(), r.ptr);
}

struct NumberField {
  std::string_view key;
  std::uint64_t value;
};

// The v1 hot path, built without a json tree:
// {"type":"<type>","data":{"<id_key>":"<id>"[,<before>],"data":"<base64>"[,<after>]}}
std::string bytes_envelope(std::string_view type, std::string_view id_key, std::string_view id,
                           std::optional<NumberField> before, std::string_view bytes,
                           std::optional<NumberField> after) {
  const std::size_t b64 = base64_encoded_size(bytes.size());
  std::string out;
  out.reserve(80 + type.size() + id_key.size() + id.size() + b64);
  out += R"({"type":")";
  out += type;
  out += R"(","data":{")";
  out += id_key;
  out += "\":";
  append_id(out, id);
  if (before) append_number(out, before->key, before->value);
  out += R"(,"data":")";
  const std::size_t at = out.size();
  out.resize(at + b64);
  base64_encode_into(bytes, out.data() + at);
  out += '"';
  if (after) append_number(out, after->key, after->value);
  out += "}}";
  return out;
}

std::optional<NumberField> offset_field(std::optional<std::uint64_t> offset) {
  if (!offset) return std::nullopt;
  return NumberField{"offset", *offset};
}

ordered_json counts_json(const ByteCounts& c) {
  return {{"total", c.total}, {"available", c.available}, {"free", c.free}};
}

ordered_json session_json(const std::string& session_id) { return {{"session_id", session_id}}; }

}  // namespace

// ---- type names ----

std::string_view type_name(const AgentMessage& m) {
  return std::visit([](const auto& x) { return kType<std::decay_t<decltype(x)>>; }, m);
}

std::string_view type_name(const UserMessage& m) {
  return std::visit([](const auto& x) { return kType<std::decay_t<decltype(x)>>; }, m);
}

// ---- encoders ----

std::string encode(const AgentMessage& message) {
  return std::visit([](const auto& m) { return encode(m); }, message);
}

std::string encode(const UserMessage& message) {
  return std::visit([](const auto& m) { return encode(m); }, message);
}

std::string encode(const ShellStart& m) {
  ordered_json d = {{"session_id", m.session_id}, {"new_session", m.new_session}};
  if (m.cols) d["cols"] = *m.cols;
  if (m.rows) d["rows"] = *m.rows;
  if (m.resume_offset) d["resume_offset"] = *m.resume_offset;
  return with_data(m, d);
}

std::string encode(const ShellInput& m) { return encode_shell_input(m.session_id, m.data); }

std::string encode(const ShellResize& m) {
  return with_data(m, {{"session_id", m.session_id}, {"cols", m.cols}, {"rows", m.rows}});
}

std::string encode(const ShellStopSession& m) { return with_data(m, session_json(m.session_id)); }

std::string encode(const ShellFlow& m) {
  ordered_json d = session_json(m.session_id);
  d["paused"] = m.paused;
  return with_data(m, d);
}

std::string encode(const ShellStop& /*m*/) { return bare(kType<ShellStop>); }

std::string encode(const Exec& m) {
  ordered_json d = {{"command", m.command}};
  if (m.timeout_s) d["timeout_s"] = *m.timeout_s;
  if (m.exec_id) d["exec_id"] = *m.exec_id;
  return with_data(m, d);
}

std::string encode(const Ping& /*m*/) { return bare(kType<Ping>); }

std::string encode(const Pong& m) { return with_data(m, nullptr); }

std::string encode(const SystemInfo& m) {
  return with_data(m, {{"hostname", m.hostname},
                       {"num_cpu", m.num_cpu},
                       {"memory", counts_json(m.memory)},
                       {"disk", counts_json(m.disk)},
                       {"region", m.region},
                       {"os", m.os},
                       {"arch", m.arch},
                       {"distro", m.distro},
                       {"kernel", m.kernel},
                       {"agent_version", m.agent_version},
                       {"shell", m.shell}});
}

std::string encode(const Stats& m) {
  ordered_json d = {{"cpu_percent", finite(m.cpu_percent)},
                    {"memory", m.memory},
                    {"memory_limit", m.memory_limit},
                    {"disk_usage", m.disk_usage},
                    {"disk_limit", m.disk_limit},
                    {"load1", finite(m.load1)},
                    {"load5", finite(m.load5)},
                    {"load15", finite(m.load15)},
                    {"uptime_s", m.uptime_s},
                    {"sessions", m.sessions}};
  if (!m.isolation.empty()) d["isolation"] = m.isolation;
  if (!m.session_usage.empty()) {
    ordered_json usage = ordered_json::array();
    for (const SessionUsage& u : m.session_usage) {
      ordered_json e = {{"session_id", u.session_id}, {"cpu_usec", u.cpu_usec}};
      if (u.memory) e["memory"] = *u.memory;
      e["pids"] = u.pids;
      usage.push_back(std::move(e));
    }
    d["session_usage"] = std::move(usage);
  }
  return with_data(m, d);
}

std::string encode(const ShellStarting& m) { return with_data(m, session_json(m.session_id)); }

std::string encode(const ShellStarted& m) {
  ordered_json d = session_json(m.session_id);
  if (m.new_shell) d["new_shell"] = true;
  return with_data(m, d);
}

std::string encode(const ShellReplay& m) {
  return bytes_envelope(kType<ShellReplay>, "session_id", m.session_id, std::nullopt, m.data,
                        offset_field(m.offset));
}

std::string encode(const ShellOutput& m) {
  return encode_shell_output(m.session_id, m.data, m.offset);
}

std::string encode(const ShellStopped& m) {
  ordered_json d = session_json(m.session_id);
  if (m.exit_code) d["exit_code"] = *m.exit_code;
  if (m.signal) d["signal"] = *m.signal;
  return with_data(m, d);
}

std::string encode(const ShellError& m) {
  return with_data(m, {{"session_id", m.session_id}, {"error", m.error}});
}

std::string encode(const ExecResult& m) {
  ordered_json d = {{"command", m.command},
                    {"output", m.output},
                    {"success", m.success},
                    {"exit_code", m.exit_code}};
  if (m.error) d["error"] = *m.error;
  if (m.exec_id) d["exec_id"] = *m.exec_id;
  return with_data(m, d);
}

std::string encode(const FileGet& m) {
  return with_data(m, {{"transfer_id", m.transfer_id}, {"path", m.path}});
}

std::string encode(const FilePut& m) {
  ordered_json d = {{"transfer_id", m.transfer_id}, {"path", m.path}, {"size", m.size}};
  if (m.mode) d["mode"] = *m.mode;
  return with_data(m, d);
}

std::string encode(const FileData& m) {
  return bytes_envelope(kType<FileData>, "transfer_id", m.transfer_id, NumberField{"seq", m.seq},
                        m.data, std::nullopt);
}

std::string encode(const FileEnd& m) {
  return with_data(m, {{"transfer_id", m.transfer_id}, {"sha256", m.sha256}});
}

std::string encode(const FileError& m) {
  ordered_json d = {{"transfer_id", m.transfer_id}, {"error", m.error}};
  if (m.status) d["status"] = *m.status;
  return with_data(m, d);
}

std::string encode(const FileInfo& m) {
  return with_data(
      m, {{"transfer_id", m.transfer_id}, {"size", m.size}, {"mode", m.mode}, {"mtime", m.mtime}});
}

std::string encode(const FileAck& m) {
  return with_data(m, {{"transfer_id", m.transfer_id}, {"bytes", m.bytes}});
}

std::string encode(const FileList& m) {
  return with_data(m, {{"transfer_id", m.transfer_id}, {"path", m.path}});
}

std::string encode(const FileListResult& m) {
  ordered_json entries = ordered_json::array();
  for (const FileEntry& e : m.entries) {
    entries.push_back({{"name", e.name},
                       {"type", e.type},
                       {"size", e.size},
                       {"mode", e.mode},
                       {"mtime", e.mtime}});
  }
  ordered_json d = {
      {"transfer_id", m.transfer_id}, {"path", m.path}, {"entries", std::move(entries)}};
  if (m.truncated) d["truncated"] = true;
  return with_data(m, d);
}

std::string encode(const Input& m) { return with_data(m, m.data); }

std::string encode(const Resize& m) {
  std::string out = R"({"type":"resize")";
  append_number(out, "cols", m.cols);
  append_number(out, "rows", m.rows);
  out += '}';
  return out;
}

std::string encode(const UserExec& m) { return with_data(m, {{"command", m.command}}); }

std::string encode(const UserPing& /*m*/) { return bare(kType<UserPing>); }

std::string encode(const UserPong& /*m*/) { return bare(kType<UserPong>); }

std::string encode(const UserFlow& m) { return with_data(m, {{"paused", m.paused}}); }

std::string encode(const Output& m) { return encode_output(m.data, m.offset); }

std::string encode(const OffsetMsg& m) {
  std::string out = R"({"type":"offset")";
  append_number(out, "data", m.offset);
  out += '}';
  return out;
}

std::string encode(const Gap& m) { return with_data(m, {{"from", m.from}, {"to", m.to}}); }

std::string encode(const AgentDisconnected& m) { return with_data(m, {{"agent_id", m.agent_id}}); }

std::string encode(const AgentConnected& m) {
  if (!m.agent_id) return bare(kType<AgentConnected>);
  return with_data(m, {{"agent_id", *m.agent_id}});
}

std::string encode_shell_output(std::string_view session_id, std::string_view bytes,
                                std::optional<std::uint64_t> offset) {
  return bytes_envelope(kType<ShellOutput>, "session_id", session_id, std::nullopt, bytes,
                        offset_field(offset));
}

std::string encode_shell_input(std::string_view session_id, std::string_view bytes) {
  return bytes_envelope(kType<ShellInput>, "session_id", session_id, std::nullopt, bytes,
                        std::nullopt);
}

std::string encode_output(std::string_view text, std::optional<std::uint64_t> offset) {
  std::string out = R"({"type":"output","data":)";
  out += ordered_json(text).dump(-1, ' ', false, kReplace);
  if (offset) append_number(out, "offset", *offset);
  out += '}';
  return out;
}

// ---- decoders ----

Result<AgentMessage> decode_agent_message(std::string_view text, const DecodeLimits& limits) {
  return decode_family(text, limits, kAgentTable);
}

Result<UserMessage> decode_user_message(std::string_view text, const DecodeLimits& limits) {
  return decode_family(text, limits, kUserTable);
}

}  // namespace rx::proto
