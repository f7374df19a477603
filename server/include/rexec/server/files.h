// SPDX-License-Identifier: MIT
// FileService: the server's half of file transfers (PROTOCOL §8, docs/protocol.md "Files").
// It joins an HTTP exchange (a download, an upload or a listing) to the agent's file messages,
// with a window of acknowledged bytes on each hop, so memory stays bounded whatever the file's
// size and however slow either side is.
#pragma once

#include "rexec/proto/messages.h"
#include "rexec/server/http_server.h"
#include "rexec/uvx/timer.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rx::server {

class Hub;

struct FileServiceConfig {
  std::uint64_t max_upload = 100U << 20U;  // larger uploads are refused 413
  // The agent must answer a request this soon (an agent without file support never does).
  std::chrono::milliseconds answer_timeout{30000};
  // A transfer in which nothing moves this long is abandoned.
  std::chrono::milliseconds stall_timeout{120000};
};

struct FileStats {
  std::size_t active = 0;
  std::uint64_t uploaded_bytes = 0;    // relayed to agents
  std::uint64_t downloaded_bytes = 0;  // relayed to clients
  std::uint64_t failed = 0;
};

// How a download or an upload ended (for the audit trail). Listings are not reported.
struct FileOutcome {
  std::string kind;  // "download" or "upload"
  std::string agent_id;
  std::string user_id;
  std::string path;
  std::uint64_t bytes = 0;  // file bytes that went through the server
  int status = 200;         // the HTTP status of the exchange; 200 when the file arrived whole
  std::string error;        // empty on success
  std::string sha256;       // of the file, on success
};

// Loop thread only. The hub must outlive the service; handlers it returns may outlive it (they
// then do nothing).
class FileService {
 public:
  FileService(uv_loop_t* loop, Hub& hub, FileServiceConfig config);
  ~FileService();
  FileService(const FileService&) = delete;
  FileService& operator=(const FileService&) = delete;
  FileService(FileService&&) = delete;
  FileService& operator=(FileService&&) = delete;

  // The exchanges, after the Api's checks (owner, scope, MFA, agent connected here). Each
  // returns the handler that runs the exchange; errors are answered on `stream`.
  // `user_id` is who asked, for the FileOutcome.
  std::unique_ptr<HttpStreamHandler> download(const std::string& agent_id, const std::string& path,
                                              const std::string& user_id, HttpStream& stream);
  std::unique_ptr<HttpStreamHandler> upload(const std::string& agent_id, const std::string& path,
                                            std::uint64_t size, std::optional<std::uint32_t> mode,
                                            const std::string& user_id, HttpStream& stream);
  std::unique_ptr<HttpStreamHandler> list(const std::string& agent_id, const std::string& path,
                                          HttpStream& stream);

  // From the hub: the agent's file messages and chunks, and its disconnection.
  void on_agent_message(const std::string& agent_id, const proto::AgentMessage& m);
  void on_agent_data(const std::string& agent_id, std::string_view transfer_id, std::uint64_t seq,
                     std::string_view bytes);
  void on_agent_gone(const std::string& agent_id);
  // The agent's socket has room for file data again (Hub::kFileRoom).
  void on_agent_room(const std::string& agent_id);

  // Called once for each download and upload when it ends, in success or failure.
  void set_outcome_observer(std::function<void(const FileOutcome&)> fn) {
    observer_ = std::move(fn);
  }

  // Stops the timer (server shutdown: the loop must run dry).
  void stop() { timer_.stop(); }

  [[nodiscard]] FileStats stats() const;

  [[nodiscard]] std::uint64_t max_upload() const { return config_.max_upload; }

  struct Transfer;
  class Handler;
  friend class Handler;

 private:
  std::shared_ptr<Transfer> start(int kind, const std::string& agent_id, const std::string& path,
                                  const std::string& user_id, HttpStream& stream);
  void report(const Transfer& t, int status, const std::string& error, const std::string& sha256);
  // Ends a transfer: answers the client with `status`/`error` if nothing was sent yet, else
  // cuts the body short. `tell_agent`: send it file_error so it stops too.
  void fail(Transfer& t, int status, const std::string& error, bool tell_agent);
  void forget(const std::string& id);
  void check_timeouts();

  // Handler events.
  void body(Transfer& t, std::string_view bytes);
  void body_end(Transfer& t);
  void written(Transfer& t, std::uint64_t total);
  void flush(Transfer& t);
  void client_gone(Transfer& t);

  uv_loop_t* loop_;
  Hub& hub_;
  FileServiceConfig config_;
  uvx::Timer timer_;
  std::map<std::string, std::shared_ptr<Transfer>> transfers_;
  std::function<void(const FileOutcome&)> observer_;
  std::uint64_t uploaded_ = 0;
  std::uint64_t downloaded_ = 0;
  std::uint64_t failed_ = 0;
};

}  // namespace rx::server
