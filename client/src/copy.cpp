// SPDX-License-Identifier: MIT
// `rexec cp` over the files API: PUT /api/agents/:id/files streamed from the file, GET streamed
// to a temporary file that is renamed into place once complete.
#include "copy.h"

#include "rexec/common/unique_fd.h"
#include "rexec/net/http_client.h"
#include "rexec/net/sha256.h"
#include "rexec/net/url.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "copy_format.h"

namespace rx::client {

namespace {

using Clock = std::chrono::steady_clock;

// A transfer with no byte moving for this long has failed. Generous: after the last byte of an
// upload the agent still has to write out and fsync the file before it answers.
constexpr std::chrono::seconds kIdleTimeout(120);

// Redraws of the progress line are at least this far apart: a fast loopback transfer calls back
// for every 64 KiB, and a terminal cannot show more anyway.
constexpr std::chrono::milliseconds kRedrawEvery(100);

std::string errno_text(int err) {
  std::string text = std::strerror(err);  // NOLINT(concurrency-mt-unsafe): single-threaded CLI
  if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') {
    text[0] = static_cast<char>(text[0] - 'A' + 'a');
  }
  return text;
}

// The progress line on stderr, drawn only when stderr is a terminal: output redirected to a
// file or a pipe gets nothing on success.
class Progress {
 public:
  explicit Progress(std::string name)
      : name_(std::move(name)), enabled_(::isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}

  // An error message that follows starts on a line of its own.
  ~Progress() { end_line(); }

  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  Progress(Progress&&) = delete;
  Progress& operator=(Progress&&) = delete;

  void set_total(std::optional<std::uint64_t> total) { total_ = total; }

  void update(std::uint64_t done) {
    if (!enabled_) return;
    const auto now = Clock::now();
    if (drawn_ && now - last_draw_ < kRedrawEvery) return;
    last_draw_ = now;
    draw(progress_line(name_, done, total_, seconds()));
  }

  void finish(std::uint64_t total) {
    if (!enabled_) return;
    draw(summary_line(name_, total, seconds()));
    end_line();
  }

  void end_line() {
    if (!drawn_) return;
    std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  [[nodiscard]] double seconds() const {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  void draw(const std::string& line) {
    std::fprintf(stderr, "\r%s\x1b[K", line.c_str());  // EL: erase what a longer line left
    std::fflush(stderr);
    drawn_ = true;
  }

  std::string name_;
  bool enabled_;
  bool drawn_ = false;
  Clock::time_point start_;
  Clock::time_point last_draw_;
  std::optional<std::uint64_t> total_;
};

// The path of the temporary file of a download in progress, for the signal handler: Ctrl-C
// must not leave a .<name>.rexec-XXXXXX behind. Written before the handler is installed.
std::array<char, 4096> g_temp_path{};

extern "C" void remove_temp_and_reraise(int sig) {
  ::unlink(g_temp_path.data());  // async-signal-safe
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Owns a temporary file: removes it on destruction and on SIGINT, SIGTERM, SIGHUP, unless
// keep() was called after it was renamed into place.
class TempFile {
 public:
  explicit TempFile(std::string path) : path_(std::move(path)) {
    if (path_.size() < g_temp_path.size()) {
      std::memcpy(g_temp_path.data(), path_.c_str(), path_.size() + 1);
      for (const int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_temp_and_reraise);
    }
  }

  ~TempFile() {
    for (const int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
    if (!kept_) ::unlink(path_.c_str());
    g_temp_path[0] = '\0';
  }

  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  TempFile(TempFile&&) = delete;
  TempFile& operator=(TempFile&&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

  void keep() { kept_ = true; }

 private:
  std::string path_;
  bool kept_ = false;
};

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

Result<net::Url> files_url(const Target& t, const std::string& query) {
  return net::Url::parse(t.server + "/api/agents/" + t.agent_id + "/files?" + query);
}

}  // namespace

Status upload_file(const Target& target, const std::string& local, const std::string& remote_path) {
  const std::string what = "cannot upload " + local + ": ";
  UniqueFd fd(::open(local.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error(Errc::kSystem, what + errno_text(errno), errno);

  struct stat st {};

  if (::fstat(fd.get(), &st) != 0) return Error(Errc::kSystem, what + errno_text(errno), errno);
  if (S_ISDIR(st.st_mode)) return Error(Errc::kInvalidArgument, what + "it is a directory");
  if (!S_ISREG(st.st_mode)) {
    return Error(Errc::kInvalidArgument, what + "it is not a regular file");
  }
  const std::string name = base_name(local);
  const std::string dest = with_name_if_dir(remote_path, name);
  // Permission bits only: set-id bits from this machine have no business on the agent's.
  auto url = files_url(
      target, "path=" + rx::net::url_encode(dest) + "&mode=" + format_mode(st.st_mode & 0777U));
  if (!url) return Error(url.error().code, what + url.error().message);

  net::Sha256 sha;
  const auto size = static_cast<std::uint64_t>(st.st_size);
  Progress progress(name);
  progress.set_total(size);
  std::uint64_t sent = 0;

  net::HttpRequest req;
  req.method = "PUT";
  req.url = *url;
  req.headers = {{"authorization", "Bearer " + target.token}};
  req.content_type = "application/octet-stream";
  req.idle_timeout = kIdleTimeout;
  req.body_length = size;
  req.body_source = [&](std::size_t max) -> Result<std::string> {
    std::string piece(max, '\0');
    std::size_t got = 0;
    while (got < max) {
      const ssize_t n = ::read(fd.get(), piece.data() + got, max - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error(Errc::kSystem, "read: " + errno_text(errno), errno);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got == 0) return Error(Errc::kInvalidArgument, "the file shrank while it was being sent");
    piece.resize(got);
    sha.update(piece);
    sent += got;
    progress.update(sent);
    return piece;
  };
  auto r = net::fetch_blocking(std::move(req), {}, std::chrono::milliseconds(0));
  if (!r) return Error(r.error().code, what + r.error().message);
  if (r->status != 200) {
    return Error(Errc::kUnavailable, what + server_error_text(r->status, r->body));
  }
  const auto answer = nlohmann::json::parse(r->body, nullptr, false);
  if (!answer.is_object() || !answer.contains("sha256") || !answer["sha256"].is_string()) {
    return Error(Errc::kUnavailable, what + "the server's answer has no sha256");
  }
  if (answer["sha256"].get<std::string>() != sha.hex_digest()) {
    return Error(Errc::kUnavailable,
                 what + "the agent wrote different bytes than were sent (SHA-256 mismatch)");
  }
  progress.finish(size);
  return {};
}

Status download_file(const Target& target, const std::string& remote_path,
                     const std::string& local) {
  const std::string what = "cannot download " + remote_path + ": ";
  const std::string name = base_name(remote_path);
  if (name.empty()) return Error(Errc::kInvalidArgument, what + "the path names a directory");
  if (local.empty()) return Error(Errc::kInvalidArgument, what + "no local path");
  std::string dest = local;

  struct stat st {};

  if (::stat(local.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    dest = with_name_if_dir(local.back() == '/' ? local : local + "/", name);
  } else if (!local.empty() && local.back() == '/') {
    return Error(Errc::kNotFound, what + "no directory " + local);
  }
  auto url = files_url(target, "path=" + rx::net::url_encode(remote_path));
  if (!url) return Error(url.error().code, what + url.error().message);

  // Beside the destination, so that the final rename stays within one file system.
  std::string temp_path = dir_name(dest) + "/." + base_name(dest) + ".rexec-XXXXXX";
  UniqueFd fd(::mkostemp(temp_path.data(), O_CLOEXEC));
  if (!fd) {
    return Error(Errc::kSystem,
                 what + "cannot create a file in " + dir_name(dest) + ": " + errno_text(errno),
                 errno);
  }
  TempFile temp(temp_path);
  Progress progress(name);
  int write_errno = 0;
  std::uint64_t received = 0;

  net::HttpRequest req;
  req.url = *url;
  req.headers = {{"authorization", "Bearer " + target.token}};
  req.idle_timeout = kIdleTimeout;
  req.response_headers = {"x-rexec-mode"};
  req.on_headers = [&](const net::HttpResponse& head) {
    progress.set_total(head.content_length);
    return true;
  };
  req.on_body = [&](std::string_view piece) {
    if (!write_all(fd.get(), piece)) {
      write_errno = errno != 0 ? errno : EIO;
      return false;
    }
    received += piece.size();
    progress.update(received);
    return true;
  };
  auto r = net::fetch_blocking(std::move(req), {}, std::chrono::milliseconds(0));
  const auto cannot_write = [&](int err) {
    return Error(Errc::kSystem, what + "cannot write " + dest + ": " + errno_text(err), err);
  };
  if (!r && write_errno != 0) return cannot_write(write_errno);
  if (!r) return Error(r.error().code, what + r.error().message);
  if (r->status != 200) {
    // The agent's sentence starts with the path, which `what` already names.
    std::string text = server_error_text(r->status, r->body);
    if (text.rfind(remote_path + ": ", 0) == 0) text.erase(0, remote_path.size() + 2);
    return Error(Errc::kUnavailable, what + text);
  }
  // HttpClient fails a response shorter than its Content-Length; without one, a cut-short body
  // would look complete.
  if (!r->content_length) {
    return Error(Errc::kUnavailable, what + "the server did not say how long the file is");
  }
  std::optional<mode_t> mode;
  if (auto text = r->header("x-rexec-mode")) mode = parse_mode(*text);
  if (!mode) {
    const mode_t mask = ::umask(0);  // the only way to read the umask
    ::umask(mask);
    mode = 0666U & ~mask;  // what creat() would have made
  }
  if (::fchmod(fd.get(), *mode & 0777U) != 0) return cannot_write(errno);
  if (::fsync(fd.get()) != 0) return cannot_write(errno);
  if (::close(fd.release()) != 0) return cannot_write(errno);
  if (::rename(temp.path().c_str(), dest.c_str()) != 0) return cannot_write(errno);
  temp.keep();
  // The rename itself survives a crash only once the directory is on disk too; best effort.
  if (UniqueFd dir(::open(dir_name(dest).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dir) {
    (void)::fsync(dir.get());
  }
  progress.finish(received);
  return {};
}

}  // namespace rx::client
