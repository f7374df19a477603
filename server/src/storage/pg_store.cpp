// SPDX-License-Identifier: MIT
#include "rexec/server/storage/pg_store.h"

#include "rexec/common/check.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>

#include "storage/columns.h"
#include "storage/write_queue.h"

namespace rx::server {

namespace {

// The same records as SqliteStore's migrations, in PostgreSQL's types. Append only; the table
// rexec_schema records how many ran. `seq` columns give insertion order (SQLite's rowid).
constexpr std::array<const char*, 6> kMigrations = {R"sql(
CREATE TABLE users (
  id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, tier TEXT NOT NULL,
  is_admin BOOLEAN NOT NULL DEFAULT false, subscription_active BOOLEAN NOT NULL DEFAULT false,
  created_at BIGINT NOT NULL);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, token_prefix TEXT NOT NULL,
  scopes TEXT NOT NULL, agent_id TEXT, expires_at BIGINT, revoked_at BIGINT,
  last_used_at BIGINT, created_at BIGINT NOT NULL);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE INDEX api_tokens_agent ON api_tokens(agent_id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', os TEXT NOT NULL DEFAULT '',
  arch TEXT NOT NULL DEFAULT '', shell TEXT NOT NULL DEFAULT '', distro TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL DEFAULT 'offline',
  mfa_locked BOOLEAN NOT NULL DEFAULT false, connected_at BIGINT, last_ping BIGINT,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  system_info TEXT NOT NULL DEFAULT '', token_id TEXT, seq BIGSERIAL);
CREATE INDEX agents_user ON agents(user_id, created_at);
CREATE TABLE agent_stats (
  seq BIGSERIAL PRIMARY KEY,
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, at BIGINT NOT NULL,
  data TEXT NOT NULL);
CREATE INDEX agent_stats_agent ON agent_stats(agent_id, at);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql",
                                                    R"sql(
CREATE TABLE user_mfa (
  user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, secret TEXT NOT NULL,
  last_step BIGINT NOT NULL DEFAULT 0, enrolled_at BIGINT NOT NULL);
)sql",
                                                    R"sql(
CREATE TABLE audit_events (
  id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, type TEXT NOT NULL, user_id TEXT NOT NULL,
  owner_id TEXT NOT NULL, agent_id TEXT, session_id TEXT, details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX audit_events_owner ON audit_events(owner_id, id);
CREATE INDEX audit_events_at ON audit_events(at);
)sql",
                                                    R"sql(
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
)sql",
                                                    R"sql(
CREATE TABLE recordings (
  id BIGSERIAL PRIMARY KEY, agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
  name TEXT NOT NULL, session_id TEXT NOT NULL, started_at BIGINT NOT NULL,
  bytes BIGINT NOT NULL DEFAULT 0, UNIQUE (agent_id, name));
CREATE TABLE recording_chunks (
  recording_id BIGINT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (recording_id, seq));
)sql",
                                                    R"sql(
CREATE INDEX agent_stats_at ON agent_stats(at);
)sql"};

// Any number, so instances migrating the same database at once take turns.
constexpr std::int64_t kMigrationLock = 0x72657865;  // "rexe"

// A statement that failed this way is the database saying no, not a database error: SQLSTATE
// class 23 is an integrity constraint (a taken name, a missing row a reference needs).
bool is_constraint(const PGresult* r) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  return state != nullptr && state[0] == '2' && state[1] == '3';
}

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

// A PostgreSQL array literal of text: {"a","b"}, with quotes and backslashes escaped.
std::string text_array(const std::vector<std::string>& v) {
  std::string out = "{";
  for (const std::string& s : v) {
    if (out.size() > 1) out += ',';
    out += '"';
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

using Param = std::optional<std::string>;

Param p(const std::string& s) { return s; }

Param p(std::int64_t v) { return std::to_string(v); }

Param p(bool v) { return std::string(v ? "true" : "false"); }

template <class T>
Param p(const std::optional<T>& v) {
  return v ? p(*v) : std::nullopt;
}

}  // namespace

bool is_postgres_url(const std::string& db) {
  return db.rfind("postgres://", 0) == 0 || db.rfind("postgresql://", 0) == 0;
}

// The rows of one statement.
class PgResult {
 public:
  explicit PgResult(PGresult* r) : r_(r) {}

  [[nodiscard]] const PGresult* get() const { return r_.get(); }

  [[nodiscard]] int rows() const { return PQntuples(r_.get()); }

  [[nodiscard]] std::size_t affected() const {
    return static_cast<std::size_t>(std::strtoull(PQcmdTuples(r_.get()), nullptr, 10));
  }

  [[nodiscard]] std::string text(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
  }

  [[nodiscard]] bool is_null(int row, int col) const {
    return PQgetisnull(r_.get(), row, col) != 0;
  }

  [[nodiscard]] std::int64_t i64(int row, int col) const {
    return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10);
  }

  [[nodiscard]] bool boolean(int row, int col) const {
    return PQgetvalue(r_.get(), row, col)[0] == 't';
  }

  [[nodiscard]] std::optional<std::int64_t> opt_i64(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return i64(row, col);
  }

  [[nodiscard]] std::optional<std::string> opt_text(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return text(row, col);
  }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };

  std::unique_ptr<PGresult, Clear> r_;
};

// What the database has seen from this process (GET /metrics): failed operations, statements
// that wrote, and commits (explicit, or of a write outside a transaction).
struct PgCounters {
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> commits{0};
};

// One libpq connection, used by one thread. Reconnects when the server went away.
class PgConn {
 public:
  PgConn(PGconn* c, std::shared_ptr<PgCounters> counters) : c_(c), counters_(std::move(counters)) {}

  ~PgConn() { PQfinish(c_); }

  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  PgConn(PgConn&&) = delete;
  PgConn& operator=(PgConn&&) = delete;

  // Timeouts bound how long a dead or stalled database can hold the caller: 5 s to connect,
  // 5 s for a statement, and 10 s of unacknowledged data on the socket (a cable pulled).
  static Result<std::unique_ptr<PgConn>> connect(const std::string& url,
                                                 const std::shared_ptr<PgCounters>& counters) {
    // Keywords before "dbname" are defaults; what the URL says overrides them.
    const std::array<const char*, 8> keys = {
        "connect_timeout",  "application_name", "options", "keepalives_idle",
        "tcp_user_timeout", "client_encoding",  "dbname",  nullptr};
    const std::array<const char*, 8> values = {
        "5",
        "rexec-server",
        "-c statement_timeout=5000 -c lock_timeout=5000 -c client_min_messages=warning",
        "10",
        "10000",
        "UTF8",
        url.c_str(),
        nullptr};
    PGconn* c = PQconnectdbParams(keys.data(), values.data(), 1);
    if (c == nullptr) return Error(Errc::kStorage, "cannot connect to PostgreSQL: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
      std::string why = one_line(PQerrorMessage(c));
      PQfinish(c);
      return Error(Errc::kStorage, "cannot connect to PostgreSQL: " + why);
    }
    return std::make_unique<PgConn>(c, counters);
  }

  [[nodiscard]] std::string describe() const {
    return std::string("postgres host=") + PQhost(c_) + " port=" + PQport(c_) + " db=" + PQdb(c_);
  }

  [[nodiscard]] bool is_ok() const { return PQstatus(c_) == CONNECTION_OK; }

  // Runs one statement. A connection found broken is reset first, and once more if the
  // statement failed because it broke on the way (the server restarted, say).
  // `binary`: which parameters are raw bytes (bytea) rather than text, and whether the result
  // columns come back raw (1) rather than as text (0).
  Result<PgResult> run(const std::string& sql, const std::vector<Param>& params,
                       const std::vector<int>& binary = {}, int binary_result = 0) {
    for (int attempt = 0;; ++attempt) {
      if (PQstatus(c_) != CONNECTION_OK) PQreset(c_);
      std::vector<const char*> values;
      std::vector<int> lengths;
      values.reserve(params.size());
      for (const Param& v : params) {
        values.push_back(v ? v->data() : nullptr);
        lengths.push_back(v ? static_cast<int>(v->size()) : 0);
      }
      if (!binary.empty()) REXEC_CHECK(binary.size() == params.size());
      // Without parameters, the simple protocol: it takes several statements (migrations).
      PgResult r(values.empty()
                     ? PQexec(c_, sql.c_str())
                     : PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                    values.data(), lengths.data(),
                                    binary.empty() ? nullptr : binary.data(), binary_result));
      const auto st = PQresultStatus(r.get());
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        count(sql);
        return r;
      }
      if (r.get() != nullptr && is_constraint(r.get())) {
        return Error(Errc::kExists, one_line(PQresultErrorMessage(r.get())));
      }
      if (PQstatus(c_) != CONNECTION_OK && attempt == 0 && !in_transaction_) continue;
      ++counters_->errors;
      std::string why = r.get() != nullptr ? PQresultErrorMessage(r.get()) : "";
      if (why.empty()) why = PQerrorMessage(c_);
      return Error(Errc::kStorage, one_line(why));
    }
  }

  Status exec(const std::string& sql, const std::vector<Param>& params = {}) {
    auto r = run(sql, params);
    if (!r) return std::move(r).error();
    return {};
  }

  // Runs `statements` in one transaction; rolls back on the first failure.
  Status transaction(const std::vector<PgStore::Statement>& statements) {
    if (auto st = exec("BEGIN"); !st) return st;
    in_transaction_ = true;
    for (const auto& s : statements) {
      if (auto st = exec(s.sql, s.params); !st) {
        in_transaction_ = false;
        if (is_ok()) (void)exec("ROLLBACK");
        return st;
      }
    }
    Status st = exec("COMMIT");  // not retried on a new connection either
    in_transaction_ = false;
    return st;
  }

  // Inside a transaction a broken connection is not retried statement by statement.
  void set_in_transaction(bool v) { in_transaction_ = v; }

 private:
  // Counts a statement that succeeded, by its first word.
  void count(const std::string& sql) {
    const auto starts = [&sql](const char* word) { return sql.rfind(word, 0) == 0; };
    if (starts("INSERT") || starts("UPDATE") || starts("DELETE")) {
      ++counters_->writes;
      if (!in_transaction_) ++counters_->commits;
    } else if (starts("COMMIT")) {
      ++counters_->commits;
    }
  }

  PGconn* c_;
  std::shared_ptr<PgCounters> counters_;
  bool in_transaction_ = false;  // a broken transaction is not retried statement by statement
};

namespace {

User read_user(const PgResult& r, int i) {
  return {r.text(i, 0),    r.text(i, 1), r.text(i, 2), r.boolean(i, 3),
          r.boolean(i, 4), r.i64(i, 5),  r.text(i, 6)};
}

ApiToken read_token(const PgResult& r, int i) {
  ApiToken t;
  t.id = r.text(i, 0);
  t.user_id = r.text(i, 1);
  t.name = r.text(i, 2);
  t.token_hash = r.text(i, 3);
  t.token_prefix = r.text(i, 4);
  t.scopes = columns::split_json(r.text(i, 5));
  t.agent_id = r.opt_text(i, 6);
  t.expires_at = r.opt_i64(i, 7);
  t.revoked_at = r.opt_i64(i, 8);
  t.last_used_at = r.opt_i64(i, 9);
  t.created_at = r.i64(i, 10);
  return t;
}

Agent read_agent(const PgResult& r, int i) {
  Agent a;
  a.id = r.text(i, 0);
  a.user_id = r.text(i, 1);
  a.name = r.text(i, 2);
  a.description = r.text(i, 3);
  a.os = r.text(i, 4);
  a.arch = r.text(i, 5);
  a.shell = r.text(i, 6);
  a.distro = r.text(i, 7);
  a.tags = columns::split_json(r.text(i, 8));
  a.status = r.text(i, 9);
  a.mfa_locked = r.boolean(i, 10);
  a.connected_at = r.opt_i64(i, 11);
  a.last_ping = r.opt_i64(i, 12);
  a.created_at = r.i64(i, 13);
  a.updated_at = r.i64(i, 14);
  a.system_info = r.text(i, 15);
  a.token_id = r.opt_text(i, 16);
  return a;
}

template <class T, class Read>
Result<std::vector<T>> collect(Result<PgResult> r, Read read) {
  if (!r) return std::move(r).error();
  std::vector<T> out;
  for (int i = 0; i < r->rows(); ++i) out.push_back(read(*r, i));
  return out;
}

template <class T, class Read>
Result<std::optional<T>> first(Result<PgResult> r, Read read) {
  if (!r) return std::move(r).error();
  if (r->rows() == 0) return std::optional<T>();
  return std::optional<T>(read(*r, 0));
}

std::string sql(const char* head, const char* cols, const char* tail) {
  return std::string(head) + cols + tail;
}

}  // namespace

Result<std::unique_ptr<PgStore>> PgStore::open(const std::string& url) {
  auto counters = std::make_shared<PgCounters>();
  auto conn = PgConn::connect(url, counters);
  if (!conn) return std::move(conn).error();
  auto writer = PgConn::connect(url, counters);
  if (!writer) return std::move(writer).error();
  std::unique_ptr<PgStore> s(new PgStore(counters, std::move(*conn), std::move(*writer)));
  if (auto st = s->migrate(); !st) return std::move(st).error();
  return s;
}

PgStore::PgStore(std::shared_ptr<PgCounters> counters, std::unique_ptr<PgConn> conn,
                 std::unique_ptr<PgConn> writer_conn)
    : counters_(std::move(counters)),
      conn_(std::move(conn)),
      writer_conn_(std::move(writer_conn)),
      queue_(std::make_unique<WriteQueue>(
          [this](const AgentWrites& w, bool stopping) { return apply(w, stopping); },
          counters_->errors)) {}

PgStore::~PgStore() { queue_->stop(); }  // what is queued first, giving up on a dead database

std::uint64_t PgStore::error_count() const { return counters_->errors.load(); }

std::uint64_t PgStore::write_statements() const { return counters_->writes.load(); }

std::uint64_t PgStore::commits() const { return counters_->commits.load(); }

std::string PgStore::describe() const { return conn_->describe(); }

Status PgStore::ping() { return conn_->exec("SELECT 1"); }

int PgStore::schema_version() {
  auto r = conn_->run("SELECT COALESCE(MAX(version), 0) FROM rexec_schema", {});
  return r && r->rows() == 1 ? static_cast<int>(r->i64(0, 0)) : -1;
}

Status PgStore::migrate() {
  if (auto st = conn_->exec("BEGIN"); !st) return st;
  conn_->set_in_transaction(true);
  auto fail = [this](const Error& e) {
    conn_->set_in_transaction(false);
    (void)conn_->exec("ROLLBACK");
    return Error(Errc::kStorage, "migration failed: " + e.message);
  };
  // The lock first, then even the version table: instances starting together take turns.
  if (auto st = conn_->exec("SELECT pg_advisory_xact_lock($1)", {p(kMigrationLock)}); !st) {
    return fail(st.error());
  }
  if (auto st = conn_->exec("CREATE TABLE IF NOT EXISTS rexec_schema (version INTEGER NOT NULL)");
      !st) {
    return fail(st.error());
  }
  auto v = conn_->run("SELECT COALESCE(MAX(version), 0) FROM rexec_schema", {});
  if (!v) return fail(v.error());
  for (auto n = static_cast<std::size_t>(v->i64(0, 0)); n < kMigrations.size(); ++n) {
    if (auto st = conn_->exec(kMigrations[n]); !st) return fail(st.error());
    if (auto st = conn_->exec("INSERT INTO rexec_schema VALUES ($1)",
                              {p(static_cast<std::int64_t>(n + 1))});
        !st) {
      return fail(st.error());
    }
  }
  if (auto st = conn_->exec("COMMIT"); !st) return fail(st.error());
  conn_->set_in_transaction(false);
  return {};
}

Status PgStore::write_agents(AgentWrites writes) { return queue_->push(std::move(writes)); }

void PgStore::flush() { queue_->flush(); }

namespace {

// Rows per multi-row statement: 500 rows of at most 7 values stay far below PostgreSQL's limit
// of 65,535 parameters.
constexpr std::size_t kRowsPerStatement = 500;

// Multi-row statements over `rows`, at most kRowsPerStatement rows each: `head`, then one
// "($n,...)" per row with the given casts (one per value), then `tail`; `params` gives a row's
// values.
template <class T, class Params>
void add_rows(std::vector<PgStore::Statement>& out, const std::vector<T>& rows, const char* head,
              const std::vector<const char*>& casts, const char* tail, Params params) {
  for (std::size_t at = 0; at < rows.size(); at += kRowsPerStatement) {
    const std::size_t n = std::min(kRowsPerStatement, rows.size() - at);
    PgStore::Statement st{head, {}};
    st.params.reserve(n * casts.size());
    for (std::size_t i = at; i < at + n; ++i) {
      st.sql += i == at ? "(" : ",(";
      for (std::size_t c = 0; c < casts.size(); ++c) {
        if (c != 0) st.sql += ',';
        st.sql += '$' + std::to_string(st.params.size() + c + 1) + casts[c];
      }
      st.sql += ')';
      for (auto& v : params(rows[i])) st.params.push_back(std::move(v));
    }
    st.sql += tail;
    out.push_back(std::move(st));
  }
}

}  // namespace

// One batch in one transaction on the writer's connection (WriteQueue's thread).
Status PgStore::apply(const AgentWrites& w, bool stopping) {
  if (stopping && !writer_conn_->is_ok()) return Error(Errc::kStorage, "database gone at shutdown");
  std::vector<Statement> sts;
  add_rows(sts, w.audit,
           "INSERT INTO audit_events (at, type, user_id, owner_id, agent_id, session_id, "
           "details) VALUES ",
           {"", "", "", "", "", "", ""}, "", [](const AuditEvent& e) {
             return std::vector<Param>{p(e.at),       p(e.type),       p(e.user_id), p(e.owner_id),
                                       p(e.agent_id), p(e.session_id), p(e.details)};
           });
  const auto id_at = [](const std::pair<std::string, Millis>& r) {
    return std::vector<Param>{p(r.first), p(r.second)};
  };
  add_rows(sts, w.changes(true),
           "UPDATE agents SET status='online', connected_at=v.at, last_ping=v.at FROM (VALUES ",
           {"", "::bigint"}, ") AS v(id, at) WHERE agents.id=v.id", id_at);
  add_rows(sts, w.changes(false),
           "UPDATE agents SET status='offline', updated_at=v.at FROM (VALUES ", {"", "::bigint"},
           ") AS v(id, at) WHERE agents.id=v.id", id_at);
  // One statement for all the heartbeats (100,000 agents: one round trip).
  if (!w.heartbeats.empty()) {
    sts.push_back({"UPDATE agents SET last_ping=$1 WHERE id = ANY($2::text[])",
                   {p(w.heartbeat_at), p(text_array(w.heartbeats))}});
  }
  add_rows(sts, w.system_info, "UPDATE agents SET system_info=v.info FROM (VALUES ", {"", ""},
           ") AS v(id, info) WHERE agents.id=v.id",
           [](const std::pair<std::string, std::string>& r) {
             return std::vector<Param>{p(r.first), p(r.second)};
           });
  // A sample of an agent deleted meanwhile is dropped, not refused by the foreign key.
  add_rows(sts, w.stats,
           "INSERT INTO agent_stats (agent_id, at, data) SELECT v.id, v.at, v.data FROM (VALUES ",
           {"", "::bigint", ""},
           ") AS v(id, at, data) WHERE EXISTS (SELECT 1 FROM agents WHERE agents.id=v.id)",
           [](const StatsSample& r) {
             return std::vector<Param>{p(r.agent_id), p(r.at), p(r.json)};
           });
  add_rows(sts, w.token_uses, "UPDATE api_tokens SET last_used_at=v.at FROM (VALUES ",
           {"", "::bigint"}, ") AS v(id, at) WHERE api_tokens.id=v.id", id_at);
  if (w.prune_stats_before) {
    sts.push_back({"DELETE FROM agent_stats WHERE at<$1", {p(*w.prune_stats_before)}});
  }
  if (w.prune_audit_before) {
    sts.push_back({"DELETE FROM audit_events WHERE at<$1", {p(*w.prune_audit_before)}});
  }
  if (sts.empty()) return {};
  return sts.size() == 1 ? writer_conn_->exec(sts[0].sql, sts[0].params)
                         : writer_conn_->transaction(sts);
}

Status PgStore::create_user(const User& u) {
  return conn_->exec(sql("INSERT INTO users (", columns::kUser, ") VALUES ($1,$2,$3,$4,$5,$6,$7)"),
                     {p(u.id), p(u.username), p(u.tier), p(u.is_admin), p(u.subscription_active),
                      p(u.created_at), p(u.email)});
}

Result<std::optional<User>> PgStore::user_by_id(const std::string& id) {
  return first<User>(conn_->run(sql("SELECT ", columns::kUser, " FROM users WHERE id=$1"), {p(id)}),
                     read_user);
}

Result<std::optional<User>> PgStore::user_by_name(const std::string& username) {
  return first<User>(
      conn_->run(sql("SELECT ", columns::kUser, " FROM users WHERE username=$1"), {p(username)}),
      read_user);
}

Result<std::vector<User>> PgStore::list_users() {
  return collect<User>(
      conn_->run(sql("SELECT ", columns::kUser, " FROM users ORDER BY created_at, id"), {}),
      read_user);
}

Status PgStore::create_token(const ApiToken& t) {
  return conn_->exec(sql("INSERT INTO api_tokens (", columns::kToken,
                         ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"),
                     {p(t.id), p(t.user_id), p(t.name), p(t.token_hash), p(t.token_prefix),
                      p(columns::join_json(t.scopes)), p(t.agent_id), p(t.expires_at),
                      p(t.revoked_at), p(t.last_used_at), p(t.created_at)});
}

Result<std::optional<ApiToken>> PgStore::token_by_hash(const std::string& hash) {
  return first<ApiToken>(
      conn_->run(sql("SELECT ", columns::kToken, " FROM api_tokens WHERE token_hash=$1"),
                 {p(hash)}),
      read_token);
}

Result<std::vector<ApiToken>> PgStore::tokens_of(const std::string& user_id) {
  flush();  // a token used a moment ago shows its last use
  return collect<ApiToken>(
      conn_->run(sql("SELECT ", columns::kToken,
                     " FROM api_tokens WHERE user_id=$1 ORDER BY created_at DESC, id"),
                 {p(user_id)}),
      read_token);
}

Result<bool> PgStore::revoke_token(const std::string& id, const std::string& user_id, Millis now) {
  auto r = conn_->run(
      "UPDATE api_tokens SET revoked_at=$1 WHERE id=$2 AND user_id=$3 AND revoked_at IS NULL",
      {p(now), p(id), p(user_id)});
  if (!r) return std::move(r).error();
  return r->affected() > 0;
}

Result<std::vector<std::string>> PgStore::revoke_agent_tokens(const std::string& agent_id,
                                                              Millis now) {
  auto r = conn_->run(
      "UPDATE api_tokens SET revoked_at=$1 WHERE agent_id=$2 AND revoked_at IS NULL RETURNING id",
      {p(now), p(agent_id)});
  return collect<std::string>(std::move(r),
                              [](const PgResult& row, int i) { return row.text(i, 0); });
}

Status PgStore::create_agent(const Agent& a) {
  return conn_->exec(
      sql("INSERT INTO agents (", columns::kAgent,
          ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)"),
      {p(a.id), p(a.user_id), p(a.name), p(a.description), p(a.os), p(a.arch), p(a.shell),
       p(a.distro), p(columns::join_json(a.tags)), p(a.status), p(a.mfa_locked), p(a.connected_at),
       p(a.last_ping), p(a.created_at), p(a.updated_at), p(a.system_info), p(a.token_id)});
}

Result<std::optional<Agent>> PgStore::agent(const std::string& id) {
  return first<Agent>(
      conn_->run(sql("SELECT ", columns::kAgent, " FROM agents WHERE id=$1"), {p(id)}), read_agent);
}

Result<std::vector<Agent>> PgStore::agents_of(const std::string& user_id) {
  return collect<Agent>(
      conn_->run(sql("SELECT ", columns::kAgent,
                     " FROM agents WHERE user_id=$1 ORDER BY created_at DESC, seq DESC"),
                 {p(user_id)}),
      read_agent);
}

Result<int> PgStore::count_agents(const std::string& user_id) {
  auto r = conn_->run("SELECT COUNT(*) FROM agents WHERE user_id=$1", {p(user_id)});
  if (!r) return std::move(r).error();
  return static_cast<int>(r->i64(0, 0));
}

Status PgStore::update_agent(const std::string& id, const std::string& name,
                             const std::string& description, Millis now) {
  return conn_->exec("UPDATE agents SET name=$1, description=$2, updated_at=$3 WHERE id=$4",
                     {p(name), p(description), p(now), p(id)});
}

Status PgStore::set_agent_tags(const std::string& id, const std::vector<std::string>& tags,
                               Millis now) {
  return conn_->exec("UPDATE agents SET tags=$1, updated_at=$2 WHERE id=$3",
                     {p(columns::join_json(tags)), p(now), p(id)});
}

Status PgStore::delete_agent(const std::string& id) {
  return conn_->exec("DELETE FROM agents WHERE id=$1", {p(id)});
}

Status PgStore::set_all_offline() {
  flush();  // after, not before, what is queued
  return conn_->exec("UPDATE agents SET status='offline' WHERE status<>'offline'");
}

Result<std::vector<std::pair<Millis, std::string>>> PgStore::stats_of(const std::string& agent_id,
                                                                      std::size_t limit) {
  auto r = conn_->run(
      "SELECT at, data FROM agent_stats WHERE agent_id=$1 ORDER BY at DESC, seq DESC LIMIT $2",
      {p(agent_id), p(static_cast<std::int64_t>(limit))});
  return collect<std::pair<Millis, std::string>>(std::move(r), [](const PgResult& row, int i) {
    return std::make_pair(row.i64(i, 0), row.text(i, 1));
  });
}

Status PgStore::set_mfa(const std::string& user_id, const std::string& secret_base32, Millis now) {
  return conn_->exec(
      "INSERT INTO user_mfa (user_id, secret, last_step, enrolled_at) VALUES ($1,$2,0,$3) "
      "ON CONFLICT (user_id) DO UPDATE SET secret=excluded.secret, last_step=0, "
      "enrolled_at=excluded.enrolled_at",
      {p(user_id), p(secret_base32), p(now)});
}

Result<std::optional<MfaRecord>> PgStore::mfa_of(const std::string& user_id) {
  return first<MfaRecord>(
      conn_->run("SELECT user_id, secret, last_step, enrolled_at FROM user_mfa WHERE user_id=$1",
                 {p(user_id)}),
      [](const PgResult& r, int i) {
        MfaRecord m;
        m.user_id = r.text(i, 0);
        m.secret_base32 = r.text(i, 1);
        m.last_step = r.i64(i, 2);
        m.enrolled_at = r.i64(i, 3);
        return m;
      });
}

Result<bool> PgStore::use_mfa_step(const std::string& user_id, std::int64_t step) {
  // One statement: two instances checking the same code at once cannot both accept it.
  auto r = conn_->run("UPDATE user_mfa SET last_step=$1 WHERE user_id=$2 AND last_step<$1",
                      {p(step), p(user_id)});
  if (!r) return std::move(r).error();
  return r->affected() > 0;
}

Status PgStore::set_mfa_locked(const std::string& agent_id, bool locked) {
  return conn_->exec("UPDATE agents SET mfa_locked=$1 WHERE id=$2", {p(locked), p(agent_id)});
}

Result<std::vector<AuditEvent>> PgStore::audit_events(const AuditQuery& q) {
  flush();  // what was done a moment ago is in the answer
  std::string text =
      "SELECT id, at, type, user_id, owner_id, agent_id, session_id, details FROM audit_events "
      "WHERE true";
  std::vector<Param> params;
  const auto where = [&](const char* clause, Param v) {
    params.push_back(std::move(v));
    text += std::string(" AND ") + clause + "$" + std::to_string(params.size());
  };
  if (q.owner_id) where("owner_id=", p(*q.owner_id));
  if (q.agent_id) where("agent_id=", p(*q.agent_id));
  if (q.type) where("type=", p(*q.type));
  if (q.before) where("id<", p(*q.before));
  if (q.user_id) where("user_id=", p(*q.user_id));
  if (q.since) where("at>=", p(*q.since));
  if (q.until) where("at<", p(*q.until));
  params.push_back(p(static_cast<std::int64_t>(q.limit)));
  text += " ORDER BY id DESC LIMIT $" + std::to_string(params.size());
  return collect<AuditEvent>(conn_->run(text, params), [](const PgResult& r, int i) {
    AuditEvent e;
    e.id = r.i64(i, 0);
    e.at = r.i64(i, 1);
    e.type = r.text(i, 2);
    e.user_id = r.text(i, 3);
    e.owner_id = r.text(i, 4);
    e.agent_id = r.opt_text(i, 5);
    e.session_id = r.opt_text(i, 6);
    e.details = r.text(i, 7);
    return e;
  });
}

Result<std::string> PgStore::setting(const std::string& key) {
  auto r = conn_->run("SELECT value FROM settings WHERE key=$1", {p(key)});
  if (!r) return std::move(r).error();
  return r->rows() > 0 ? r->text(0, 0) : std::string();
}

Result<std::string> PgStore::init_setting(const std::string& key, const std::string& value) {
  if (auto st = conn_->exec("INSERT INTO settings (key, value) VALUES ($1,$2) ON CONFLICT (key) "
                            "DO NOTHING",
                            {p(key), p(value)});
      !st) {
    return std::move(st).error();
  }
  return setting(key);
}

Status PgStore::set_setting(const std::string& key, const std::string& value) {
  return conn_->exec(
      "INSERT INTO settings (key, value) VALUES ($1,$2) "
      "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
      {p(key), p(value)});
}

}  // namespace rx::server

namespace rx::server {

Result<std::int64_t> PgStore::add_recording(const std::string& agent_id, const RecordingRow& r) {
  auto res = conn_->run(
      "INSERT INTO recordings (agent_id, name, session_id, started_at) VALUES ($1,$2,$3,$4) "
      "RETURNING id",
      {p(agent_id), p(r.name), p(r.session_id), p(r.started_at)});
  if (!res) return std::move(res).error();
  return res->i64(0, 0);
}

Status PgStore::append_recording(std::int64_t id, std::int64_t first_seq,
                                 const std::vector<std::string>& chunks) {
  if (chunks.empty()) return {};
  // One round trip: the chunks (bytea, sent raw) and the new size together.
  std::string text = "WITH c AS (INSERT INTO recording_chunks (recording_id, seq, data) VALUES ";
  std::vector<Param> params = {p(id)};
  std::vector<int> binary = {0};
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    params.push_back(p(first_seq + static_cast<std::int64_t>(i)));
    params.push_back(chunks[i]);
    binary.push_back(0);
    binary.push_back(1);
    bytes += chunks[i].size();
    if (i > 0) text += ',';
    text += "($1,$" + std::to_string(params.size() - 1) + "::integer,$" +
            std::to_string(params.size()) + "::bytea)";
  }
  params.push_back(p(static_cast<std::int64_t>(bytes)));
  binary.push_back(0);
  text += ") UPDATE recordings SET bytes=bytes+$" + std::to_string(params.size()) + " WHERE id=$1";
  auto r = conn_->run(text, params, binary);
  if (!r) return std::move(r).error();
  if (r->affected() == 0) return Error(Errc::kNotFound, "the recording was removed");
  return {};
}

namespace {

constexpr const char* kRecordingColumns = "id, name, session_id, started_at, bytes";

RecordingRow read_recording(const PgResult& r, int i) {
  return {r.i64(i, 0), r.text(i, 1), r.text(i, 2), r.i64(i, 3),
          static_cast<std::uint64_t>(r.i64(i, 4))};
}

}  // namespace

Result<std::vector<RecordingRow>> PgStore::recordings_of(const std::string& agent_id) {
  return collect<RecordingRow>(
      conn_->run(
          sql("SELECT ", kRecordingColumns, " FROM recordings WHERE agent_id=$1 ORDER BY id DESC"),
          {p(agent_id)}),
      read_recording);
}

Result<std::optional<RecordingRow>> PgStore::recording_named(const std::string& agent_id,
                                                             const std::string& name) {
  return first<RecordingRow>(conn_->run(sql("SELECT ", kRecordingColumns,
                                            " FROM recordings WHERE agent_id=$1 AND name=$2"),
                                        {p(agent_id), p(name)}),
                             read_recording);
}

Result<std::vector<std::string>> PgStore::recording_chunks(std::int64_t id, std::int64_t first_seq,
                                                           std::size_t limit) {
  return collect<std::string>(  // raw bytes: the result is binary
      conn_->run("SELECT data FROM recording_chunks WHERE recording_id=$1 AND seq>=$2 ORDER BY seq "
                 "LIMIT $3",
                 {p(id), p(first_seq), p(static_cast<std::int64_t>(limit))}, {}, 1),
      [](const PgResult& r, int i) { return r.text(i, 0); });
}

Result<std::vector<std::string>> PgStore::prune_recordings(const std::string& agent_id,
                                                           std::size_t keep) {
  return collect<std::string>(
      conn_->run("DELETE FROM recordings WHERE agent_id=$1 AND id NOT IN (SELECT id FROM "
                 "recordings WHERE agent_id=$1 ORDER BY id DESC LIMIT $2) RETURNING name",
                 {p(agent_id), p(static_cast<std::int64_t>(keep))}),
      [](const PgResult& r, int i) { return r.text(i, 0); });
}

Status PgStore::delete_recording(const std::string& agent_id, const std::string& name) {
  return conn_->exec("DELETE FROM recordings WHERE agent_id=$1 AND name=$2",
                     {p(agent_id), p(name)});
}

Status PgStore::delete_recordings(const std::string& agent_id) {
  return conn_->exec("DELETE FROM recordings WHERE agent_id=$1", {p(agent_id)});
}

}  // namespace rx::server
