// SPDX-License-Identifier: MIT
// FileService: HTTP exchanges joined to the agent's file messages. Flow control on both hops
// (docs/protocol.md "Files"):
//   download  agent --file_data--> server --HTTP body--> client
//             the server acknowledges (file_ack) what the client's socket took, and the agent
//             keeps at most its window unacknowledged, so the server holds at most that much.
//   upload    client --HTTP body--> server --file_data--> agent
//             the agent acknowledges what it wrote; past the window unacknowledged the server
//             stops reading the request body until the agent catches up.
#include "rexec/server/files.h"

#include "rexec/net/sha256.h"
#include "rexec/proto/file_window.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/hub.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>

namespace rx::server {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

enum Kind { kGet, kPut, kList };

constexpr std::size_t kChunk = 64U * 1024U;

HttpResponse json_error(int status, const std::string& error) {
  return HttpResponse::json(
      status, json{{"error", error}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string transfer_id() { return "f-" + random_hex(12); }

// A file name for Content-Disposition: the path's last part, quotes and controls replaced.
std::string download_name(const std::string& path) {
  std::string name = path.substr(path.rfind('/') + 1);
  for (char& c : name) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '_';
  }
  return name.empty() ? "download" : name;
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace

struct FileService::Transfer {
  int kind = kGet;
  std::string id;
  std::string agent_id;
  std::string path;
  std::string user_id;
  HttpStream* stream = nullptr;  // null once the exchange is over
  bool answered = false;         // a response (or its head) was given to the stream
  bool ended = false;            // the service is done with it
  std::uint64_t size = 0;        // get: from file_info; put: Content-Length
  std::uint64_t moved = 0;       // get: bytes received from the agent; put: sent to the agent
  std::uint64_t acked = 0;       // put: bytes the agent wrote
  std::uint64_t written = 0;     // get: bytes the client's socket took
  std::uint64_t seq = 0;
  bool body_done = false;    // put: the whole request body arrived
  bool end_sent = false;     // put: our file_end is out
  std::string held;          // put: body bytes waiting for room on the agent's socket
  proto::FileWindow window;  // put: what may be in flight to the agent
  net::Sha256 sha;
  Clock::time_point started = Clock::now();
  Clock::time_point last_activity = Clock::now();
  bool agent_answered = false;
};

// Runs one exchange for the HttpServer. Holds the transfer, not the service, across its
// destruction: lws may destroy connections after the service is gone.
class FileService::Handler final : public HttpStreamHandler {
 public:
  Handler(FileService* service, std::shared_ptr<Transfer> t)
      : service_(service), t_(std::move(t)) {}

  ~Handler() override { t_->stream = nullptr; }

  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;
  Handler(Handler&&) = delete;
  Handler& operator=(Handler&&) = delete;

  void on_body(std::string_view bytes) override {
    if (!t_->ended) service_->body(*t_, bytes);
  }

  void on_body_end() override {
    if (!t_->ended) service_->body_end(*t_);
  }

  void on_written(std::uint64_t total) override {
    if (!t_->ended) service_->written(*t_, total);
  }

  void on_closed() override {
    t_->stream = nullptr;
    if (!t_->ended) service_->client_gone(*t_);
  }

 private:
  FileService* service_;
  std::shared_ptr<Transfer> t_;
};

FileService::FileService(uv_loop_t* loop, Hub& hub, FileServiceConfig config)
    : loop_(loop), hub_(hub), config_(config), timer_(loop) {
  timer_.start(std::chrono::milliseconds(1000), std::chrono::milliseconds(1000),
               [this] { check_timeouts(); });
}

FileService::~FileService() {
  for (auto& [id, t] : transfers_) t->ended = true;
}

std::shared_ptr<FileService::Transfer> FileService::start(int kind, const std::string& agent_id,
                                                          const std::string& path,
                                                          const std::string& user_id,
                                                          HttpStream& stream) {
  auto t = std::make_shared<Transfer>();
  t->kind = kind;
  t->id = transfer_id();
  t->agent_id = agent_id;
  t->path = path;
  t->user_id = user_id;
  t->stream = &stream;
  transfers_[t->id] = t;
  return t;
}

std::unique_ptr<HttpStreamHandler> FileService::download(const std::string& agent_id,
                                                         const std::string& path,
                                                         const std::string& user_id,
                                                         HttpStream& stream) {
  auto t = start(kGet, agent_id, path, user_id, stream);
  spdlog::info("file download requested agent={} tid={}", agent_id, t->id);
  if (!hub_.send_agent_message(agent_id, proto::FileGet{t->id, path})) {
    fail(*t, 404, "agent not online", false);
  }
  return std::make_unique<Handler>(this, t);
}

std::unique_ptr<HttpStreamHandler> FileService::upload(const std::string& agent_id,
                                                       const std::string& path, std::uint64_t size,
                                                       std::optional<std::uint32_t> mode,
                                                       const std::string& user_id,
                                                       HttpStream& stream) {
  auto t = start(kPut, agent_id, path, user_id, stream);
  t->size = size;
  spdlog::info("file upload requested agent={} tid={} size={}", agent_id, t->id, size);
  if (!hub_.send_agent_message(agent_id, proto::FilePut{t->id, path, size, mode})) {
    fail(*t, 404, "agent not online", false);
  }
  return std::make_unique<Handler>(this, t);
}

std::unique_ptr<HttpStreamHandler> FileService::list(const std::string& agent_id,
                                                     const std::string& path, HttpStream& stream) {
  auto t = start(kList, agent_id, path, "", stream);
  if (!hub_.send_agent_message(agent_id, proto::FileList{t->id, path})) {
    fail(*t, 404, "agent not online", false);
  }
  return std::make_unique<Handler>(this, t);
}

void FileService::on_agent_message(const std::string& agent_id, const proto::AgentMessage& m) {
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, proto::FileInfo> || std::is_same_v<T, proto::FileEnd> ||
                      std::is_same_v<T, proto::FileError> || std::is_same_v<T, proto::FileAck> ||
                      std::is_same_v<T, proto::FileListResult>) {
          const auto it = transfers_.find(msg.transfer_id);
          if (it == transfers_.end() || it->second->agent_id != agent_id) return;
          std::shared_ptr<Transfer> keep = it->second;
          Transfer& t = *keep;
          t.agent_answered = true;
          t.last_activity = Clock::now();
          if constexpr (std::is_same_v<T, proto::FileError>) {
            fail(t, msg.status.value_or(502), msg.error, false);
          } else if constexpr (std::is_same_v<T, proto::FileInfo>) {
            if (t.kind != kGet || t.answered || t.stream == nullptr) return;
            t.size = msg.size;
            HttpResponse head;
            head.status = 200;
            head.content_type = "application/octet-stream";
            std::array<char, 8> mode{};
            std::snprintf(mode.data(), mode.size(), "%04o", msg.mode & 07777U);
            head.headers = {
                {"content-disposition", "attachment; filename=\"" + download_name(t.path) + "\""},
                {"x-rexec-mode", mode.data()},
                {"x-content-type-options", "nosniff"},
                {"cache-control", "no-store"}};
            t.answered = true;
            t.stream->respond_head(std::move(head), msg.size);
          } else if constexpr (std::is_same_v<T, proto::FileAck>) {
            if (t.kind != kPut) return;
            t.acked = std::max(t.acked, std::min(msg.bytes, t.moved));
            t.window.on_ack(t.acked, Clock::now());
            flush(t);
          } else if constexpr (std::is_same_v<T, proto::FileListResult>) {
            if (t.kind != kList || t.stream == nullptr) return;
            json entries = json::array();
            for (const auto& e : msg.entries) {
              entries.push_back({{"name", e.name},
                                 {"type", e.type},
                                 {"size", e.size},
                                 {"mode", e.mode},
                                 {"mtime", e.mtime}});
            }
            json body = {{"path", msg.path}, {"entries", std::move(entries)}};
            if (msg.truncated) body["truncated"] = true;
            t.answered = true;
            t.stream->respond(
                HttpResponse::json(200, body.dump(-1, ' ', false, json::error_handler_t::replace)));
            t.ended = true;
            forget(t.id);
          } else if constexpr (std::is_same_v<T, proto::FileEnd>) {
            const std::string sha = lower(msg.sha256);
            if (t.kind == kGet) {
              // The body completes by itself once the stream has written `size` bytes; all that
              // is left is to check the agent sent what it says it read.
              if (t.moved != t.size || t.sha.hex_digest() != sha) {
                spdlog::warn("file download corrupted agent={} tid={}", agent_id, t.id);
                return fail(t, 502, "the download was corrupted", false);
              }
              spdlog::info("file download finished agent={} tid={} bytes={}", agent_id, t.id,
                           t.moved);
              report(t, 200, "", sha);
            } else if (t.kind == kPut) {
              if (!t.body_done || t.stream == nullptr) return;
              // The agent verified our checksum before it renamed the file; this is its own.
              t.answered = true;
              t.stream->respond(HttpResponse::json(
                  200, json{{"path", t.path}, {"size", t.size}, {"sha256", sha}}.dump()));
              spdlog::info("file upload finished agent={} tid={} bytes={}", agent_id, t.id, t.size);
              report(t, 200, "", sha);
            }
            t.ended = true;
            forget(t.id);
          }
        }
      },
      m);
}

void FileService::on_agent_data(const std::string& agent_id, std::string_view transfer_id,
                                std::uint64_t seq, std::string_view bytes) {
  const auto it = transfers_.find(std::string(transfer_id));
  if (it == transfers_.end() || it->second->agent_id != agent_id) return;
  std::shared_ptr<Transfer> keep = it->second;
  Transfer& t = *keep;
  if (t.kind != kGet || !t.answered) return fail(t, 502, "unexpected file data", true);
  if (seq != t.seq || bytes.size() > t.size - t.moved) {
    return fail(t, 502, "the agent sent file data out of order", true);
  }
  // The agent keeps to a window of at most FileWindow::kMax: more is a broken agent.
  if (t.moved + bytes.size() - t.written > proto::FileWindow::kMax + kChunk) {
    return fail(t, 502, "the agent sent more than its window", true);
  }
  ++t.seq;
  t.moved += bytes.size();
  t.last_activity = Clock::now();
  t.sha.update(bytes);
  downloaded_ += bytes.size();
  if (t.stream != nullptr) t.stream->write(std::string(bytes));
}

void FileService::on_agent_gone(const std::string& agent_id) {
  std::vector<std::shared_ptr<Transfer>> gone;
  for (const auto& [id, t] : transfers_) {
    if (t->agent_id == agent_id) gone.push_back(t);
  }
  for (const auto& t : gone) fail(*t, 502, "agent disconnected", false);
}

void FileService::body(Transfer& t, std::string_view bytes) {
  if (t.kind != kPut) return;
  t.last_activity = Clock::now();
  t.sha.update(bytes);
  t.held.append(bytes);
  flush(t);
}

void FileService::body_end(Transfer& t) {
  if (t.kind != kPut) return;
  t.body_done = true;
  t.last_activity = Clock::now();
  if (t.moved + t.held.size() != t.size) return fail(t, 400, "the upload ended early", true);
  flush(t);
}

// Sends what the upload holds while the agent's socket has room (Hub::kFileRoom) and the
// agent's window allows, then reads the request body again only if both still do.
void FileService::flush(Transfer& t) {
  std::size_t at = 0;
  while (at < t.held.size() && t.moved - t.acked < t.window.limit() &&
         hub_.agent_queued_bytes(t.agent_id) < Hub::kFileRoom) {
    const std::string_view piece = std::string_view(t.held).substr(at, kChunk);
    if (!hub_.send_file_data(t.agent_id, t.id, t.seq++, piece)) {
      return fail(t, 502, "agent disconnected", false);
    }
    t.moved += piece.size();
    t.window.on_sent(t.moved, Clock::now());
    uploaded_ += piece.size();
    at += piece.size();
  }
  t.held.erase(0, at);
  if (t.body_done && t.held.empty() && !t.end_sent) {
    t.end_sent = true;
    hub_.send_agent_message(t.agent_id, proto::FileEnd{t.id, t.sha.hex_digest()});
  }
  if (t.stream != nullptr && !t.body_done) t.stream->set_receiving(t.held.empty());
}

void FileService::on_agent_room(const std::string& agent_id) {
  std::vector<std::shared_ptr<Transfer>> puts;
  for (const auto& [id, t] : transfers_) {
    if (t->agent_id == agent_id && t->kind == kPut && !t->held.empty()) puts.push_back(t);
  }
  for (const auto& t : puts) {
    if (!t->ended) flush(*t);
  }
}

void FileService::written(Transfer& t, std::uint64_t total) {
  if (t.kind != kGet) return;
  t.last_activity = Clock::now();
  t.written = total;
  hub_.send_agent_message(t.agent_id, proto::FileAck{t.id, total});
}

void FileService::client_gone(Transfer& t) {
  spdlog::info("file transfer abandoned by the client agent={} tid={}", t.agent_id, t.id);
  fail(t, 499, "client went away", true);
}

void FileService::fail(Transfer& t, int status, const std::string& error, bool tell_agent) {
  if (t.ended) return;
  t.ended = true;
  ++failed_;
  spdlog::info("file transfer failed agent={} tid={} status={}", t.agent_id, t.id, status);
  report(t, status, error, "");
  if (tell_agent)
    hub_.send_agent_message(t.agent_id, proto::FileError{t.id, "cancelled", std::nullopt});
  if (t.stream != nullptr) {
    if (!t.answered) {
      t.answered = true;
      t.stream->respond(json_error(status, error));
    } else {
      t.stream->abort();
    }
  }
  forget(t.id);
}

void FileService::forget(const std::string& id) { transfers_.erase(id); }

void FileService::report(const Transfer& t, int status, const std::string& error,
                         const std::string& sha256) {
  if (!observer_ || t.kind == kList) return;
  FileOutcome o;
  o.kind = t.kind == kGet ? "download" : "upload";
  o.agent_id = t.agent_id;
  o.user_id = t.user_id;
  o.path = t.path;
  o.bytes = t.moved;
  o.status = status;
  o.error = error;
  o.sha256 = sha256;
  observer_(o);
}

void FileService::check_timeouts() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Transfer>> late;
  for (const auto& [id, t] : transfers_) {
    if ((!t->agent_answered && now - t->started > config_.answer_timeout) ||
        now - t->last_activity > config_.stall_timeout) {
      late.push_back(t);
    }
  }
  for (const auto& t : late) {
    if (!t->agent_answered) {
      fail(*t, 504, "the agent did not answer (an agent without file transfer support?)", true);
    } else {
      fail(*t, 504, "the transfer stalled", true);
    }
  }
}

FileStats FileService::stats() const {
  return {transfers_.size(), uploaded_, downloaded_, failed_};
}

}  // namespace rx::server
