// SPDX-License-Identifier: MIT
// File transfers on the agent (PROTOCOL §8 and docs/protocol.md "Files"): downloads, uploads and
// directory listings, as the agent's own user. Every file system call runs on libuv's thread
// pool, one at a time per transfer, so a slow or hung disk never stalls the loop or the shells.
#pragma once

#include "rexec/proto/messages.h"

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace rx::agent {

// What the transfers need from the link.
struct FileLink {
  std::function<void(const proto::AgentMessage&)> send;
  // One chunk of a download: a v2 binary frame, or v1 JSON.
  std::function<void(std::string_view id, std::uint64_t seq, std::string_view bytes)> send_data;
  // True while the link can take bulk data without delaying terminal output much.
  std::function<bool()> can_send;
};

class FileTransfers {
 public:
  FileTransfers(uv_loop_t* loop, FileLink link);
  // Transfers still running are abandoned: their work finishes on the pool, and uploads remove
  // what they wrote.
  ~FileTransfers();
  FileTransfers(const FileTransfers&) = delete;
  FileTransfers& operator=(const FileTransfers&) = delete;
  FileTransfers(FileTransfers&&) = delete;
  FileTransfers& operator=(FileTransfers&&) = delete;

  void get(const proto::FileGet& m);
  void put(const proto::FilePut& m);
  void list(const proto::FileList& m);
  void data(std::string_view id, std::uint64_t seq, std::string_view bytes);
  void end(const proto::FileEnd& m);
  void ack(const proto::FileAck& m);
  void cancel(const proto::FileError& m);  // the server gave up on it (client gone, error)

  // The link drained: downloads send on.
  void pump();
  // The link is gone: every transfer ends, uploads leave nothing behind.
  void cancel_all();

  [[nodiscard]] std::size_t active() const { return transfers_.size(); }

  struct Transfer;

 private:
  void fail(Transfer& t, const std::string& error, std::uint16_t status);
  void finish(const std::string& id);
  void step(Transfer& t);  // starts the next file system call the transfer can make
  void done(Transfer& t);  // a file system call finished (on the loop)

  uv_loop_t* loop_;
  FileLink link_;
  std::map<std::string, std::shared_ptr<Transfer>> transfers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rx::agent
