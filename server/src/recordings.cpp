// SPDX-License-Identifier: MIT
// asciicast v2 files: a JSON header line, then one JSON array per event,
// [seconds since the start, "o" | "r", text].
#include "rexec/server/recordings.h"

#include "rexec/proto/utf8.h"
#include "rexec/server/auth/tokens.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <regex>

namespace rx::server {

namespace {

namespace fs = std::filesystem;

// A recording is refused below this much free space (fail-closed mode says why at once, rather
// than at the first failed write).
constexpr std::uint64_t kMinFreeBytes = 16U << 20U;

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// <session>-<YYYYmmddTHHMMSSZ>-<8 hex>.cast
const std::regex& name_pattern() {
  static const std::regex re(R"(^([A-Za-z0-9_-]{1,64})-([0-9]{8}T[0-9]{6}Z)-[0-9a-f]{8}\.cast$)");
  return re;
}

std::int64_t parse_utc_ms(const std::string& stamp) {
  std::tm tm{};
  if (::strptime(stamp.c_str(), "%Y%m%dT%H%M%SZ", &tm) == nullptr) return 0;
  return static_cast<std::int64_t>(::timegm(&tm)) * 1000;
}

}  // namespace

std::optional<RecordingMode> parse_recording_mode(std::string_view text) {
  if (text == "off") return RecordingMode::kOff;
  if (text == "on") return RecordingMode::kOn;
  if (text == "required") return RecordingMode::kRequired;
  return std::nullopt;
}

std::string_view recording_mode_name(RecordingMode mode) {
  switch (mode) {
    case RecordingMode::kOn:
      return "on";
    case RecordingMode::kRequired:
      return "required";
    case RecordingMode::kOff:
      break;
  }
  return "off";
}

Recording::Recording(std::FILE* file, std::string name)
    : file_(file), name_(std::move(name)), started_(monotonic_seconds()) {}

Recording::~Recording() {
  if (!pending_.empty()) (void)event("o", pending_);  // an incomplete sequence at the very end
  std::fclose(file_);
}

Status Recording::event(std::string_view code, std::string_view text) {
  const std::string data = nlohmann::json(std::string(text))
                               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  char head[64];
  const int n =
      std::snprintf(head, sizeof head, "[%.6f, \"%.*s\", ", monotonic_seconds() - started_,
                    static_cast<int>(code.size()), code.data());
  std::string line(head, static_cast<std::size_t>(n));
  line += data;
  line += "]\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    const int err = errno;
    std::clearerr(file_);
    return Error::from_errno("write recording " + name_, err);
  }
  return {};
}

Status Recording::output(std::string_view bytes) {
  pending_.append(bytes);
  const std::size_t complete = proto::utf8_complete_prefix(pending_);
  if (complete == 0) return {};
  const std::string text = pending_.substr(0, complete);
  pending_.erase(0, complete);
  return event("o", text);
}

Status Recording::resize(std::uint16_t cols, std::uint16_t rows) {
  return event("r", std::to_string(cols) + "x" + std::to_string(rows));
}

Recordings::Recordings(std::string dir, std::size_t keep) : dir_(std::move(dir)), keep_(keep) {}

Status Recordings::check(const std::string& agent_id) const {
  if (!available()) {
    return Error(Errc::kUnavailable,
                 "recording is not configured on this server (--recordings-dir)");
  }
  std::error_code ec;
  const fs::path agent_dir = fs::path(dir_) / agent_id;
  fs::create_directories(agent_dir, ec);
  if (ec)
    return Error(Errc::kUnavailable, "cannot create " + agent_dir.string() + ": " + ec.message());
  if (::access(agent_dir.c_str(), W_OK) != 0) {
    return Error(Errc::kUnavailable,
                 agent_dir.string() + " is not writable: " + std::strerror(errno));
  }

  struct statvfs vfs {};

  if (::statvfs(agent_dir.c_str(), &vfs) == 0 &&
      static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize < kMinFreeBytes) {
    return Error(Errc::kUnavailable, "the disk of " + dir_ + " is full");
  }
  return {};
}

Result<std::unique_ptr<Recording>> Recordings::start(const std::string& agent_id,
                                                     const std::string& session_id,
                                                     std::uint16_t cols, std::uint16_t rows) {
  if (auto st = check(agent_id); !st) return st.error();
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  const std::string name = session_id + "-" + stamp + "-" + random_hex(4) + ".cast";
  const fs::path agent_dir = fs::path(dir_) / agent_id;
  const fs::path path = agent_dir / name;
  std::FILE* f = std::fopen(path.c_str(), "wxe");  // x: never an existing file; e: O_CLOEXEC
  if (f == nullptr) return Error::from_errno("create recording " + path.string(), errno);
  ::fchmod(::fileno(f), 0600);  // terminal output: the owner's eyes only
  std::unique_ptr<Recording> r(new Recording(f, name));
  const nlohmann::json header = {{"version", 2},
                                 {"width", cols},
                                 {"height", rows},
                                 {"timestamp", static_cast<std::int64_t>(now)},
                                 {"env", {{"TERM", "xterm-256color"}}},
                                 {"title", session_id}};
  const std::string line = header.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f) != line.size() || std::fflush(f) != 0) {
    const int err = errno;
    r.reset();
    fs::remove(path);
    return Error::from_errno("write recording " + path.string(), err);
  }
  prune(agent_dir.string());
  return r;
}

std::vector<RecordingInfo> Recordings::list(const std::string& agent_id) const {
  std::vector<RecordingInfo> out;
  if (!available()) return out;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(dir_) / agent_id, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::smatch m;
    if (!std::regex_match(name, m, name_pattern())) continue;
    RecordingInfo info;
    info.name = name;
    info.session_id = m[1].str();
    info.started_ms = parse_utc_ms(m[2].str());
    std::error_code size_ec;
    info.bytes = it->file_size(size_ec);
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const RecordingInfo& a, const RecordingInfo& b) {
    return a.started_ms != b.started_ms ? a.started_ms > b.started_ms : a.name > b.name;
  });
  return out;
}

Result<std::string> Recordings::path_of(const std::string& agent_id,
                                        const std::string& name) const {
  if (!std::regex_match(name, name_pattern())) {
    return Error(Errc::kInvalidArgument, "not a recording name");
  }
  const fs::path path = fs::path(dir_) / agent_id / name;
  std::error_code ec;
  if (!available() || !fs::is_regular_file(path, ec)) {
    return Error(Errc::kNotFound, "recording not found");
  }
  return path.string();
}

void Recordings::remove_all(const std::string& agent_id) const {
  if (!available() || agent_id.empty()) return;
  std::error_code ec;
  fs::remove_all(fs::path(dir_) / agent_id, ec);
}

void Recordings::prune(const std::string& agent_dir) const {
  const std::string agent_id = fs::path(agent_dir).filename().string();
  auto all = list(agent_id);
  for (std::size_t i = keep_; i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(fs::path(agent_dir) / all[i].name, ec);
    if (!ec) spdlog::info("recording removed (retention) agent={} name={}", agent_id, all[i].name);
  }
}

}  // namespace rx::server
