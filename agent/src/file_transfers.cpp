// SPDX-License-Identifier: MIT
// File transfers on the agent. Each transfer is a small state machine on the loop thread; its
// file system calls (open, pread, write, fsync, link, rename, readdir) run on libuv's thread
// pool, one at a time, and touch only the transfer's `io` fields while they run.
#include "file_transfers.h"

#include "rexec/net/sha256.h"
#include "rexec/proto/file_window.h"

#include <spdlog/spdlog.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

namespace rx::agent {

namespace {

constexpr std::size_t kChunk = 64U * 1024U;

struct Failure {
  std::string text;
  std::uint16_t status = 500;
};

// The sentence and HTTP status for an errno from a file operation on `path`.
Failure failure(const std::string& path, int err) {
  auto f = [&](const char* why, std::uint16_t status) {
    return Failure{path + ": " + why, status};
  };
  switch (err) {
    case ENOENT:
      return f("no such file or directory", 404);
    case EACCES:
    case EPERM:
      return f("permission denied", 403);
    case EROFS:
      return f("read-only file system", 403);
    case EISDIR:
      return f("is a directory", 400);
    case ENOTDIR:
      return f("not a directory", 400);
    case ENAMETOOLONG:
      return f("file name too long", 400);
    case ELOOP:
      return f("too many levels of symbolic links", 400);
    case ENOSPC:
      return f("no space left on device", 507);
    case EDQUOT:
      return f("disk quota exceeded", 507);
    case EFBIG:
      return f("file too large for this file system or the agent's file size limit", 507);
    default:
      return f(std::strerror(err), 500);  // NOLINT(concurrency-mt-unsafe): loop thread
  }
}

bool is_absolute_path(const std::string& p) {
  return !p.empty() && p.front() == '/' && p.find('\0') == std::string::npos;
}

std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

int fsync_dir(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  const int rc = ::fsync(dfd) == 0 ? 0 : errno;
  ::close(dfd);
  return rc == EINVAL ? 0 : rc;  // some file systems cannot sync a directory; the data is safe
}

}  // namespace

struct FileTransfers::Transfer {
  enum class Kind { kGet, kPut, kList };
  enum class Phase { kOpening, kStreaming, kCommitting };

  Kind kind = Kind::kGet;
  Phase phase = Phase::kOpening;
  std::string id;
  std::string path;
  std::uint32_t mode = 0644;
  std::uint64_t size = 0;              // announced (file_info for a get, file_put for a put)
  std::uint64_t done = 0;              // get: bytes read and sent; put: bytes written
  std::uint64_t acked = 0;             // get: bytes the server consumed
  std::uint64_t seq = 0;               // get: next to send; put: next expected
  std::uint64_t received = 0;          // put: bytes received
  std::deque<std::string> pending;     // put: received, not yet written
  std::optional<std::string> end_sha;  // put: the server's file_end
  net::Sha256 sha;
  proto::FileWindow window;  // get: what may be in flight to the server
  bool busy = false;         // a call is on the pool
  bool abandoned = false;    // ended while a call was on the pool: it cleans up when it returns

  // Owned by the pool while busy, by the loop otherwise.
  struct Io {
    int fd = -1;
    bool unnamed = false;   // O_TMPFILE: the data has no name until it is committed
    std::string temp_path;  // the named temporary file otherwise
    int err = 0;
    std::string buffer;  // get: the chunk read; put: the chunk to write
    std::uint64_t offset = 0;
    std::uint64_t size = 0;  // get: the file's size at open
    std::uint32_t mode = 0;
    std::uint64_t mtime = 0;
    std::uint32_t final_mode = 0;  // put: applied at commit
    bool mode_given = false;       // put: else an existing target's mode is kept
    proto::FileListResult listing;
  } io;

  // Closes the file and removes an uncommitted upload. Pool thread, or loop when not busy.
  void discard() {
    if (io.fd >= 0) ::close(io.fd);
    io.fd = -1;
    if (!io.temp_path.empty()) ::unlink(io.temp_path.c_str());
    io.temp_path.clear();
  }
};

namespace {

using Transfer = FileTransfers::Transfer;

// One blocking call on the pool. The transfer lives as long as the call.
struct Work {
  uv_work_t req{};
  std::shared_ptr<Transfer> t;
  std::weak_ptr<bool> alive;
  std::function<void(Transfer&)> run;       // pool thread
  std::function<void(Transfer&)> complete;  // loop thread, only while the owner is alive
};

void run_work(uv_work_t* req) {
  auto* w = static_cast<Work*>(req->data);
  w->run(*w->t);
}

void after_work(uv_work_t* req, int status) {
  std::unique_ptr<Work> w(static_cast<Work*>(req->data));
  Transfer& t = *w->t;
  t.busy = false;
  const auto owner = w->alive.lock();
  if (status != 0 || !owner || !*owner || t.abandoned) {
    t.discard();
    return;
  }
  w->complete(t);
}

void queue(uv_loop_t* loop, std::shared_ptr<Transfer> t, const std::shared_ptr<bool>& alive,
           std::function<void(Transfer&)> run, std::function<void(Transfer&)> complete) {
  t->busy = true;
  auto w =
      std::make_unique<Work>(Work{{}, std::move(t), alive, std::move(run), std::move(complete)});
  w->req.data = w.get();
  if (uv_queue_work(loop, &w->req, run_work, after_work) == 0) {
    (void)w.release();  // after_work owns it
    return;
  }
  w->t->busy = false;
  w->t->io.err = EIO;
  w->complete(*w->t);
}

// ---- pool-thread calls ----

void open_for_get(Transfer& t) {
  auto& io = t.io;
  io.fd = ::open(t.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (io.fd < 0) {
    io.err = errno;
    return;
  }

  struct stat st {};

  if (::fstat(io.fd, &st) != 0) {
    io.err = errno;
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    io.err = EISDIR;
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    io.err = EINVAL;  // a FIFO, device or socket: reported as "not a regular file"
    return;
  }
  ::fcntl(io.fd, F_SETFL, 0);
  ::posix_fadvise(io.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  io.size = static_cast<std::uint64_t>(st.st_size);
  io.mode = st.st_mode & 07777U;
  io.mtime = st.st_mtime > 0 ? static_cast<std::uint64_t>(st.st_mtime) : 0;
}

void read_chunk(Transfer& t) {
  auto& io = t.io;
  io.buffer.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, t.size - io.offset)));
  ssize_t n = 0;
  do {
    n = ::pread(io.fd, io.buffer.data(), io.buffer.size(), static_cast<off_t>(io.offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    io.err = errno;
    io.buffer.clear();
    return;
  }
  io.buffer.resize(static_cast<std::size_t>(n));
}

void open_for_put(Transfer& t) {
  auto& io = t.io;

  struct stat st {};

  if (::stat(t.path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      io.err = EISDIR;
      return;
    }
    // Replacing a file keeps its permissions unless the upload names some (as cp does).
    if (!io.mode_given) io.final_mode = st.st_mode & 07777U;
  }
  const std::string dir = dir_of(t.path);
  // O_TMPFILE: the upload has no name until it is complete and verified, so a crash or a kill
  // at any moment leaves nothing behind. Where the file system or /proc cannot do that, a
  // hidden temporary name next to the target, removed on every failure we live through.
  if (::access("/proc/self/fd", X_OK) == 0) {
    io.fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (io.fd >= 0) {
      io.unnamed = true;
    } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
      io.err = errno;
      return;
    }
  }
  if (io.fd < 0) {
    io.temp_path = dir + (dir == "/" ? "" : "/") + "." + base_of(t.path) + ".rexec-" + t.id;
    io.fd = ::open(io.temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (io.fd < 0) {
      io.err = errno;
      io.temp_path.clear();
      return;
    }
  }
  // Reserve the space now, so a full disk is reported before any data travels. Not every file
  // system can (EOPNOTSUPP): then a full disk shows at the write that does not fit.
  if (t.size > 0 && ::fallocate(io.fd, 0, 0, static_cast<off_t>(t.size)) != 0 &&
      errno != EOPNOTSUPP && errno != ENOSYS) {
    io.err = errno;
  }
}

void write_chunk(Transfer& t) {
  auto& io = t.io;
  std::string_view rest = io.buffer;
  while (!rest.empty()) {
    const ssize_t n = ::pwrite(io.fd, rest.data(), rest.size(), static_cast<off_t>(io.offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      io.err = errno;
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
    io.offset += static_cast<std::uint64_t>(n);
  }
}

void commit(Transfer& t) {
  auto& io = t.io;
  const std::string dir = dir_of(t.path);
  if (::fchmod(io.fd, io.final_mode) != 0 || ::fsync(io.fd) != 0) {
    io.err = errno;
    return;
  }
  if (io.unnamed) {
    // linkat cannot replace a file: link under a temporary name, then rename over the target.
    io.temp_path = dir + (dir == "/" ? "" : "/") + "." + base_of(t.path) + ".rexec-" + t.id;
    const std::string self = "/proc/self/fd/" + std::to_string(io.fd);
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, io.temp_path.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      io.err = errno;
      io.temp_path.clear();
      return;
    }
  }
  if (::rename(io.temp_path.c_str(), t.path.c_str()) != 0) {
    io.err = errno;
    return;  // discard() removes the temporary name
  }
  io.temp_path.clear();
  ::close(io.fd);
  io.fd = -1;
  io.err = fsync_dir(dir);
}

void read_dir(Transfer& t) {
  auto& io = t.io;
  DIR* d = ::opendir(t.path.c_str());
  if (d == nullptr) {
    io.err = errno;
    return;
  }
  std::vector<proto::FileEntry> entries;
  bool truncated = false;
  while (const dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe): one DIR per thread
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (entries.size() == proto::kMaxListEntries) {
      truncated = true;
      break;
    }

    struct stat st {};

    proto::FileEntry entry;
    entry.name = name;
    if (::fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      entry.type = S_ISREG(st.st_mode)   ? "file"
                   : S_ISDIR(st.st_mode) ? "dir"
                   : S_ISLNK(st.st_mode) ? "symlink"
                                         : "other";
      entry.size = static_cast<std::uint64_t>(st.st_size);
      entry.mode = st.st_mode & 07777U;
      entry.mtime = st.st_mtime > 0 ? static_cast<std::uint64_t>(st.st_mtime) : 0;
    } else {
      entry.type = "other";  // vanished or unreadable between readdir and stat
    }
    entries.push_back(std::move(entry));
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end(),
            [](const proto::FileEntry& a, const proto::FileEntry& b) { return a.name < b.name; });
  io.listing = {t.id, t.path, std::move(entries), truncated};
}

}  // namespace

FileTransfers::FileTransfers(uv_loop_t* loop, FileLink link)
    : loop_(loop), link_(std::move(link)) {}

FileTransfers::~FileTransfers() {
  *alive_ = false;
  cancel_all();
}

void FileTransfers::get(const proto::FileGet& m) {
  if (transfers_.count(m.transfer_id) != 0) return;  // a duplicate id: keep the first
  auto t = std::make_shared<Transfer>();
  t->kind = Transfer::Kind::kGet;
  t->id = m.transfer_id;
  t->path = m.path;
  transfers_[t->id] = t;
  if (!is_absolute_path(t->path)) return fail(*t, "path must be absolute", 400);
  spdlog::info("file download started tid={}", t->id);
  queue(loop_, t, alive_, open_for_get, [this](Transfer& x) { done(x); });
}

void FileTransfers::put(const proto::FilePut& m) {
  if (transfers_.count(m.transfer_id) != 0) return;
  auto t = std::make_shared<Transfer>();
  t->kind = Transfer::Kind::kPut;
  t->id = m.transfer_id;
  t->path = m.path;
  t->size = m.size;
  t->io.final_mode = m.mode.value_or(0644);
  t->io.mode_given = m.mode.has_value();
  transfers_[t->id] = t;
  if (!is_absolute_path(t->path)) return fail(*t, "path must be absolute", 400);
  if (t->path.back() == '/') return fail(*t, t->path + ": is a directory", 400);
  spdlog::info("file upload started tid={} size={}", t->id, t->size);
  queue(loop_, t, alive_, open_for_put, [this](Transfer& x) { done(x); });
}

void FileTransfers::list(const proto::FileList& m) {
  if (transfers_.count(m.transfer_id) != 0) return;
  auto t = std::make_shared<Transfer>();
  t->kind = Transfer::Kind::kList;
  t->id = m.transfer_id;
  t->path = m.path;
  transfers_[t->id] = t;
  if (!is_absolute_path(t->path)) return fail(*t, "path must be absolute", 400);
  queue(loop_, t, alive_, read_dir, [this](Transfer& x) { done(x); });
}

void FileTransfers::data(std::string_view id, std::uint64_t seq, std::string_view bytes) {
  const auto it = transfers_.find(std::string(id));
  if (it == transfers_.end() || it->second->kind != Transfer::Kind::kPut) return;
  Transfer& t = *it->second;
  if (seq != t.seq) return fail(t, "file chunk out of order", 400);
  if (bytes.size() > t.size - t.received) return fail(t, "more data than the announced size", 400);
  // The server keeps to a window of at most FileWindow::kMax: more is a broken server.
  if (t.received + bytes.size() - t.done > proto::FileWindow::kMax + kChunk) {
    return fail(t, "more unacknowledged data than any window", 400);
  }
  ++t.seq;
  t.received += bytes.size();
  t.sha.update(bytes);
  t.pending.emplace_back(bytes);
  step(t);
}

void FileTransfers::end(const proto::FileEnd& m) {
  const auto it = transfers_.find(m.transfer_id);
  if (it == transfers_.end() || it->second->kind != Transfer::Kind::kPut) return;
  it->second->end_sha = m.sha256;
  step(*it->second);
}

void FileTransfers::ack(const proto::FileAck& m) {
  const auto it = transfers_.find(m.transfer_id);
  if (it == transfers_.end() || it->second->kind != Transfer::Kind::kGet) return;
  Transfer& t = *it->second;
  t.acked = std::max(t.acked, std::min(m.bytes, t.done));
  t.window.on_ack(t.acked, proto::FileWindow::Clock::now());
  step(t);
}

void FileTransfers::cancel(const proto::FileError& m) {
  const auto it = transfers_.find(m.transfer_id);
  if (it == transfers_.end()) return;
  spdlog::info("file transfer cancelled by the server tid={}", m.transfer_id);
  finish(m.transfer_id);
}

void FileTransfers::pump() {
  // step() may finish a transfer, which erases it: walk a copy of the ids.
  std::vector<std::string> ids;
  for (const auto& [id, t] : transfers_) {
    if (t->kind == Transfer::Kind::kGet) ids.push_back(id);
  }
  for (const auto& id : ids) {
    const auto it = transfers_.find(id);
    if (it != transfers_.end()) step(*it->second);
  }
}

void FileTransfers::cancel_all() {
  std::vector<std::string> ids;
  for (const auto& [id, t] : transfers_) ids.push_back(id);
  for (const auto& id : ids) finish(id);
}

void FileTransfers::fail(Transfer& t, const std::string& error, std::uint16_t status) {
  spdlog::info("file transfer failed tid={} status={}", t.id, status);  // the path may be private
  link_.send(proto::FileError{t.id, error, status});
  finish(t.id);
}

void FileTransfers::finish(const std::string& id) {
  const auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  std::shared_ptr<Transfer> t = it->second;
  transfers_.erase(it);
  if (t->busy) {
    t->abandoned = true;  // the call on the pool cleans up when it returns
    return;
  }
  if (t->io.fd < 0 && t->io.temp_path.empty()) return;
  // close() and unlink() can block on a hung mount too.
  queue(
      loop_, t, alive_, [](Transfer& x) { x.discard(); }, [](Transfer&) {});
}

void FileTransfers::step(Transfer& t) {
  if (t.busy || t.phase != Transfer::Phase::kStreaming) return;
  auto self = transfers_.at(t.id);
  if (t.kind == Transfer::Kind::kGet) {
    if (t.done == t.size) return;
    if (t.done - t.acked >= t.window.limit() || !link_.can_send()) return;
    t.io.offset = t.done;
    queue(loop_, self, alive_, read_chunk, [this](Transfer& x) { done(x); });
    return;
  }
  // A put: write what arrived, in order; once everything is written and the server's checksum
  // is in, verify and commit.
  if (!t.pending.empty()) {
    t.io.buffer = std::move(t.pending.front());
    t.pending.pop_front();
    t.io.offset = t.done;
    queue(loop_, self, alive_, write_chunk, [this](Transfer& x) { done(x); });
    return;
  }
  if (!t.end_sha) return;
  if (t.received != t.size) return fail(t, "the upload ended early", 400);
  std::string mine = t.sha.hex_digest();
  std::string theirs = *t.end_sha;
  std::transform(theirs.begin(), theirs.end(), theirs.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (mine != theirs) return fail(t, "checksum mismatch: the upload was corrupted", 400);
  t.end_sha = mine;
  t.phase = Transfer::Phase::kCommitting;
  queue(loop_, self, alive_, commit, [this](Transfer& x) { done(x); });
}

void FileTransfers::done(Transfer& t) {
  auto& io = t.io;
  if (io.err != 0) {
    const int err = std::exchange(io.err, 0);
    if (t.kind == Transfer::Kind::kGet && err == EINVAL && t.phase == Transfer::Phase::kOpening) {
      return fail(t, t.path + ": not a regular file", 400);
    }
    const Failure f = failure(t.path, err);
    return fail(t, f.text, f.status);
  }
  switch (t.kind) {
    case Transfer::Kind::kList: {
      spdlog::info("file list sent tid={} entries={}", t.id, io.listing.entries.size());
      link_.send(std::move(io.listing));
      return finish(t.id);
    }
    case Transfer::Kind::kGet: {
      if (t.phase == Transfer::Phase::kOpening) {
        t.size = io.size;
        t.phase = Transfer::Phase::kStreaming;
        link_.send(proto::FileInfo{t.id, io.size, io.mode, io.mtime});
      } else if (io.buffer.empty()) {
        return fail(t, t.path + ": the file shrank while it was read", 409);
      } else {
        t.sha.update(io.buffer);
        link_.send_data(t.id, t.seq++, io.buffer);
        t.done += io.buffer.size();
        t.window.on_sent(t.done, proto::FileWindow::Clock::now());
        io.buffer.clear();
      }
      if (t.done == t.size) {
        spdlog::info("file download finished tid={} bytes={}", t.id, t.done);
        link_.send(proto::FileEnd{t.id, t.sha.hex_digest()});
        return finish(t.id);
      }
      return step(t);
    }
    case Transfer::Kind::kPut: {
      if (t.phase == Transfer::Phase::kOpening) {
        t.phase = Transfer::Phase::kStreaming;
      } else if (t.phase == Transfer::Phase::kCommitting) {
        spdlog::info("file upload finished tid={} bytes={}", t.id, t.done);
        link_.send(proto::FileEnd{t.id, *t.end_sha});
        return finish(t.id);
      } else {
        t.done += io.buffer.size();
        io.buffer.clear();
        link_.send(proto::FileAck{t.id, t.done});
      }
      return step(t);
    }
  }
}

}  // namespace rx::agent
