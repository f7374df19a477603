// SPDX-License-Identifier: MIT
// asciicast v2: a JSON header line, then one JSON array per event,
// [seconds since the start, "o" | "r", text]; kept as files, or as database rows in chunks.
#include "rexec/server/recordings.h"

#include "rexec/common/check.h"
#include "rexec/common/unique_fd.h"
#include "rexec/proto/utf8.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
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
#include <set>

namespace rx::server {

namespace {

namespace fs = std::filesystem;

// A recording is refused below this much free space (fail-closed mode says why at once, rather
// than at the first failed write).
constexpr std::uint64_t kMinFreeBytes = 16U << 20U;

// bytes a download reads at a time: the stream asks for more as the client's socket drains.
constexpr std::size_t kReadBytes = 256U * 1024U;

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

Recording::Recording(std::unique_ptr<RecordingSink> sink, std::string name)
    : sink_(std::move(sink)), name_(std::move(name)), started_(monotonic_seconds()) {}

Recording::~Recording() {
  Status st;
  if (!pending_.empty()) st = event("o", pending_);  // an incomplete sequence at the very end
  if (st) st = sink_->flush();
  if (!st) spdlog::warn("recording incomplete name={} error={}", name_, st.error().message);
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
  return sink_->write(line);
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

// Where recordings are kept. start(), list() and open() of Recordings are built on it.
class Recordings::Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
  Backend(Backend&&) = delete;
  Backend& operator=(Backend&&) = delete;

  [[nodiscard]] virtual bool available() const = 0;
  [[nodiscard]] virtual std::string where() const = 0;
  [[nodiscard]] virtual Status check(const std::string& agent_id) const = 0;
  // A new, empty recording.
  [[nodiscard]] virtual Result<std::unique_ptr<RecordingSink>> create(
      const std::string& agent_id, const RecordingInfo& info) = 0;
  // Removes a recording that could not be started.
  virtual void discard(const std::string& agent_id, const std::string& name) = 0;
  [[nodiscard]] virtual std::vector<RecordingInfo> list(const std::string& agent_id) const = 0;
  // `name` is a valid recording name.
  [[nodiscard]] virtual Result<std::unique_ptr<RecordingReader>> open(
      const std::string& agent_id, const std::string& name) const = 0;
  virtual void prune(const std::string& agent_id, std::size_t keep) = 0;
  virtual void remove_all(const std::string& agent_id) = 0;
};

namespace {

// Files: <dir>/<agent id>/<name>, written through.
class FileSink final : public RecordingSink {
 public:
  FileSink(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}

  ~FileSink() override { std::fclose(file_); }

  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;
  FileSink(FileSink&&) = delete;
  FileSink& operator=(FileSink&&) = delete;

  Status write(std::string_view lines) override {
    if (std::fwrite(lines.data(), 1, lines.size(), file_) != lines.size() ||
        std::fflush(file_) != 0) {
      const int err = errno;
      std::clearerr(file_);
      return Error::from_errno("write recording " + path_, err);
    }
    return {};
  }

  Status flush() override { return {}; }

 private:
  std::FILE* file_;
  std::string path_;
};

class FileReader final : public RecordingReader {
 public:
  FileReader(UniqueFd fd, std::uint64_t size) : fd_(std::move(fd)), size_(size) {}

  [[nodiscard]] std::uint64_t size() const override { return size_; }

  Result<std::string> next() override {
    const std::uint64_t left = size_ - done_;
    std::string out(static_cast<std::size_t>(std::min<std::uint64_t>(left, kReadBytes)), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
      const ssize_t n = ::read(fd_.get(), out.data() + got, out.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno("read recording", errno);
      if (n == 0) return Error(Errc::kSystem, "the recording shrank while being read");
      got += static_cast<std::size_t>(n);
    }
    done_ += got;
    return out;
  }

 private:
  UniqueFd fd_;
  std::uint64_t size_;
  std::uint64_t done_ = 0;
};

class FileBackend final : public Recordings::Backend {
 public:
  explicit FileBackend(std::string dir) : dir_(std::move(dir)) {}

  [[nodiscard]] bool available() const override { return !dir_.empty(); }

  [[nodiscard]] std::string where() const override { return dir_; }

  [[nodiscard]] Status check(const std::string& agent_id) const override {
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

  Result<std::unique_ptr<RecordingSink>> create(const std::string& agent_id,
                                                const RecordingInfo& info) override {
    const fs::path path = fs::path(dir_) / agent_id / info.name;
    std::FILE* f = std::fopen(path.c_str(), "wxe");  // x: never an existing file; e: O_CLOEXEC
    if (f == nullptr) return Error::from_errno("create recording " + path.string(), errno);
    ::fchmod(::fileno(f), 0600);  // terminal output: the owner's eyes only
    return std::unique_ptr<RecordingSink>(std::make_unique<FileSink>(f, path.string()));
  }

  void discard(const std::string& agent_id, const std::string& name) override {
    std::error_code ec;
    fs::remove(fs::path(dir_) / agent_id / name, ec);
  }

  [[nodiscard]] std::vector<RecordingInfo> list(const std::string& agent_id) const override {
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

  [[nodiscard]] Result<std::unique_ptr<RecordingReader>> open(
      const std::string& agent_id, const std::string& name) const override {
    if (!available()) return Error(Errc::kNotFound, "recording not found");
    const fs::path path = fs::path(dir_) / agent_id / name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
      if (errno == ENOENT) return Error(Errc::kNotFound, "recording not found");
      return Error::from_errno("open recording", errno);
    }

    struct stat st {};

    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Error(Errc::kNotFound, "recording not found");
    }
    return std::unique_ptr<RecordingReader>(
        std::make_unique<FileReader>(std::move(fd), static_cast<std::uint64_t>(st.st_size)));
  }

  void prune(const std::string& agent_id, std::size_t keep) override {
    auto all = list(agent_id);
    for (std::size_t i = keep; i < all.size(); ++i) {
      std::error_code ec;
      fs::remove(fs::path(dir_) / agent_id / all[i].name, ec);
      if (!ec)
        spdlog::info("recording removed (retention) agent={} name={}", agent_id, all[i].name);
    }
  }

  void remove_all(const std::string& agent_id) override {
    if (!available() || agent_id.empty()) return;
    std::error_code ec;
    fs::remove_all(fs::path(dir_) / agent_id, ec);
  }

 private:
  std::string dir_;
};

class DbBackend;

// Database rows: output is gathered and written as chunks of Recordings::kChunkBytes, or what
// there is after kFlushDelay (DbBackend's timer), so a busy terminal costs a few INSERTs a
// second, not one per output frame.
class DbSink final : public RecordingSink {
 public:
  DbSink(DbBackend& backend, std::int64_t id);
  ~DbSink() override;
  DbSink(const DbSink&) = delete;
  DbSink& operator=(const DbSink&) = delete;
  DbSink(DbSink&&) = delete;
  DbSink& operator=(DbSink&&) = delete;

  Status write(std::string_view lines) override;
  Status flush() override;

  [[nodiscard]] bool has_pending() const { return !buf_.empty(); }

 private:
  DbBackend& backend_;
  std::int64_t id_;
  std::int64_t next_seq_ = 0;
  std::string buf_;
  std::optional<Error> failed_;  // a write failed: the recording is over, and says so
  bool removed_ = false;         // retention removed it: what follows is dropped
};

class DbReader final : public RecordingReader {
 public:
  DbReader(RecordingRows& rows, std::int64_t id, std::uint64_t size)
      : rows_(rows), id_(id), size_(size) {}

  [[nodiscard]] std::uint64_t size() const override { return size_; }

  Result<std::string> next() override {
    if (done_ >= size_) return std::string();
    auto chunks = rows_.recording_chunks(id_, next_seq_, kReadBytes / Recordings::kChunkBytes);
    if (!chunks) return std::move(chunks).error();
    if (chunks->empty()) return Error(Errc::kNotFound, "the recording was removed while read");
    std::string out;
    for (const std::string& c : *chunks) out += c;
    next_seq_ += static_cast<std::int64_t>(chunks->size());
    done_ += out.size();
    return out;
  }

 private:
  RecordingRows& rows_;
  std::int64_t id_;
  std::uint64_t size_;
  std::uint64_t done_ = 0;
  std::int64_t next_seq_ = 0;
};

class DbBackend final : public Recordings::Backend {
 public:
  DbBackend(Store& store, uv_loop_t* loop)
      : store_(store), rows_(*store.recording_rows()), timer_(loop) {}

  [[nodiscard]] bool available() const override { return true; }

  [[nodiscard]] std::string where() const override { return "the database"; }

  [[nodiscard]] Status check(const std::string& /*agent_id*/) const override {
    if (auto st = store_.ping(); !st) {
      return Error(Errc::kUnavailable, "the database does not answer: " + st.error().message);
    }
    return {};
  }

  Result<std::unique_ptr<RecordingSink>> create(const std::string& agent_id,
                                                const RecordingInfo& info) override {
    RecordingRow row;
    row.name = info.name;
    row.session_id = info.session_id;
    row.started_at = info.started_ms;
    auto id = rows_.add_recording(agent_id, row);
    if (!id) return Error(id.error().code, "create recording: " + id.error().message);
    return std::unique_ptr<RecordingSink>(std::make_unique<DbSink>(*this, *id));
  }

  void discard(const std::string& agent_id, const std::string& name) override {
    (void)rows_.delete_recording(agent_id, name);
  }

  [[nodiscard]] std::vector<RecordingInfo> list(const std::string& agent_id) const override {
    std::vector<RecordingInfo> out;
    auto rows = rows_.recordings_of(agent_id);
    if (!rows) return out;  // counted and logged by the store
    for (RecordingRow& r : *rows) {
      out.push_back({std::move(r.name), std::move(r.session_id), r.started_at, r.bytes});
    }
    return out;
  }

  [[nodiscard]] Result<std::unique_ptr<RecordingReader>> open(
      const std::string& agent_id, const std::string& name) const override {
    auto row = rows_.recording_named(agent_id, name);
    if (!row) return std::move(row).error();
    if (!*row) return Error(Errc::kNotFound, "recording not found");
    return std::unique_ptr<RecordingReader>(
        std::make_unique<DbReader>(rows_, (*row)->id, (*row)->bytes));
  }

  void prune(const std::string& agent_id, std::size_t keep) override {
    auto removed = rows_.prune_recordings(agent_id, keep);
    if (!removed) return;
    for (const std::string& name : *removed) {
      spdlog::info("recording removed (retention) agent={} name={}", agent_id, name);
    }
  }

  void remove_all(const std::string& agent_id) override { (void)rows_.delete_recordings(agent_id); }

  RecordingRows& rows() { return rows_; }

  void opened(DbSink* sink) { open_.insert(sink); }

  void closed(DbSink* sink) {
    open_.erase(sink);
    if (open_.empty()) timer_.stop();
  }

  // Output is held back: write it within kFlushDelay.
  void arm() {
    if (timer_.is_active()) return;
    timer_.start(Recordings::kFlushDelay, [this] {
      // A failure stays with its sink, which reports it at its next write (or when closed).
      for (DbSink* s : open_) {
        if (s->has_pending()) (void)s->flush();
      }
    });
  }

 private:
  Store& store_;
  RecordingRows& rows_;
  uvx::Timer timer_;
  std::set<DbSink*> open_;
};

DbSink::DbSink(DbBackend& backend, std::int64_t id) : backend_(backend), id_(id) {
  backend_.opened(this);
}

DbSink::~DbSink() { backend_.closed(this); }

Status DbSink::write(std::string_view lines) {
  if (failed_) return *failed_;
  if (removed_) return {};
  buf_.append(lines);
  if (buf_.size() >= Recordings::kChunkBytes) return flush();
  backend_.arm();
  return {};
}

Status DbSink::flush() {
  if (failed_) return *failed_;
  if (buf_.empty()) return {};
  std::vector<std::string> chunks;
  for (std::size_t at = 0; at < buf_.size(); at += Recordings::kChunkBytes) {
    chunks.push_back(buf_.substr(at, Recordings::kChunkBytes));
  }
  buf_.clear();
  if (auto st = backend_.rows().append_recording(id_, next_seq_, chunks); !st) {
    if (st.error().code == Errc::kExists || st.error().code == Errc::kNotFound) {
      // Retention removed it while still open (a file removed so is written on, unseen): the
      // rest goes nowhere, as the policy wants.
      if (!removed_) spdlog::info("recording removed while open id={}", id_);
      removed_ = true;
      return {};
    }
    failed_ = Error(st.error().code, "write recording: " + st.error().message);
    return *failed_;
  }
  next_seq_ += static_cast<std::int64_t>(chunks.size());
  return {};
}

}  // namespace

Recordings::Recordings(std::string dir, std::size_t keep)
    : backend_(std::make_unique<FileBackend>(std::move(dir))), keep_(keep) {}

Recordings::Recordings(Store& store, uv_loop_t* loop, std::size_t keep)
    : backend_(std::make_unique<DbBackend>(store, loop)), keep_(keep) {
  REXEC_CHECK(store.recording_rows() != nullptr);
}

Recordings::~Recordings() = default;

bool Recordings::available() const { return backend_->available(); }

std::string Recordings::where() const { return backend_->where(); }

Status Recordings::check(const std::string& agent_id) const { return backend_->check(agent_id); }

Result<std::unique_ptr<Recording>> Recordings::start(const std::string& agent_id,
                                                     const std::string& session_id,
                                                     std::uint16_t cols, std::uint16_t rows) {
  if (auto st = check(agent_id); !st) return st.error();
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  RecordingInfo info;
  info.name = session_id + "-" + stamp + "-" + random_hex(4) + ".cast";
  info.session_id = session_id;
  info.started_ms = static_cast<std::int64_t>(now) * 1000;
  auto sink = backend_->create(agent_id, info);
  if (!sink) return std::move(sink).error();
  std::unique_ptr<Recording> r(new Recording(std::move(*sink), info.name));
  const nlohmann::json header = {{"version", 2},
                                 {"width", cols},
                                 {"height", rows},
                                 {"timestamp", static_cast<std::int64_t>(now)},
                                 {"env", {{"TERM", "xterm-256color"}}},
                                 {"title", session_id}};
  // The header is written at once: the recording is listed from its start.
  Status st = r->sink_->write(header.dump() + "\n");
  if (st) st = r->sink_->flush();
  if (!st) {
    r.reset();
    backend_->discard(agent_id, info.name);
    return std::move(st).error();
  }
  backend_->prune(agent_id, keep_);
  return r;
}

std::vector<RecordingInfo> Recordings::list(const std::string& agent_id) const {
  return backend_->list(agent_id);
}

Result<std::unique_ptr<RecordingReader>> Recordings::open(const std::string& agent_id,
                                                          const std::string& name) const {
  if (!std::regex_match(name, name_pattern())) {
    return Error(Errc::kInvalidArgument, "not a recording name");
  }
  return backend_->open(agent_id, name);
}

void Recordings::remove_all(const std::string& agent_id) const { backend_->remove_all(agent_id); }

}  // namespace rx::server
