// SPDX-License-Identifier: MIT
// SqliteStore: the embedded default Store. WAL mode, a busy timeout, foreign keys, versioned
// migrations (PRAGMA user_version) and prepared statements only. Calls are synchronous and run
// on the loop thread (WAL on a local disk keeps them well under a millisecond), except
// write_agents(): those writes, which grow with the number of agents, go to a writer thread with
// a connection of its own and are written in batches (WriteQueue).
#pragma once

#include "rexec/server/storage/store.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

struct sqlite3;

namespace rx::server {
class WriteQueue;
}  // namespace rx::server

namespace rx::server {

class SqliteStore final : public Store {
 public:
  // Opens (creating if needed) and migrates. Errors: kStorage naming the path and the reason.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  SqliteStore(SqliteStore&&) = delete;
  SqliteStore& operator=(SqliteStore&&) = delete;

  [[nodiscard]] int schema_version() const;
  Status ping() override;

  [[nodiscard]] std::string describe() const override { return path_; }

  [[nodiscard]] std::uint64_t error_count() const override { return errors_.load(); }

  [[nodiscard]] std::uint64_t write_statements() const override { return writes_.load(); }

  [[nodiscard]] std::uint64_t commits() const override { return commits_.load(); }

  Status write_agents(AgentWrites writes) override;
  void flush() override;

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

  class Stmt;

 private:
  explicit SqliteStore(std::string path);

  Status exec(const char* sql);
  Status exec(sqlite3* db, const char* sql);
  Status migrate();
  Status apply(const AgentWrites& w);  // on the writer thread

  sqlite3* db_ = nullptr;         // the loop thread's connection
  sqlite3* writer_db_ = nullptr;  // the writer thread's (db_ itself for ":memory:")
  std::string path_;
  mutable std::atomic<std::uint64_t> errors_{0};  // failed statements (not a constraint)
  mutable std::atomic<std::uint64_t> writes_{0};
  std::atomic<std::uint64_t> commits_{0};
  std::unique_ptr<WriteQueue> queue_;  // last: stopped first
};

}  // namespace rx::server
