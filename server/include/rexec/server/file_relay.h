// SPDX-License-Identifier: MIT
// FileRelay: file transfers across instances in cluster mode (docs/protocol.md "Several
// instances"). The HTTP exchange is on the user's instance, the agent on another one. The user's
// instance forwards the exchange through `rexec:file_proxy`; the agent's instance runs it with its
// FileService over a RemoteStream, an HttpStream whose other end is that forward. The FileService
// is unchanged: the acknowledgements it needs for its window are the user's instance reporting
// what its client's socket took, so flow control spans both hops as on one instance.
#pragma once

#include "rexec/server/http_server.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace rx::server {

// One exchange relayed to the agent's instance: a file request, or a command (kind "exec",
// exec_route.h: its JSON request body travels as an upload's would).
struct FileRequest {
  std::string kind;  // "get", "put", "list" or "exec"
  std::string agent_id;
  std::string path;
  std::uint64_t size = 0;  // put
  std::optional<std::uint32_t> mode;
  std::string user_id;  // who asked (the agent's owner), for the audit event
  // The user's instance waits this long for the answer (exec: the command's timeout and more);
  // zero: the transfer timeouts.
  std::chrono::seconds answer_within{0};
};

class FileRelay {
 public:
  // Publishes a payload for `target` on the file channel.
  using PublishFn = std::function<void(const std::string& target, nlohmann::json payload)>;
  // Runs a request locally (the FileService, through the Api).
  using StartFn =
      std::function<std::unique_ptr<HttpStreamHandler>(const FileRequest&, HttpStream&)>;

  FileRelay(uv_loop_t* loop, PublishFn publish, StartFn start);
  ~FileRelay();
  FileRelay(const FileRelay&) = delete;
  FileRelay& operator=(const FileRelay&) = delete;
  FileRelay(FileRelay&&) = delete;
  FileRelay& operator=(FileRelay&&) = delete;

  // The user's side: forwards the exchange on `stream` to the agent's `instance`.
  std::unique_ptr<HttpStreamHandler> forward(const FileRequest& request,
                                             const std::string& instance, HttpStream& stream);
  // A message of the file channel addressed to this instance.
  void on_message(const std::string& from, const nlohmann::json& payload);

  // Stops the timers (server shutdown: the loop must run dry).
  void stop() {
    check_timer_.stop();
    reap_timer_.stop();
  }

  [[nodiscard]] std::size_t forwards() const { return forwards_.size(); }

  [[nodiscard]] std::size_t remotes() const { return remotes_.size(); }

  struct Forward;
  class ForwardHandler;
  class RemoteStream;

 private:
  void on_forward_message(Forward& f, const std::string& type, const nlohmann::json& p);
  void on_remote_message(const std::string& from, const std::string& type, const nlohmann::json& p);
  void check();
  void reap();

  PublishFn publish_;
  StartFn start_;
  uvx::Timer check_timer_;
  uvx::Timer reap_timer_;
  std::map<std::string, std::shared_ptr<Forward>> forwards_;      // by stream id
  std::map<std::string, std::unique_ptr<RemoteStream>> remotes_;  // by stream id
};

}  // namespace rx::server
