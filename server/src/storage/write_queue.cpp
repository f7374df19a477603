// SPDX-License-Identifier: MIT
#include "storage/write_queue.h"

#include <spdlog/spdlog.h>

namespace rx::server {

WriteQueue::WriteQueue(Apply apply, std::atomic<std::uint64_t>& errors)
    : apply_(std::move(apply)), errors_(errors), thread_([this] { run(); }) {}

WriteQueue::~WriteQueue() { stop(); }

void WriteQueue::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status WriteQueue::push(AgentWrites w) {
  const std::size_t rows = w.rows();
  if (rows == 0) return {};
  {
    std::lock_guard<std::mutex> lock(mu_);
    const std::size_t queued = pending_.rows();
    if (queued + rows > kMaxRows) {
      errors_ += rows;
      if (!overflow_logged_) {
        spdlog::error("database writes are {} rows behind; dropping new ones until it catches up",
                      queued);
        overflow_logged_ = true;
      }
      return Error(Errc::kStorage, "database write queue full");
    }
    if (queued == 0) {
      first_at_ = std::chrono::steady_clock::now();
      overflow_logged_ = false;
    }
    pending_.append(std::move(w));
    if (queued != 0 && queued + rows < kBatchRows) return {};  // already woken
  }
  wake_.notify_one();
  return {};
}

void WriteQueue::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  ++flushing_;
  wake_.notify_one();
  idle_.wait(lock, [this] { return pending_.rows() == 0 && !writing_; });
  --flushing_;
}

void WriteQueue::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || pending_.rows() > 0; });
    if (pending_.rows() == 0) break;  // stopping, and everything is written
    wake_.wait_until(lock, first_at_ + kGather, [this] {
      return stopping_ || flushing_ > 0 || pending_.rows() >= kBatchRows;
    });
    AgentWrites batch = std::move(pending_);
    pending_ = AgentWrites();
    writing_ = true;
    const bool stopping = stopping_;
    lock.unlock();
    batch.coalesce();
    if (auto st = apply_(batch, stopping); !st) {
      spdlog::warn("database write failed rows={} error={}", batch.rows(), st.error().message);
    }
    lock.lock();
    writing_ = false;
    if (pending_.rows() == 0) idle_.notify_all();
  }
  writing_ = false;
  idle_.notify_all();
}

}  // namespace rx::server
