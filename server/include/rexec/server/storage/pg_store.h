// SPDX-License-Identifier: MIT
// PgStore: the Store on PostgreSQL through libpq, selected by `--db postgres://…`. Same records
// and migrations as SqliteStore, so several server instances can share one database.
//
// Two connections. The loop thread's answers the queries a request waits for (auth, the API);
// they are synchronous, like SQLite's, and bounded by statement_timeout and tcp_user_timeout, so
// a stalled database holds the loop for at most a few seconds rather than forever. The writer
// thread's takes the writes nothing waits for and that scale with the number of agents —
// heartbeats, stats, online/offline, system info, token use, audit events — queued in order and
// written behind in batches (WriteQueue), so a slow database never slows terminals down. Why not
// every query on a worker: lws decides a WebSocket upgrade inside its callback
// (HTTP_CONFIRM_UPGRADE), so the authentication behind it must answer synchronously anyway
// (docs/architecture.md).
#pragma once

#include "rexec/server/storage/store.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rx::server {

class PgConn;
struct PgCounters;
class WriteQueue;

// Whether `db` names a PostgreSQL database (postgres:// or postgresql://) rather than a file.
bool is_postgres_url(const std::string& db);

class PgStore final : public Store, public RecordingRows {
 public:
  // Connects both connections and migrates (under an advisory lock, so instances starting
  // together migrate once). Errors: kStorage with libpq's reason; never the password.
  static Result<std::unique_ptr<PgStore>> open(const std::string& url);
  ~PgStore() override;  // writes what is queued (giving up at once if the database is gone)
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;
  PgStore(PgStore&&) = delete;
  PgStore& operator=(PgStore&&) = delete;

  [[nodiscard]] int schema_version();
  Status ping() override;
  void flush() override;
  [[nodiscard]] std::string describe() const override;

  [[nodiscard]] std::uint64_t error_count() const override;
  [[nodiscard]] std::uint64_t write_statements() const override;
  [[nodiscard]] std::uint64_t commits() const override;
  Status write_agents(AgentWrites writes) override;

  Status create_user(const User& u) override;
  Result<std::optional<User>> user_by_id(const std::string& id) override;
  Result<std::optional<User>> user_by_name(const std::string& username) override;
  Result<std::vector<User>> list_users() override;
  Status create_token(const ApiToken& t) override;
  Result<std::optional<ApiToken>> token_by_hash(const std::string& hash) override;
  Result<std::vector<ApiToken>> tokens_of(const std::string& user_id) override;
  Result<bool> revoke_token(const std::string& id, const std::string& user_id, Millis now) override;
  Result<std::vector<std::string>> revoke_agent_tokens(const std::string& agent_id,
                                                       Millis now) override;
  Status create_agent(const Agent& a) override;
  Result<std::optional<Agent>> agent(const std::string& id) override;
  Result<std::vector<Agent>> agents_of(const std::string& user_id) override;
  Result<int> count_agents(const std::string& user_id) override;
  Status update_agent(const std::string& id, const std::string& name,
                      const std::string& description, Millis now) override;
  Status set_agent_tags(const std::string& id, const std::vector<std::string>& tags,
                        Millis now) override;
  Status delete_agent(const std::string& id) override;
  Status set_all_offline() override;
  Result<std::vector<std::pair<Millis, std::string>>> stats_of(const std::string& agent_id,
                                                               std::size_t limit) override;
  Status set_mfa(const std::string& user_id, const std::string& secret_base32, Millis now) override;
  Result<std::optional<MfaRecord>> mfa_of(const std::string& user_id) override;
  Result<bool> use_mfa_step(const std::string& user_id, std::int64_t step) override;
  Status set_mfa_locked(const std::string& agent_id, bool locked) override;
  Result<std::vector<AuditEvent>> audit_events(const AuditQuery& q) override;
  Result<std::string> setting(const std::string& key) override;
  Result<std::string> init_setting(const std::string& key, const std::string& value) override;
  Status set_setting(const std::string& key, const std::string& value) override;

  // Recordings are rows here, synchronous on the loop's connection (a recording is written in
  // chunks of tens of KiB, not per output frame: Recordings batches).
  RecordingRows* recording_rows() override { return this; }

  Result<std::int64_t> add_recording(const std::string& agent_id, const RecordingRow& r) override;
  Status append_recording(std::int64_t id, std::int64_t first_seq,
                          const std::vector<std::string>& chunks) override;
  Result<std::vector<RecordingRow>> recordings_of(const std::string& agent_id) override;
  Result<std::optional<RecordingRow>> recording_named(const std::string& agent_id,
                                                      const std::string& name) override;
  Result<std::vector<std::string>> recording_chunks(std::int64_t id, std::int64_t first_seq,
                                                    std::size_t limit) override;
  Result<std::vector<std::string>> prune_recordings(const std::string& agent_id,
                                                    std::size_t keep) override;
  Status delete_recording(const std::string& agent_id, const std::string& name) override;
  Status delete_recordings(const std::string& agent_id) override;

  // A statement with its parameters (text format; nullopt is NULL).
  struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
  };

 private:
  PgStore(std::shared_ptr<PgCounters> counters, std::unique_ptr<PgConn> conn,
          std::unique_ptr<PgConn> writer_conn);

  Status migrate();
  Status apply(const AgentWrites& w, bool stopping);  // on the writer thread

  std::shared_ptr<PgCounters> counters_;  // shared with both connections
  std::unique_ptr<PgConn> conn_;          // loop thread
  std::unique_ptr<PgConn> writer_conn_;   // writer thread
  std::unique_ptr<WriteQueue> queue_;     // last: stopped first
};

}  // namespace rx::server
