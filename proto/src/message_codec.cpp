// SPDX-License-Identifier: MIT
// JSON envelope codecs. nlohmann's exceptions are caught here and never leave the module.
#include "rexec/proto/message_codec.h"

#include "rexec/proto/base64.h"

#include <nlohmann/json.hpp>

#include <limits>
#include <type_traits>

namespace rx::proto {

namespace {

using nlohmann::json;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// ---------------------------------------------------------------------------------------------
// Decoding helpers. `text` is kept to report where a bad key appears.

class Fields {
 public:
  Fields(const json& data, std::string_view text) : d_(&data), text_(text) {}

  Status string(const char* key, std::string& out) {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_string()) return wrong(key, "a string");
    out = v->get_ref<const std::string&>();
    return {};
  }

  Status opt_string(const char* key, std::optional<std::string>& out) {
    const json* v = find(key);
    if (v == nullptr) return {};
    std::string s;
    if (auto st = string(key, s); !st) return st;
    out = std::move(s);
    return {};
  }

  Status string_or_empty(const char* key, std::string& out) {
    return find(key) == nullptr ? Status{} : string(key, out);
  }

  Status id(const char* key, std::string& out) {
    if (auto st = string(key, out); !st) return st;
    if (!is_valid_id(out)) {
      return Error(Errc::kBadSessionId,
                   std::string("'") + key + "' must be 1..64 characters of [A-Za-z0-9_-]", 0,
                   offset_of(key));
    }
    return {};
  }

  Status bytes(const char* key, std::string& out) {
    std::string b64;
    if (auto st = string(key, b64); !st) return st;
    auto decoded = base64_decode(b64);
    if (!decoded) {
      return Error(Errc::kBadBase64, std::string("'") + key + "' is not valid base64", 0,
                   offset_of(key));
    }
    out = std::move(decoded).value();
    return {};
  }

  Status boolean(const char* key, bool& out, bool required) {
    const json* v = find(key);
    if (v == nullptr) return required ? missing(key) : Status{};
    if (!v->is_boolean()) return wrong(key, "a boolean");
    out = v->get<bool>();
    return {};
  }

  template <class T>
  Status unsigned_int(const char* key, T& out, std::uint64_t max = std::numeric_limits<T>::max()) {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    return convert_unsigned(key, *v, out, max);
  }

  template <class T>
  Status opt_unsigned(const char* key, std::optional<T>& out,
                      std::uint64_t max = std::numeric_limits<T>::max()) {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return {};
    T t{};
    if (auto st = convert_unsigned(key, *v, t, max); !st) return st;
    out = t;
    return {};
  }

  Status integer(const char* key, int& out) {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_number_integer()) return wrong(key, "an integer");
    const auto i = v->get<std::int64_t>();
    if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
      return out_of_range(key);
    }
    out = static_cast<int>(i);
    return {};
  }

  Status opt_integer(const char* key, std::optional<int>& out) {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return {};
    int i = 0;
    if (auto st = integer(key, i); !st) return st;
    out = i;
    return {};
  }

  Status number(const char* key, double& out) {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_number()) return wrong(key, "a number");
    out = v->get<double>();
    return {};
  }

  Status terminal_dim(const char* key, std::uint16_t& out) {
    std::uint32_t v = 0;
    if (auto st = unsigned_int(key, v); !st) return st;
    if (v == 0 || v > kMaxTerminalDim) return out_of_range(key);
    out = static_cast<std::uint16_t>(v);
    return {};
  }

  Status opt_terminal_dim(const char* key, std::optional<std::uint16_t>& out) {
    if (find(key) == nullptr || find(key)->is_null()) return {};
    std::uint16_t v = 0;
    if (auto st = terminal_dim(key, v); !st) return st;
    out = v;
    return {};
  }

  Status object(const char* key, Fields& out) {
    const json* v = find(key);
    if (v == nullptr) return missing(key);
    if (!v->is_object()) return wrong(key, "an object");
    out = Fields(*v, text_);
    return {};
  }

 private:
  [[nodiscard]] const json* find(const char* key) const {
    if (!d_->is_object()) return nullptr;
    const auto it = d_->find(key);
    return it == d_->end() ? nullptr : &*it;
  }

  [[nodiscard]] std::size_t offset_of(const char* key) const {
    // The last occurrence: field keys of "data" come after the envelope's own keys.
    const auto pos = text_.rfind(std::string("\"") + key + "\"");
    return pos == std::string_view::npos ? 0 : pos;
  }

  Error missing(const char* key) const {
    return {Errc::kBadField, std::string("missing field '") + key + "'", 0, 0};
  }

  Error wrong(const char* key, const char* what) const {
    return {Errc::kBadField, std::string("'") + key + "' must be " + what, 0, offset_of(key)};
  }

  Error out_of_range(const char* key) const {
    return {Errc::kBadValue, std::string("'") + key + "' is out of range", 0, offset_of(key)};
  }

  template <class T>
  Status convert_unsigned(const char* key, const json& v, T& out, std::uint64_t max) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > max) return out_of_range(key);
      out = static_cast<T>(u);
      return {};
    }
    if (v.is_number_integer()) return out_of_range(key);  // negative
    return wrong(key, "a non-negative integer");
  }

  const json* d_;  // not owned: the parsed envelope outlives every Fields
  std::string_view text_;
};

struct Envelope {
  std::string type;
  json whole;
};

Result<Envelope> parse_envelope(std::string_view text, const DecodeLimits& limits) {
  if (text.size() > limits.max_frame_bytes) {
    return Error(Errc::kFrameTooLarge,
                 "frame of " + std::to_string(text.size()) + " bytes exceeds the maximum of " +
                     std::to_string(limits.max_frame_bytes),
                 0, limits.max_frame_bytes);
  }
  Envelope e;
  try {
    e.whole = json::parse(text);
  } catch (const json::parse_error& err) {
    const std::string what = err.what();
    const bool utf8 = what.find("UTF-8") != std::string::npos;
    const std::size_t at = err.byte > 0 ? err.byte - 1 : 0;
    return Error(utf8 ? Errc::kBadUtf8 : Errc::kBadJson,
                 utf8 ? "ill-formed UTF-8 in a JSON string" : "malformed JSON", 0, at);
  }
  if (!e.whole.is_object()) return Error(Errc::kMissingType, "message is not a JSON object");
  const auto t = e.whole.find("type");
  if (t == e.whole.end() || !t->is_string()) {
    const auto pos = text.find("\"type\"");
    return Error(Errc::kMissingType, "message has no string 'type'", 0,
                 pos == std::string_view::npos ? 0 : pos);
  }
  e.type = t->get<std::string>();
  return e;
}

Error unknown(const std::string& type) {
  return {Errc::kUnknownType, "unknown message type '" + type.substr(0, 64) + "'"};
}

// Binds the "data" member of the envelope for a message that needs an object.
Result<Fields> data_object(const Envelope& e, std::string_view text) {
  const auto it = e.whole.find("data");
  if (it == e.whole.end() || !it->is_object()) {
    const auto pos = text.find("\"data\"");
    return Error(Errc::kBadField, "'data' must be an object", 0,
                 pos == std::string_view::npos ? 0 : pos);
  }
  return Fields(*it, text);
}

// Runs each status in order and returns the first failure.
template <class... S>
Status all(S&&... statuses) {
  Status result;
  ((result = result ? std::forward<S>(statuses)() : result), ...);
  return result;
}

#define REXEC_FIELD(expr) [&]() -> Status { return (expr); }

// `m` is bound by reference so the field reads in `st` (evaluated in any order relative to this
// argument) are complete before it is moved.
template <class M, class Family>
Result<Family> finish(Status st, M&& m) {
  if (!st) return std::move(st).error();
  return Family(std::forward<M>(m));
}

Status read_counts(Fields& f, const char* key, ByteCounts& out) {
  static const json kNull;
  Fields c(kNull, {});
  if (auto st = f.object(key, c); !st) return st;
  return all(REXEC_FIELD(c.unsigned_int("total", out.total)),
             REXEC_FIELD(c.unsigned_int("available", out.available)),
             REXEC_FIELD(c.unsigned_int("free", out.free)));
}

Status read_stats(Fields& f, Stats& s) {
  return all(REXEC_FIELD(f.number("cpu_percent", s.cpu_percent)),
             REXEC_FIELD(f.unsigned_int("memory", s.memory)),
             REXEC_FIELD(f.unsigned_int("memory_limit", s.memory_limit)),
             REXEC_FIELD(f.unsigned_int("disk_usage", s.disk_usage)),
             REXEC_FIELD(f.unsigned_int("disk_limit", s.disk_limit)),
             REXEC_FIELD(f.number("load1", s.load1)), REXEC_FIELD(f.number("load5", s.load5)),
             REXEC_FIELD(f.number("load15", s.load15)),
             REXEC_FIELD(f.unsigned_int("uptime_s", s.uptime_s)),
             REXEC_FIELD(f.unsigned_int("sessions", s.sessions)));
}

Status read_exec_result(Fields& f, ExecResult& r) {
  return all(REXEC_FIELD(f.string("command", r.command)), REXEC_FIELD(f.string("output", r.output)),
             REXEC_FIELD(f.boolean("success", r.success, true)),
             REXEC_FIELD(f.integer("exit_code", r.exit_code)),
             REXEC_FIELD(f.opt_string("error", r.error)));
}

template <class T>
Status read_session_only(Fields& f, T& m) {
  return f.id("session_id", m.session_id);
}

Status read_stopped(Fields& f, ShellStopped& m) {
  return all(REXEC_FIELD(f.id("session_id", m.session_id)),
             REXEC_FIELD(f.opt_integer("exit_code", m.exit_code)),
             REXEC_FIELD(f.opt_integer("signal", m.signal)));
}

Status read_exec(Fields& f, Exec& m) {
  return all(REXEC_FIELD(f.string("command", m.command)),
             REXEC_FIELD(f.opt_unsigned("timeout_s", m.timeout_s)));
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers.

json counts_json(const ByteCounts& c) {
  return {{"total", c.total}, {"available", c.available}, {"free", c.free}};
}

json stats_json(const Stats& s) {
  return {{"cpu_percent", s.cpu_percent},
          {"memory", s.memory},
          {"memory_limit", s.memory_limit},
          {"disk_usage", s.disk_usage},
          {"disk_limit", s.disk_limit},
          {"load1", s.load1},
          {"load5", s.load5},
          {"load15", s.load15},
          {"uptime_s", s.uptime_s},
          {"sessions", s.sessions}};
}

json exec_result_json(const ExecResult& r) {
  json j = {{"command", r.command},
            {"output", r.output},
            {"success", r.success},
            {"exit_code", r.exit_code}};
  if (r.error) j["error"] = *r.error;
  return j;
}

json stopped_json(const ShellStopped& m) {
  json j = {{"session_id", m.session_id}};
  if (m.exit_code) j["exit_code"] = *m.exit_code;
  if (m.signal) j["signal"] = *m.signal;
  return j;
}

std::string envelope(std::string_view type, const json& data) {
  json j = {{"type", type}, {"data", data}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string envelope(std::string_view type) {
  json j = {{"type", type}};
  return j.dump();
}

// The hot path (PTY bytes in v1) skips the json tree: ids are validated [A-Za-z0-9_-] and
// base64 needs no escaping.
std::string bytes_message(std::string_view type, std::string_view id_key, std::string_view id,
                          std::string_view bytes, std::optional<std::uint64_t> number,
                          std::string_view number_key) {
  std::string out;
  out.reserve(64 + id.size() + (bytes.size() + 2) / 3 * 4);
  out += R"({"type":")";
  out += type;
  out += R"(","data":{")";
  out += id_key;
  out += R"(":")";
  out += id;
  out += R"(",)";
  if (number) {
    out += '"';
    out += number_key;
    out += R"(":)";
    out += std::to_string(*number);
    out += ',';
  }
  out += R"("data":")";
  out += base64_encode(bytes);
  out += R"("}})";
  return out;
}

}  // namespace

std::string_view type_name(const AgentMessage& m) {
  return std::visit(Overloaded{[](const ShellStart&) { return "shell_start"; },
                               [](const ShellInput&) { return "shell_input"; },
                               [](const ShellResize&) { return "shell_resize"; },
                               [](const ShellStopSession&) { return "shell_stop_session"; },
                               [](const ShellStop&) { return "shell_stop"; },
                               [](const Exec&) { return "exec"; },
                               [](const Ping&) { return "ping"; },
                               [](const Pong&) { return "pong"; },
                               [](const SystemInfo&) { return "system_info"; },
                               [](const Stats&) { return "stats"; },
                               [](const ShellStarting&) { return "shell_starting"; },
                               [](const ShellStarted&) { return "shell_started"; },
                               [](const ShellOutput&) { return "shell_output"; },
                               [](const ShellStopped&) { return "shell_stopped"; },
                               [](const ShellError&) { return "shell_error"; },
                               [](const ExecResult&) { return "exec_result"; },
                               [](const FileGet&) { return "file_get"; },
                               [](const FilePut&) { return "file_put"; },
                               [](const FileData&) { return "file_data"; },
                               [](const FileEnd&) { return "file_end"; },
                               [](const FileError&) { return "file_error"; }},
                    m);
}

std::string_view type_name(const UserMessage& m) {
  return std::visit(
      Overloaded{[](const Input&) { return "input"; }, [](const Resize&) { return "resize"; },
                 [](const Exec&) { return "exec"; }, [](const Ping&) { return "ping"; },
                 [](const Pong&) { return "pong"; }, [](const Output&) { return "output"; },
                 [](const OffsetMsg&) { return "offset"; }, [](const Gap&) { return "gap"; },
                 [](const AgentDisconnected&) { return "agent_disconnected"; },
                 [](const AgentConnected&) { return "agent_connected"; },
                 [](const Stats&) { return "stats"; },
                 [](const ShellStarting&) { return "shell_starting"; },
                 [](const ShellStarted&) { return "shell_started"; },
                 [](const ShellStopped&) { return "shell_stopped"; },
                 [](const ShellError&) { return "shell_error"; },
                 [](const ExecResult&) { return "exec_result"; }},
      m);
}

std::string encode(const AgentMessage& message) {
  const std::string_view type = type_name(message);
  return std::visit(
      Overloaded{[&](const ShellStart& m) {
                   json d = {{"session_id", m.session_id}, {"new_session", m.new_session}};
                   if (m.cols) d["cols"] = *m.cols;
                   if (m.rows) d["rows"] = *m.rows;
                   if (m.resume_offset) d["resume_offset"] = *m.resume_offset;
                   return envelope(type, d);
                 },
                 [&](const ShellInput& m) {
                   return bytes_message(type, "session_id", m.session_id, m.data, std::nullopt, "");
                 },
                 [&](const ShellResize& m) {
                   return envelope(
                       type, {{"session_id", m.session_id}, {"cols", m.cols}, {"rows", m.rows}});
                 },
                 [&](const ShellStopSession& m) {
                   return envelope(type, {{"session_id", m.session_id}});
                 },
                 [&](const ShellStop&) { return envelope(type); },
                 [&](const Exec& m) {
                   json d = {{"command", m.command}};
                   if (m.timeout_s) d["timeout_s"] = *m.timeout_s;
                   return envelope(type, d);
                 },
                 [&](const Ping&) { return envelope(type); },
                 [&](const Pong&) { return envelope(type, nullptr); },
                 [&](const SystemInfo& m) {
                   return envelope(type, {{"hostname", m.hostname},
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
                 },
                 [&](const Stats& m) { return envelope(type, stats_json(m)); },
                 [&](const ShellStarting& m) {
                   return envelope(type, {{"session_id", m.session_id}});
                 },
                 [&](const ShellStarted& m) {
                   return envelope(type, {{"session_id", m.session_id}});
                 },
                 [&](const ShellOutput& m) {
                   return bytes_message(type, "session_id", m.session_id, m.data, m.offset,
                                        "offset");
                 },
                 [&](const ShellStopped& m) { return envelope(type, stopped_json(m)); },
                 [&](const ShellError& m) {
                   return envelope(type, {{"session_id", m.session_id}, {"error", m.error}});
                 },
                 [&](const ExecResult& m) { return envelope(type, exec_result_json(m)); },
                 [&](const FileGet& m) {
                   return envelope(type, {{"transfer_id", m.transfer_id}, {"path", m.path}});
                 },
                 [&](const FilePut& m) {
                   json d = {{"transfer_id", m.transfer_id}, {"path", m.path}, {"size", m.size}};
                   if (m.mode) d["mode"] = *m.mode;
                   return envelope(type, d);
                 },
                 [&](const FileData& m) {
                   return bytes_message(type, "transfer_id", m.transfer_id, m.data, m.seq, "seq");
                 },
                 [&](const FileEnd& m) {
                   return envelope(type, {{"transfer_id", m.transfer_id}, {"sha256", m.sha256}});
                 },
                 [&](const FileError& m) {
                   return envelope(type, {{"transfer_id", m.transfer_id}, {"error", m.error}});
                 }},
      message);
}

std::string encode(const UserMessage& message) {
  const std::string_view type = type_name(message);
  return std::visit(
      Overloaded{[&](const Input& m) { return envelope(type, m.data); },
                 [&](const Resize& m) {
                   return json{{"type", type}, {"cols", m.cols}, {"rows", m.rows}}.dump();
                 },
                 [&](const Exec& m) {
                   json d = {{"command", m.command}};
                   if (m.timeout_s) d["timeout_s"] = *m.timeout_s;
                   return envelope(type, d);
                 },
                 [&](const Ping&) { return envelope(type); },
                 [&](const Pong&) { return envelope(type); },
                 [&](const Output& m) {
                   json j = {{"type", type}, {"data", m.data}};
                   if (m.offset) j["offset"] = *m.offset;
                   return j.dump(-1, ' ', false, json::error_handler_t::replace);
                 },
                 [&](const OffsetMsg& m) { return envelope(type, m.offset); },
                 [&](const Gap& m) {
                   return envelope(type, {{"from", m.from}, {"to", m.to}});
                 },
                 [&](const AgentDisconnected& m) {
                   return envelope(type, {{"agent_id", m.agent_id}});
                 },
                 [&](const AgentConnected& m) {
                   return envelope(type, {{"agent_id", m.agent_id}});
                 },
                 [&](const Stats& m) { return envelope(type, stats_json(m)); },
                 [&](const ShellStarting& m) {
                   return envelope(type, {{"session_id", m.session_id}});
                 },
                 [&](const ShellStarted& m) {
                   return envelope(type, {{"session_id", m.session_id}});
                 },
                 [&](const ShellStopped& m) { return envelope(type, stopped_json(m)); },
                 [&](const ShellError& m) {
                   return envelope(type, {{"session_id", m.session_id}, {"error", m.error}});
                 },
                 [&](const ExecResult& m) { return envelope(type, exec_result_json(m)); }},
      message);
}

Result<AgentMessage> decode_agent_message(std::string_view text, const DecodeLimits& limits) {
  auto env = parse_envelope(text, limits);
  if (!env) return std::move(env).error();
  const std::string& type = env->type;
  if (type == "ping") return AgentMessage(Ping{});
  if (type == "pong") return AgentMessage(Pong{});
  if (type == "shell_stop") return AgentMessage(ShellStop{});
  auto fields = data_object(*env, text);
  // Unknown types are reported as such even when their data is odd.
  static constexpr std::string_view kKnown[] = {
      "shell_start",   "shell_input", "shell_resize",   "shell_stop_session", "exec",
      "system_info",   "stats",       "shell_starting", "shell_started",      "shell_output",
      "shell_stopped", "shell_error", "exec_result",    "file_get",           "file_put",
      "file_data",     "file_end",    "file_error"};
  bool known = false;
  for (auto k : kKnown) known = known || k == type;
  if (!known) return unknown(type);
  if (!fields) return std::move(fields).error();
  Fields& f = *fields;
  if (type == "shell_start") {
    ShellStart m;
    return finish<ShellStart, AgentMessage>(
        all(REXEC_FIELD(f.id("session_id", m.session_id)),
            REXEC_FIELD(f.boolean("new_session", m.new_session, false)),
            REXEC_FIELD(f.opt_terminal_dim("cols", m.cols)),
            REXEC_FIELD(f.opt_terminal_dim("rows", m.rows)),
            REXEC_FIELD(f.opt_unsigned("resume_offset", m.resume_offset))),
        std::move(m));
  }
  if (type == "shell_input") {
    ShellInput m;
    return finish<ShellInput, AgentMessage>(
        all(REXEC_FIELD(f.id("session_id", m.session_id)), REXEC_FIELD(f.bytes("data", m.data))),
        std::move(m));
  }
  if (type == "shell_resize") {
    ShellResize m;
    return finish<ShellResize, AgentMessage>(all(REXEC_FIELD(f.id("session_id", m.session_id)),
                                                 REXEC_FIELD(f.terminal_dim("cols", m.cols)),
                                                 REXEC_FIELD(f.terminal_dim("rows", m.rows))),
                                             std::move(m));
  }
  if (type == "shell_stop_session") {
    ShellStopSession m;
    return finish<ShellStopSession, AgentMessage>(read_session_only(f, m), std::move(m));
  }
  if (type == "exec") {
    Exec m;
    return finish<Exec, AgentMessage>(read_exec(f, m), std::move(m));
  }
  if (type == "system_info") {
    SystemInfo m;
    return finish<SystemInfo, AgentMessage>(
        all(REXEC_FIELD(f.string("hostname", m.hostname)),
            REXEC_FIELD(f.unsigned_int("num_cpu", m.num_cpu)),
            REXEC_FIELD(read_counts(f, "memory", m.memory)),
            REXEC_FIELD(read_counts(f, "disk", m.disk)),
            REXEC_FIELD(f.string_or_empty("region", m.region)),
            REXEC_FIELD(f.string_or_empty("os", m.os)),
            REXEC_FIELD(f.string_or_empty("arch", m.arch)),
            REXEC_FIELD(f.string_or_empty("distro", m.distro)),
            REXEC_FIELD(f.string_or_empty("kernel", m.kernel)),
            REXEC_FIELD(f.string_or_empty("agent_version", m.agent_version)),
            REXEC_FIELD(f.string_or_empty("shell", m.shell))),
        std::move(m));
  }
  if (type == "stats") {
    Stats m;
    return finish<Stats, AgentMessage>(read_stats(f, m), std::move(m));
  }
  if (type == "shell_starting") {
    ShellStarting m;
    return finish<ShellStarting, AgentMessage>(read_session_only(f, m), std::move(m));
  }
  if (type == "shell_started") {
    ShellStarted m;
    return finish<ShellStarted, AgentMessage>(read_session_only(f, m), std::move(m));
  }
  if (type == "shell_output") {
    ShellOutput m;
    return finish<ShellOutput, AgentMessage>(
        all(REXEC_FIELD(f.id("session_id", m.session_id)), REXEC_FIELD(f.bytes("data", m.data)),
            REXEC_FIELD(f.opt_unsigned("offset", m.offset))),
        std::move(m));
  }
  if (type == "shell_stopped") {
    ShellStopped m;
    return finish<ShellStopped, AgentMessage>(read_stopped(f, m), std::move(m));
  }
  if (type == "shell_error") {
    ShellError m;
    return finish<ShellError, AgentMessage>(
        all(REXEC_FIELD(f.id("session_id", m.session_id)), REXEC_FIELD(f.string("error", m.error))),
        std::move(m));
  }
  if (type == "exec_result") {
    ExecResult m;
    return finish<ExecResult, AgentMessage>(read_exec_result(f, m), std::move(m));
  }
  if (type == "file_get") {
    FileGet m;
    return finish<FileGet, AgentMessage>(
        all(REXEC_FIELD(f.id("transfer_id", m.transfer_id)), REXEC_FIELD(f.string("path", m.path))),
        std::move(m));
  }
  if (type == "file_put") {
    FilePut m;
    return finish<FilePut, AgentMessage>(
        all(REXEC_FIELD(f.id("transfer_id", m.transfer_id)), REXEC_FIELD(f.string("path", m.path)),
            REXEC_FIELD(f.unsigned_int("size", m.size)),
            REXEC_FIELD(f.opt_unsigned("mode", m.mode, 07777))),
        std::move(m));
  }
  if (type == "file_data") {
    FileData m;
    return finish<FileData, AgentMessage>(
        all(REXEC_FIELD(f.id("transfer_id", m.transfer_id)),
            REXEC_FIELD(f.unsigned_int("seq", m.seq)), REXEC_FIELD(f.bytes("data", m.data))),
        std::move(m));
  }
  if (type == "file_end") {
    FileEnd m;
    return finish<FileEnd, AgentMessage>(all(REXEC_FIELD(f.id("transfer_id", m.transfer_id)),
                                             REXEC_FIELD(f.string("sha256", m.sha256))),
                                         std::move(m));
  }
  FileError m;  // "file_error": the last known type
  return finish<FileError, AgentMessage>(
      all(REXEC_FIELD(f.id("transfer_id", m.transfer_id)), REXEC_FIELD(f.string("error", m.error))),
      std::move(m));
}

Result<UserMessage> decode_user_message(std::string_view text, const DecodeLimits& limits) {
  auto env = parse_envelope(text, limits);
  if (!env) return std::move(env).error();
  const std::string& type = env->type;
  if (type == "ping") return UserMessage(Ping{});
  if (type == "pong") return UserMessage(Pong{});
  Fields top(env->whole, text);
  if (type == "resize") {
    Resize m;
    return finish<Resize, UserMessage>(all(REXEC_FIELD(top.terminal_dim("cols", m.cols)),
                                           REXEC_FIELD(top.terminal_dim("rows", m.rows))),
                                       std::move(m));
  }
  if (type == "input") {
    Input m;
    return finish<Input, UserMessage>(top.string("data", m.data), std::move(m));
  }
  if (type == "output") {
    Output m;
    return finish<Output, UserMessage>(all(REXEC_FIELD(top.string("data", m.data)),
                                           REXEC_FIELD(top.opt_unsigned("offset", m.offset))),
                                       std::move(m));
  }
  if (type == "offset") {
    OffsetMsg m;
    return finish<OffsetMsg, UserMessage>(top.unsigned_int("data", m.offset), std::move(m));
  }
  static constexpr std::string_view kKnown[] = {
      "exec",           "gap",           "agent_disconnected", "agent_connected", "stats",
      "shell_starting", "shell_started", "shell_stopped",      "shell_error",     "exec_result"};
  bool known = false;
  for (auto k : kKnown) known = known || k == type;
  if (!known) return unknown(type);
  auto fields = data_object(*env, text);
  if (!fields) return std::move(fields).error();
  Fields& f = *fields;
  if (type == "exec") {
    Exec m;
    return finish<Exec, UserMessage>(read_exec(f, m), std::move(m));
  }
  if (type == "gap") {
    Gap m;
    return finish<Gap, UserMessage>(
        all(REXEC_FIELD(f.unsigned_int("from", m.from)), REXEC_FIELD(f.unsigned_int("to", m.to))),
        std::move(m));
  }
  if (type == "agent_disconnected" || type == "agent_connected") {
    std::string agent_id;
    auto st = f.string_or_empty("agent_id", agent_id);
    if (!st) return std::move(st).error();
    if (type == "agent_connected") return UserMessage(AgentConnected{agent_id});
    return UserMessage(AgentDisconnected{agent_id});
  }
  if (type == "stats") {
    Stats m;
    return finish<Stats, UserMessage>(read_stats(f, m), std::move(m));
  }
  if (type == "shell_starting") {
    ShellStarting m;
    return finish<ShellStarting, UserMessage>(read_session_only(f, m), std::move(m));
  }
  if (type == "shell_started") {
    ShellStarted m;
    return finish<ShellStarted, UserMessage>(read_session_only(f, m), std::move(m));
  }
  if (type == "shell_stopped") {
    ShellStopped m;
    return finish<ShellStopped, UserMessage>(read_stopped(f, m), std::move(m));
  }
  if (type == "shell_error") {
    ShellError m;
    return finish<ShellError, UserMessage>(
        all(REXEC_FIELD(f.id("session_id", m.session_id)), REXEC_FIELD(f.string("error", m.error))),
        std::move(m));
  }
  ExecResult m;  // "exec_result"
  return finish<ExecResult, UserMessage>(read_exec_result(f, m), std::move(m));
}

}  // namespace rx::proto
