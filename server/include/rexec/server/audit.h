// SPDX-License-Identifier: MIT
// Audit: the one place that records an audit event (docs/security.md "Audit"). Each event goes
// to the Store (the audit_events table, read by GET /api/audit) and, as one JSON line, to the
// log: `audit {"type":"terminal_closed",...}`. Events carry ids, sizes, paths and outcomes,
// never a token, a secret or terminal bytes.
#pragma once

#include "rexec/server/storage/store.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace rx::server {

// Loop thread only (it writes the Store). `store` must outlive the Audit.
class Audit {
 public:
  // Events older than `retention` are deleted now and after every kPruneEvery events;
  // a zero retention keeps them all.
  Audit(Store& store, std::chrono::milliseconds retention);

  // Records one event at the current time. `details` must be a JSON object (or null: {}).
  // A Store failure is logged and counted by the Store; the log line is written regardless.
  void record(const std::string& type, const std::string& user_id, const std::string& owner_id,
              std::optional<std::string> agent_id, std::optional<std::string> session_id,
              const nlohmann::json& details = nullptr);

  // Deletes the events older than the retention (a no-op with retention 0).
  void prune();

  // The JSON line logged for `e` (without the "audit " prefix); also the shape GET /api/audit
  // gives each event, minus `id`.
  [[nodiscard]] static nlohmann::ordered_json to_json(const AuditEvent& e);

  static constexpr std::uint64_t kPruneEvery = 1000;  // events between two prunes

 private:
  Store& store_;
  std::chrono::milliseconds retention_;
  std::uint64_t since_prune_ = 0;
};

}  // namespace rx::server
