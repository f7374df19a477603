// SPDX-License-Identifier: MIT
// Store: the server's persistent records (users, API tokens, agents, stats) behind an
// interface, so a PostgreSQL backend can sit beside the SQLite one. No SQL in this header.
// Timestamps are Unix milliseconds (UTC).
#pragma once

#include "rexec/common/result.h"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rx::server {

using Millis = std::int64_t;  // Unix time in milliseconds

// The wall clock as Millis.
inline Millis now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct User {
  std::string id;  // uuid v4
  std::string username;
  std::string tier = "free";  // guest, free, pro, enterprise
  bool is_admin = false;
  bool subscription_active = false;
  Millis created_at = 0;
  std::string email;  // "" when none was given (`user add --email`)
};

struct ApiToken {
  std::string id;  // uuid v4
  std::string user_id;
  std::string name;
  std::string token_hash;    // hex SHA-256 of the token; the token itself is never stored
  std::string token_prefix;  // first 12 characters, for display
  std::vector<std::string> scopes;
  std::optional<std::string> agent_id;  // the agent this token was minted for
  std::optional<Millis> expires_at;
  std::optional<Millis> revoked_at;
  std::optional<Millis> last_used_at;
  Millis created_at = 0;
};

struct Agent {
  std::string id;  // uuid v4
  std::string user_id;
  std::string name;
  std::string description;
  std::string os, arch, shell, distro;
  std::vector<std::string> tags;
  std::string status = "offline";  // online | offline
  bool mfa_locked = false;
  std::optional<Millis> connected_at;
  std::optional<Millis> last_ping;
  Millis created_at = 0;
  Millis updated_at = 0;
  std::string system_info;  // JSON text, empty until the agent sent it
  std::optional<std::string> token_id;
};

// A user's TOTP enrolment (PROTOCOL §6). The secret is stored as enrolled (base32): TOTP needs
// the shared secret itself, unlike API tokens, which are stored hashed.
struct MfaRecord {
  std::string user_id;
  std::string secret_base32;
  std::int64_t last_step = 0;  // the newest time step a code was accepted for (replay guard)
  Millis enrolled_at = 0;
};

// One audit record (docs/security.md "Audit"). It never holds a token, a secret or terminal
// bytes: ids, sizes, paths and outcomes only.
struct AuditEvent {
  std::int64_t id = 0;  // assigned by the store, increasing; 0 before it is stored
  Millis at = 0;
  std::string type;      // stable snake_case: agent_registered, terminal_opened, ...
  std::string user_id;   // who acted
  std::string owner_id;  // whose records (the agent's owner): who may read the event
  std::optional<std::string> agent_id;
  std::optional<std::string> session_id;
  std::string details = "{}";  // a JSON object: byte counts, path, status, reason...
};

// Which audit events to read: newest first, at most `limit`.
struct AuditQuery {
  std::optional<std::string> owner_id;  // nullopt: every owner (an admin)
  std::optional<std::string> agent_id;
  std::optional<std::string> type;
  std::optional<std::string> user_id;  // who acted
  std::optional<Millis> since;         // at >= since
  std::optional<Millis> until;         // at < until
  std::optional<std::int64_t> before;  // only ids below this (paging)
  std::size_t limit = 100;
};

// One session recording kept in the database (RecordingRows).
struct RecordingRow {
  std::int64_t id = 0;  // assigned by the store, increasing
  std::string name;     // as the file would be named: <session>-<UTC start>-<8 hex>.cast
  std::string session_id;
  Millis started_at = 0;
  std::uint64_t bytes = 0;  // the sum of its chunks
};

// Session recordings as rows of chunks in the database, so that every instance sharing it reads
// what any instance recorded (docs/protocol.md "Session recordings"). A chunk is a run of whole
// bytes of the asciicast file, numbered from 0 without gaps. Errors as Store's; loop thread only.
class RecordingRows {
 public:
  virtual ~RecordingRows() = default;

  // A new, empty recording of `agent_id`; returns its id. kExists: no such agent, or the name
  // is taken.
  virtual Result<std::int64_t> add_recording(const std::string& agent_id,
                                             const RecordingRow& r) = 0;
  // Stores `chunks` as numbers first_seq, first_seq + 1, ... and adds their sizes to the
  // recording's bytes, in one statement (all or nothing).
  virtual Status append_recording(std::int64_t id, std::int64_t first_seq,
                                  const std::vector<std::string>& chunks) = 0;
  virtual Result<std::vector<RecordingRow>> recordings_of(const std::string& agent_id) = 0;
  virtual Result<std::optional<RecordingRow>> recording_named(const std::string& agent_id,
                                                              const std::string& name) = 0;
  // At most `limit` chunks from number `first_seq` on, in order; fewer at the end.
  virtual Result<std::vector<std::string>> recording_chunks(std::int64_t id, std::int64_t first_seq,
                                                            std::size_t limit) = 0;
  // Keeps the newest `keep` recordings of the agent; returns the names of those removed.
  virtual Result<std::vector<std::string>> prune_recordings(const std::string& agent_id,
                                                            std::size_t keep) = 0;
  virtual Status delete_recording(const std::string& agent_id, const std::string& name) = 0;
  virtual Status delete_recordings(const std::string& agent_id) = 0;

 protected:
  RecordingRows() = default;
  RecordingRows(const RecordingRows&) = default;
  RecordingRows& operator=(const RecordingRows&) = default;
  RecordingRows(RecordingRows&&) = default;
  RecordingRows& operator=(RecordingRows&&) = default;
};

// A stats sample as stored (PROTOCOL §3.2 `stats` data, JSON text).
struct StatsSample {
  std::string agent_id;
  Millis at = 0;
  std::string json;
};

// Writes to be made together (Store::write_agents). Within one batch the last online/offline
// event of an agent wins, as do its last system info and a token's last use; audit events and
// stats samples are all written, in order.
struct AgentWrites {
  struct StatusChange {
    std::string agent_id;
    bool online = false;
    Millis at = 0;  // connected_at and last_ping when online, updated_at when offline
  };

  std::vector<StatusChange> status;
  std::vector<std::string> heartbeats;  // last_ping = heartbeat_at
  Millis heartbeat_at = 0;
  std::vector<std::pair<std::string, std::string>> system_info;  // agent id, JSON text
  std::vector<StatsSample> stats;
  std::vector<std::pair<std::string, Millis>> token_uses;  // token id, last used at
  std::vector<AuditEvent> audit;
  std::optional<Millis> prune_stats_before;
  std::optional<Millis> prune_audit_before;

  // Rows it writes (a prune counts as one), for queue limits.
  [[nodiscard]] std::size_t rows() const {
    return status.size() + heartbeats.size() + system_info.size() + stats.size() +
           token_uses.size() + audit.size() + (prune_stats_before ? 1U : 0U) +
           (prune_audit_before ? 1U : 0U);
  }

  // The status changes to online (true) or offline (false): agent id and time.
  [[nodiscard]] std::vector<std::pair<std::string, Millis>> changes(bool online) const;

  // Appends `later`: its events come after ours.
  void append(AgentWrites&& later);
  // Keeps only the last status change and system info of each agent and the last use of each
  // token, in the order of those last events.
  void coalesce();
};

// Every method returns kStorage on a database failure (kExists when a constraint refuses the
// write) and never throws. Loop thread only.
class Store {
 public:
  virtual ~Store() = default;

  virtual Status create_user(const User& u) = 0;  // kExists for a taken username
  virtual Result<std::optional<User>> user_by_id(const std::string& id) = 0;
  virtual Result<std::optional<User>> user_by_name(const std::string& username) = 0;
  virtual Result<std::vector<User>> list_users() = 0;

  virtual Status create_token(const ApiToken& t) = 0;
  virtual Result<std::optional<ApiToken>> token_by_hash(const std::string& hash) = 0;
  // After what is queued for write_agents() is written (token uses), like audit_events(): a
  // user looks at these right after acting. Rare reads, so the loop thread may wait for a batch.
  virtual Result<std::vector<ApiToken>> tokens_of(const std::string& user_id) = 0;
  // Returns false when no live token with that id belongs to the user.
  virtual Result<bool> revoke_token(const std::string& id, const std::string& user_id,
                                    Millis now) = 0;
  virtual Result<std::vector<std::string>> revoke_agent_tokens(const std::string& agent_id,
                                                               Millis now) = 0;

  virtual Status create_agent(const Agent& a) = 0;
  virtual Result<std::optional<Agent>> agent(const std::string& id) = 0;
  virtual Result<std::vector<Agent>> agents_of(const std::string& user_id) = 0;  // newest first
  virtual Result<int> count_agents(const std::string& user_id) = 0;
  virtual Status update_agent(const std::string& id, const std::string& name,
                              const std::string& description, Millis now) = 0;
  virtual Status set_agent_tags(const std::string& id, const std::vector<std::string>& tags,
                                Millis now) = 0;
  virtual Status delete_agent(const std::string& id) = 0;
  virtual Status set_all_offline() = 0;

  // The writes that grow with the number of agents go through write_agents(): online and
  // offline, heartbeats, system info, stats samples, token use, audit events. They are written
  // behind, by a thread of the backend, in batches: what arrives within 100 ms
  // (WriteQueue::kGather), or while the previous batch is being written, goes into one
  // transaction of a few statements, however many agents it concerns (docs/deploy.md). flush()
  // waits for them.
  virtual Status write_agents(AgentWrites writes) = 0;

  // One-record forms of write_agents(), written behind the same way.
  Status set_online(const std::string& id, Millis now) {
    AgentWrites w;
    w.status.push_back({id, true, now});
    return write_agents(std::move(w));
  }

  Status set_offline(const std::string& id, Millis now) {
    AgentWrites w;
    w.status.push_back({id, false, now});
    return write_agents(std::move(w));
  }

  // Sets last_ping of every agent in `ids` to `now`.
  Status touch_agents(const std::vector<std::string>& ids, Millis now) {
    if (ids.empty()) return {};
    AgentWrites w;
    w.heartbeats = ids;
    w.heartbeat_at = now;
    return write_agents(std::move(w));
  }

  Status set_system_info(const std::string& id, const std::string& json) {
    AgentWrites w;
    w.system_info.emplace_back(id, json);
    return write_agents(std::move(w));
  }

  // A sample for an agent that is deleted before it is written is dropped.
  Status add_stats(const std::string& agent_id, Millis at, const std::string& json) {
    AgentWrites w;
    w.stats.push_back({agent_id, at, json});
    return write_agents(std::move(w));
  }

  // Deletes every agent's samples older than `cutoff`.
  Status prune_stats(Millis cutoff) {
    AgentWrites w;
    w.prune_stats_before = cutoff;
    return write_agents(std::move(w));
  }

  Status touch_token(const std::string& id, Millis now) {
    AgentWrites w;
    w.token_uses.emplace_back(id, now);
    return write_agents(std::move(w));
  }

  virtual Result<std::vector<std::pair<Millis, std::string>>> stats_of(
      const std::string& agent_id, std::size_t limit) = 0;  // newest first

  // Enrols (or re-enrols, forgetting the old secret) a user for TOTP.
  virtual Status set_mfa(const std::string& user_id, const std::string& secret_base32,
                         Millis now) = 0;
  virtual Result<std::optional<MfaRecord>> mfa_of(const std::string& user_id) = 0;
  // Records that a code of time step `step` was used; false when a code of this or a later step
  // was used before (a replay), so each code works once.
  virtual Result<bool> use_mfa_step(const std::string& user_id, std::int64_t step) = 0;
  virtual Status set_mfa_locked(const std::string& agent_id, bool locked) = 0;

  // Audit events (docs/security.md "Audit"), written behind in order (write_agents).
  Status add_audit(const AuditEvent& e) {
    AgentWrites w;
    w.audit.push_back(e);
    return write_agents(std::move(w));
  }

  // After what is queued is written (see tokens_of).
  virtual Result<std::vector<AuditEvent>> audit_events(const AuditQuery& q) = 0;

  // Deletes the events older than `cutoff`.
  Status prune_audit(Millis cutoff) {
    AgentWrites w;
    w.prune_audit_before = cutoff;
    return write_agents(std::move(w));
  }

  // A trivial query: OK when the database answers (GET /readyz).
  virtual Status ping() = 0;

  // Waits until every write accepted so far by write_agents() is in the database (tests and
  // shutdown).
  virtual void flush() = 0;

  // What the database is, for logs: a file path, or host, port and database name (never a
  // password).
  [[nodiscard]] virtual std::string describe() const = 0;
  // Database operations that failed since start (GET /metrics).
  [[nodiscard]] virtual std::uint64_t error_count() const = 0;
  // Statements that wrote (INSERT, UPDATE, DELETE) and transactions committed since start,
  // explicit or not (GET /metrics): what the database sees.
  [[nodiscard]] virtual std::uint64_t write_statements() const = 0;
  [[nodiscard]] virtual std::uint64_t commits() const = 0;

  // Where recordings can be kept in this database, shared by every instance using it; nullptr
  // when they go to files (SQLite: one instance, a local directory serves as well).
  virtual RecordingRows* recording_rows() { return nullptr; }

  // A server-wide secret kept in the database (the JWT key when none is configured).
  virtual Result<std::string> setting(const std::string& key) = 0;  // "" when unset
  virtual Status set_setting(const std::string& key, const std::string& value) = 0;
  // Stores `value` unless the key has one already; returns the stored value. Instances starting
  // together on one database agree on a single value.
  virtual Result<std::string> init_setting(const std::string& key, const std::string& value) = 0;

 protected:
  Store() = default;
  Store(const Store&) = default;
  Store& operator=(const Store&) = default;
  Store(Store&&) = default;
  Store& operator=(Store&&) = default;
};

}  // namespace rx::server
