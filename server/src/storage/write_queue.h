// SPDX-License-Identifier: MIT
// WriteQueue: the thread that writes a Store's AgentWrites behind (Store::write_agents), in
// batches. Everything pushed within kGather of the first write, or while the previous batch is
// being written, becomes one batch: one transaction of a few multi-row statements, whatever the
// number of agents. Private to the storage backends.
#pragma once

#include "rexec/server/storage/store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace rx::server {

class WriteQueue {
 public:
  // `apply` writes one batch, in one transaction, on the queue's thread; its errors are its own
  // to count. `stopping` tells it the server is shutting down (so it may give up at once on a
  // dead database). `errors` counts the writes dropped because the queue was full.
  using Apply = std::function<Status(const AgentWrites& batch, bool stopping)>;

  WriteQueue(Apply apply, std::atomic<std::uint64_t>& errors);
  // Calls stop().
  ~WriteQueue();
  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;
  WriteQueue(WriteQueue&&) = delete;
  WriteQueue& operator=(WriteQueue&&) = delete;

  // Queues `w` after everything queued so far. Errors: kStorage when the queue holds kMaxRows
  // already (the database is down or far behind): `w` is dropped and counted.
  Status push(AgentWrites w);
  // Waits until everything pushed so far is written (or failed), without the gathering delay.
  void flush();
  // Writes what is queued, then ends the thread. The owner calls it before it closes what
  // `apply` uses. Idempotent.
  void stop();

  // How long a batch gathers writes after its first one: a lone event waits this long at most,
  // and a storm of them is written in transactions of this many milliseconds' worth.
  static constexpr std::chrono::milliseconds kGather{100};
  // A batch this large is written at once.
  static constexpr std::size_t kBatchRows = 20000;
  // Rows queued at most; past this, writes are dropped (heartbeats and stats are superseded by
  // the next ones; an audit event lost is also in the log).
  static constexpr std::size_t kMaxRows = 500000;

 private:
  void run();

  Apply apply_;
  std::atomic<std::uint64_t>& errors_;
  std::mutex mu_;
  std::condition_variable wake_;  // work queued, a flush, or stopping
  std::condition_variable idle_;  // nothing queued and nothing being written
  AgentWrites pending_;
  std::chrono::steady_clock::time_point first_at_;
  int flushing_ = 0;
  bool writing_ = false;
  bool stopping_ = false;
  bool overflow_logged_ = false;
  std::thread thread_;
};

}  // namespace rx::server
