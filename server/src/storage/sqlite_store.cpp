// SPDX-License-Identifier: MIT
#include "rexec/server/storage/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>

#include "storage/columns.h"
#include "storage/write_queue.h"

namespace rx::server {

namespace {

// Schema migrations, applied in order; PRAGMA user_version records how many ran. Append only.
constexpr std::array<const char*, 5> kMigrations = {R"sql(
CREATE TABLE users (
  id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, tier TEXT NOT NULL,
  is_admin INTEGER NOT NULL DEFAULT 0, subscription_active INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, token_prefix TEXT NOT NULL,
  scopes TEXT NOT NULL, agent_id TEXT, expires_at INTEGER, revoked_at INTEGER,
  last_used_at INTEGER, created_at INTEGER NOT NULL);
CREATE INDEX api_tokens_user ON api_tokens(user_id);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', os TEXT NOT NULL DEFAULT '',
  arch TEXT NOT NULL DEFAULT '', shell TEXT NOT NULL DEFAULT '', distro TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL DEFAULT 'offline',
  mfa_locked INTEGER NOT NULL DEFAULT 0, connected_at INTEGER, last_ping INTEGER,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  system_info TEXT NOT NULL DEFAULT '', token_id TEXT);
CREATE INDEX agents_user ON agents(user_id, created_at);
CREATE TABLE agent_stats (
  agent_id TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE, at INTEGER NOT NULL,
  data TEXT NOT NULL);
CREATE INDEX agent_stats_agent ON agent_stats(agent_id, at);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql",
                                                    R"sql(
CREATE TABLE user_mfa (
  user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, secret TEXT NOT NULL,
  last_step INTEGER NOT NULL DEFAULT 0, enrolled_at INTEGER NOT NULL);
)sql",
                                                    R"sql(
CREATE TABLE audit_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, type TEXT NOT NULL,
  user_id TEXT NOT NULL, owner_id TEXT NOT NULL, agent_id TEXT, session_id TEXT,
  details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX audit_events_owner ON audit_events(owner_id, id);
CREATE INDEX audit_events_at ON audit_events(at);
)sql",
                                                    R"sql(
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
)sql",
                                                    R"sql(
CREATE INDEX agent_stats_at ON agent_stats(at);
)sql"};

Error db_error(sqlite3* db, const std::string& what) {
  return {Errc::kStorage, what + ": " + sqlite3_errmsg(db)};
}

}  // namespace

// A prepared statement, finalized on destruction.
class SqliteStore::Stmt {
 public:
  // On the loop thread's connection.
  Stmt(const SqliteStore& store, const char* sql) : Stmt(store, store.db_, sql) {}

  // On `db`, one of the store's connections.
  Stmt(const SqliteStore& store, sqlite3* db, const char* sql)
      : db_(db), errors_(store.errors_), writes_(store.writes_) {
    ok_ = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr) == SQLITE_OK;
  }

  ~Stmt() { sqlite3_finalize(stmt_); }

  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&&) = delete;
  Stmt& operator=(Stmt&&) = delete;

  // Binds the next parameter (1, 2, ... in the order of the calls to add()).
  template <class T>
  Stmt& add(const T& v) {
    return bind(++next_, v);
  }

  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }

  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }

  Stmt& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }

  template <class T>
  Stmt& bind(int i, const std::optional<T>& v) {
    if (v) return bind(i, *v);
    sqlite3_bind_null(stmt_, i);
    return *this;
  }

  // SQLITE_ROW → true, SQLITE_DONE → false, else an Error.
  Result<bool> step() {
    if (!ok_) {
      ++errors_;
      return db_error(db_, "prepare");
    }
    if (!stepped_ && sqlite3_stmt_readonly(stmt_) == 0) ++writes_;
    stepped_ = true;
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT) return Error(Errc::kExists, sqlite3_errmsg(db_));
    ++errors_;
    return db_error(db_, "step");
  }

  Status run() {
    auto r = step();
    if (!r) return std::move(r).error();
    return {};
  }

  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
                        : std::string();
  }

  [[nodiscard]] std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }

  [[nodiscard]] std::optional<std::int64_t> opt_i64(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return i64(col);
  }

  [[nodiscard]] std::optional<std::string> opt_text(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return text(col);
  }

 private:
  sqlite3* db_;
  std::atomic<std::uint64_t>& errors_;
  std::atomic<std::uint64_t>& writes_;
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
  bool stepped_ = false;
  int next_ = 0;
};

namespace {

User read_user(const SqliteStore::Stmt& s) {
  return {s.text(0), s.text(1), s.text(2), s.i64(3) != 0, s.i64(4) != 0, s.i64(5), s.text(6)};
}

ApiToken read_token(const SqliteStore::Stmt& s) {
  ApiToken t;
  t.id = s.text(0);
  t.user_id = s.text(1);
  t.name = s.text(2);
  t.token_hash = s.text(3);
  t.token_prefix = s.text(4);
  t.scopes = columns::split_json(s.text(5));
  t.agent_id = s.opt_text(6);
  t.expires_at = s.opt_i64(7);
  t.revoked_at = s.opt_i64(8);
  t.last_used_at = s.opt_i64(9);
  t.created_at = s.i64(10);
  return t;
}

Agent read_agent(const SqliteStore::Stmt& s) {
  Agent a;
  a.id = s.text(0);
  a.user_id = s.text(1);
  a.name = s.text(2);
  a.description = s.text(3);
  a.os = s.text(4);
  a.arch = s.text(5);
  a.shell = s.text(6);
  a.distro = s.text(7);
  a.tags = columns::split_json(s.text(8));
  a.status = s.text(9);
  a.mfa_locked = s.i64(10) != 0;
  a.connected_at = s.opt_i64(11);
  a.last_ping = s.opt_i64(12);
  a.created_at = s.i64(13);
  a.updated_at = s.i64(14);
  a.system_info = s.text(15);
  a.token_id = s.opt_text(16);
  return a;
}

// Every row of `s`, each turned into a T by `read`.
template <class T, class Read>
Result<std::vector<T>> collect(SqliteStore::Stmt& s, Read read) {
  std::vector<T> out;
  while (true) {
    auto row = s.step();
    if (!row) return std::move(row).error();
    if (!*row) return out;
    out.push_back(read(s));
  }
}

// The first row of `s`, if any.
template <class T, class Read>
Result<std::optional<T>> first(SqliteStore::Stmt& s, Read read) {
  auto row = s.step();
  if (!row) return std::move(row).error();
  return *row ? std::optional<T>(read(s)) : std::nullopt;
}

std::string sql(const char* head, const char* cols, const char* tail) {
  return std::string(head) + cols + tail;
}

}  // namespace

namespace {

// Runs `text` (no results) on `db`; the error is SQLite's message.
Status run_sql(sqlite3* db, const char* text) {
  char* err = nullptr;
  if (sqlite3_exec(db, text, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown error";
    sqlite3_free(err);
    return Error(Errc::kStorage, msg);
  }
  return {};
}

// One connection to `path`, set up as every connection of the store is.
Result<sqlite3*> connect(const std::string& path, std::atomic<std::uint64_t>& commits) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error(Errc::kStorage, "cannot open database " + path + ": " + why);
  }
  sqlite3_busy_timeout(db, 5000);
  // Every commit, explicit or not, as the database sees it (GET /metrics).
  sqlite3_commit_hook(
      db,
      [](void* count) {
        ++*static_cast<std::atomic<std::uint64_t>*>(count);
        return 0;
      },
      &commits);
  for (const char* pragma :
       {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL"}) {
    if (auto st = run_sql(db, pragma); !st) {
      sqlite3_close(db);
      return Error(Errc::kStorage, "cannot open database " + path + ": " + st.error().message);
    }
  }
  return db;
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path) {
  std::unique_ptr<SqliteStore> s(new SqliteStore(path));
  auto db = connect(path, s->commits_);
  if (!db) return std::move(db).error();
  s->db_ = *db;
  if (auto st = s->migrate(); !st) return std::move(st).error();
  // The writer thread's own connection: WAL lets the loop thread read while it writes. An
  // in-memory database exists only on its one connection, which the two threads then share
  // (SQLITE_OPEN_FULLMUTEX serialises them).
  if (path == ":memory:" || path.empty()) {
    s->writer_db_ = s->db_;
  } else {
    auto writer = connect(path, s->commits_);
    if (!writer) return std::move(writer).error();
    s->writer_db_ = *writer;
  }
  SqliteStore* raw = s.get();
  s->queue_ = std::make_unique<WriteQueue>(
      [raw](const AgentWrites& w, bool) { return raw->apply(w); }, s->errors_);
  return s;
}

SqliteStore::SqliteStore(std::string path) : path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  if (queue_) queue_->stop();  // what is queued is written first
  if (writer_db_ != db_) sqlite3_close(writer_db_);
  sqlite3_close(db_);
}

Status SqliteStore::write_agents(AgentWrites writes) { return queue_->push(std::move(writes)); }

void SqliteStore::flush() { queue_->flush(); }

Status SqliteStore::exec(const char* text) { return exec(db_, text); }

Status SqliteStore::exec(sqlite3* db, const char* text) {
  Status st = run_sql(db, text);
  if (!st) ++errors_;
  return st;
}

Status SqliteStore::ping() {
  Stmt s(*this, "SELECT 1");
  auto row = s.step();
  if (!row) return std::move(row).error();
  return {};
}

int SqliteStore::schema_version() const {
  Stmt s(*this, "PRAGMA user_version");
  auto row = s.step();
  return row && *row ? static_cast<int>(s.i64(0)) : -1;
}

Status SqliteStore::migrate() {
  for (int v = schema_version(); v < static_cast<int>(kMigrations.size()); ++v) {
    const std::string step = std::string("BEGIN;") + kMigrations[static_cast<std::size_t>(v)] +
                             "PRAGMA user_version=" + std::to_string(v + 1) + ";COMMIT;";
    if (auto st = exec(step.c_str()); !st) {
      (void)exec("ROLLBACK");
      return Error(Errc::kStorage,
                   "migration " + std::to_string(v + 1) + " failed: " + st.error().message);
    }
  }
  return {};
}

namespace {

// Rows per multi-row statement: 500 rows of at most 7 values stay far below SQLite's limit of
// 32,766 bound values, and a batch of 100,000 rows is then 200 statements.
constexpr std::size_t kRowsPerStatement = 500;

std::string placeholders(std::size_t rows, const char* row) {
  std::string out;
  out.reserve(rows * (std::strlen(row) + 1));
  for (std::size_t i = 0; i < rows; ++i) {
    if (i != 0) out += ',';
    out += row;
  }
  return out;
}

// Runs `head` + n × `row` + `tail` over `rows`, n at most kRowsPerStatement at a time: `pre`
// binds what comes before the rows' values, `bind` one row's.
template <class T, class Pre, class Bind>
Status each_chunk(const SqliteStore& store, sqlite3* db, const std::vector<T>& rows,
                  const char* head, const char* row, const char* tail, Pre pre, Bind bind) {
  for (std::size_t at = 0; at < rows.size(); at += kRowsPerStatement) {
    const std::size_t n = std::min(kRowsPerStatement, rows.size() - at);
    const std::string text = std::string(head) + placeholders(n, row) + tail;
    SqliteStore::Stmt s(store, db, text.c_str());
    pre(s);
    for (std::size_t i = at; i < at + n; ++i) bind(s, rows[i]);
    if (auto st = s.run(); !st) return st;
  }
  return {};
}

template <class T, class Bind>
Status each_chunk(const SqliteStore& store, sqlite3* db, const std::vector<T>& rows,
                  const char* head, const char* row, const char* tail, Bind bind) {
  return each_chunk(
      store, db, rows, head, row, tail, [](SqliteStore::Stmt&) {}, bind);
}

}  // namespace

// One batch in one transaction on the writer's connection (WriteQueue's thread).
Status SqliteStore::apply(const AgentWrites& w) {
  if (auto st = exec(writer_db_, "BEGIN IMMEDIATE"); !st) return st;
  auto body = [&]() -> Status {
    if (auto st = each_chunk(
            *this, writer_db_, w.audit,
            "INSERT INTO audit_events (at, type, user_id, owner_id, agent_id, session_id, "
            "details) VALUES ",
            "(?,?,?,?,?,?,?)", "",
            [](Stmt& s, const AuditEvent& e) {
              s.add(e.at)
                  .add(e.type)
                  .add(e.user_id)
                  .add(e.owner_id)
                  .add(e.agent_id)
                  .add(e.session_id)
                  .add(e.details);
            });
        !st) {
      return st;
    }
    const auto id_at = [](Stmt& s, const std::pair<std::string, Millis>& r) {
      s.add(r.first).add(r.second);
    };
    if (auto st = each_chunk(*this, writer_db_, w.changes(true),
                             "UPDATE agents SET status='online', connected_at=v.column2, "
                             "last_ping=v.column2 FROM (VALUES ",
                             "(?,?)", ") AS v WHERE agents.id=v.column1", id_at);
        !st) {
      return st;
    }
    if (auto st = each_chunk(*this, writer_db_, w.changes(false),
                             "UPDATE agents SET status='offline', updated_at=v.column2 FROM "
                             "(VALUES ",
                             "(?,?)", ") AS v WHERE agents.id=v.column1", id_at);
        !st) {
      return st;
    }
    if (auto st = each_chunk(
            *this, writer_db_, w.heartbeats, "UPDATE agents SET last_ping=? WHERE id IN (", "?",
            ")", [&w](Stmt& s) { s.add(w.heartbeat_at); },
            [](Stmt& s, const std::string& id) { s.add(id); });
        !st) {
      return st;
    }
    if (auto st = each_chunk(*this, writer_db_, w.system_info,
                             "UPDATE agents SET system_info=v.column2 FROM (VALUES ", "(?,?)",
                             ") AS v WHERE agents.id=v.column1",
                             [](Stmt& s, const std::pair<std::string, std::string>& r) {
                               s.add(r.first).add(r.second);
                             });
        !st) {
      return st;
    }
    // A sample of an agent deleted meanwhile is dropped, not refused by the foreign key.
    if (auto st = each_chunk(
            *this, writer_db_, w.stats,
            "INSERT INTO agent_stats (agent_id, at, data) SELECT v.column1, "
            "v.column2, v.column3 FROM (VALUES ",
            "(?,?,?)", ") AS v WHERE EXISTS (SELECT 1 FROM agents WHERE agents.id=v.column1)",
            [](Stmt& s, const StatsSample& r) { s.add(r.agent_id).add(r.at).add(r.json); });
        !st) {
      return st;
    }
    if (auto st = each_chunk(*this, writer_db_, w.token_uses,
                             "UPDATE api_tokens SET last_used_at=v.column2 FROM (VALUES ", "(?,?)",
                             ") AS v WHERE api_tokens.id=v.column1", id_at);
        !st) {
      return st;
    }
    if (w.prune_stats_before) {
      Stmt s(*this, writer_db_, "DELETE FROM agent_stats WHERE at<?");
      if (auto st = s.add(*w.prune_stats_before).run(); !st) return st;
    }
    if (w.prune_audit_before) {
      Stmt s(*this, writer_db_, "DELETE FROM audit_events WHERE at<?");
      if (auto st = s.add(*w.prune_audit_before).run(); !st) return st;
    }
    return {};
  };
  if (auto st = body(); !st) {
    (void)exec(writer_db_, "ROLLBACK");
    return st;
  }
  return exec(writer_db_, "COMMIT");
}

Status SqliteStore::create_user(const User& u) {
  Stmt s(*this, sql("INSERT INTO users (", columns::kUser, ") VALUES (?,?,?,?,?,?,?)").c_str());
  return s.bind(1, u.id)
      .bind(2, u.username)
      .bind(3, u.tier)
      .bind(4, u.is_admin)
      .bind(5, u.subscription_active)
      .bind(6, u.created_at)
      .bind(7, u.email)
      .run();
}

Result<std::optional<User>> SqliteStore::user_by_id(const std::string& id) {
  Stmt s(*this, sql("SELECT ", columns::kUser, " FROM users WHERE id=?").c_str());
  s.bind(1, id);
  return first<User>(s, read_user);
}

Result<std::optional<User>> SqliteStore::user_by_name(const std::string& username) {
  Stmt s(*this, sql("SELECT ", columns::kUser, " FROM users WHERE username=?").c_str());
  s.bind(1, username);
  return first<User>(s, read_user);
}

Result<std::vector<User>> SqliteStore::list_users() {
  Stmt s(*this, sql("SELECT ", columns::kUser, " FROM users ORDER BY created_at").c_str());
  return collect<User>(s, read_user);
}

Status SqliteStore::create_token(const ApiToken& t) {
  Stmt s(*this, "INSERT INTO api_tokens VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  return s.bind(1, t.id)
      .bind(2, t.user_id)
      .bind(3, t.name)
      .bind(4, t.token_hash)
      .bind(5, t.token_prefix)
      .bind(6, columns::join_json(t.scopes))
      .bind(7, t.agent_id)
      .bind(8, t.expires_at)
      .bind(9, t.revoked_at)
      .bind(10, t.last_used_at)
      .bind(11, t.created_at)
      .run();
}

Result<std::optional<ApiToken>> SqliteStore::token_by_hash(const std::string& hash) {
  Stmt s(*this, sql("SELECT ", columns::kToken, " FROM api_tokens WHERE token_hash=?").c_str());
  s.bind(1, hash);
  return first<ApiToken>(s, read_token);
}

Result<std::vector<ApiToken>> SqliteStore::tokens_of(const std::string& user_id) {
  flush();  // a token used a moment ago shows its last use
  Stmt s(*this, sql("SELECT ", columns::kToken,
                    " FROM api_tokens WHERE user_id=? ORDER BY created_at DESC")
                    .c_str());
  s.bind(1, user_id);
  return collect<ApiToken>(s, read_token);
}

Result<bool> SqliteStore::revoke_token(const std::string& id, const std::string& user_id,
                                       Millis now) {
  Stmt s(*this,
         "UPDATE api_tokens SET revoked_at=? WHERE id=? AND user_id=? AND revoked_at IS NULL");
  if (auto st = s.bind(1, now).bind(2, id).bind(3, user_id).run(); !st)
    return std::move(st).error();
  return sqlite3_changes(db_) > 0;
}

Result<std::vector<std::string>> SqliteStore::revoke_agent_tokens(const std::string& agent_id,
                                                                  Millis now) {
  std::vector<std::string> ids;
  {
    Stmt q(*this, "SELECT id FROM api_tokens WHERE agent_id=? AND revoked_at IS NULL");
    q.bind(1, agent_id);
    while (true) {
      auto row = q.step();
      if (!row) return std::move(row).error();
      if (!*row) break;
      ids.push_back(q.text(0));
    }
  }
  Stmt s(*this, "UPDATE api_tokens SET revoked_at=? WHERE agent_id=? AND revoked_at IS NULL");
  if (auto st = s.bind(1, now).bind(2, agent_id).run(); !st) return std::move(st).error();
  return ids;
}

Status SqliteStore::create_agent(const Agent& a) {
  Stmt s(*this, "INSERT INTO agents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  return s.bind(1, a.id)
      .bind(2, a.user_id)
      .bind(3, a.name)
      .bind(4, a.description)
      .bind(5, a.os)
      .bind(6, a.arch)
      .bind(7, a.shell)
      .bind(8, a.distro)
      .bind(9, columns::join_json(a.tags))
      .bind(10, a.status)
      .bind(11, a.mfa_locked)
      .bind(12, a.connected_at)
      .bind(13, a.last_ping)
      .bind(14, a.created_at)
      .bind(15, a.updated_at)
      .bind(16, a.system_info)
      .bind(17, a.token_id)
      .run();
}

Result<std::optional<Agent>> SqliteStore::agent(const std::string& id) {
  Stmt s(*this, sql("SELECT ", columns::kAgent, " FROM agents WHERE id=?").c_str());
  s.bind(1, id);
  return first<Agent>(s, read_agent);
}

Result<std::vector<Agent>> SqliteStore::agents_of(const std::string& user_id) {
  Stmt s(*this, sql("SELECT ", columns::kAgent,
                    " FROM agents WHERE user_id=? ORDER BY created_at DESC, rowid DESC")
                    .c_str());
  s.bind(1, user_id);
  return collect<Agent>(s, read_agent);
}

Result<int> SqliteStore::count_agents(const std::string& user_id) {
  Stmt s(*this, "SELECT COUNT(*) FROM agents WHERE user_id=?");
  auto row = s.bind(1, user_id).step();
  if (!row) return std::move(row).error();
  return static_cast<int>(s.i64(0));
}

Status SqliteStore::update_agent(const std::string& id, const std::string& name,
                                 const std::string& description, Millis now) {
  Stmt s(*this, "UPDATE agents SET name=?, description=?, updated_at=? WHERE id=?");
  return s.bind(1, name).bind(2, description).bind(3, now).bind(4, id).run();
}

Status SqliteStore::set_agent_tags(const std::string& id, const std::vector<std::string>& tags,
                                   Millis now) {
  Stmt s(*this, "UPDATE agents SET tags=?, updated_at=? WHERE id=?");
  return s.bind(1, columns::join_json(tags)).bind(2, now).bind(3, id).run();
}

Status SqliteStore::delete_agent(const std::string& id) {
  Stmt s(*this, "DELETE FROM agents WHERE id=?");
  return s.bind(1, id).run();
}

Status SqliteStore::set_all_offline() { return exec("UPDATE agents SET status='offline'"); }

Result<std::vector<std::pair<Millis, std::string>>> SqliteStore::stats_of(
    const std::string& agent_id, std::size_t limit) {
  Stmt s(*this, "SELECT at, data FROM agent_stats WHERE agent_id=? ORDER BY at DESC LIMIT ?");
  s.bind(1, agent_id).bind(2, static_cast<std::int64_t>(limit));
  std::vector<std::pair<Millis, std::string>> out;
  while (true) {
    auto row = s.step();
    if (!row) return std::move(row).error();
    if (!*row) return out;
    out.emplace_back(s.i64(0), s.text(1));
  }
}

Result<std::string> SqliteStore::setting(const std::string& key) {
  Stmt s(*this, "SELECT value FROM settings WHERE key=?");
  auto row = s.bind(1, key).step();
  if (!row) return std::move(row).error();
  return *row ? s.text(0) : std::string();
}

Status SqliteStore::set_mfa(const std::string& user_id, const std::string& secret_base32,
                            Millis now) {
  Stmt s(*this,
         "INSERT INTO user_mfa VALUES (?,?,0,?) ON CONFLICT(user_id) DO UPDATE SET "
         "secret=excluded.secret, last_step=0, enrolled_at=excluded.enrolled_at");
  return s.bind(1, user_id).bind(2, secret_base32).bind(3, now).run();
}

Result<std::optional<MfaRecord>> SqliteStore::mfa_of(const std::string& user_id) {
  Stmt s(*this, "SELECT user_id, secret, last_step, enrolled_at FROM user_mfa WHERE user_id=?");
  s.bind(1, user_id);
  return first<MfaRecord>(s, [](const Stmt& r) {
    MfaRecord m;
    m.user_id = r.text(0);
    m.secret_base32 = r.text(1);
    m.last_step = r.i64(2);
    m.enrolled_at = r.i64(3);
    return m;
  });
}

Result<bool> SqliteStore::use_mfa_step(const std::string& user_id, std::int64_t step) {
  Stmt s(*this, "UPDATE user_mfa SET last_step=? WHERE user_id=? AND last_step<?");
  if (auto st = s.bind(1, step).bind(2, user_id).bind(3, step).run(); !st) {
    return std::move(st).error();
  }
  return sqlite3_changes(db_) > 0;
}

Status SqliteStore::set_mfa_locked(const std::string& agent_id, bool locked) {
  Stmt s(*this, "UPDATE agents SET mfa_locked=? WHERE id=?");
  return s.bind(1, locked).bind(2, agent_id).run();
}

Result<std::vector<AuditEvent>> SqliteStore::audit_events(const AuditQuery& q) {
  flush();  // what was done a moment ago is in the answer
  // Only the filters asked for, so the (owner_id, id) index serves a user's newest events.
  std::string text =
      "SELECT id, at, type, user_id, owner_id, agent_id, session_id, details FROM audit_events "
      "WHERE 1=1";
  if (q.owner_id) text += " AND owner_id=?1";
  if (q.agent_id) text += " AND agent_id=?2";
  if (q.type) text += " AND type=?3";
  if (q.before) text += " AND id<?4";
  if (q.user_id) text += " AND user_id=?6";
  if (q.since) text += " AND at>=?7";
  if (q.until) text += " AND at<?8";
  text += " ORDER BY id DESC LIMIT ?5";
  Stmt s(*this, text.c_str());
  if (q.owner_id) s.bind(1, *q.owner_id);
  if (q.agent_id) s.bind(2, *q.agent_id);
  if (q.type) s.bind(3, *q.type);
  if (q.before) s.bind(4, *q.before);
  s.bind(5, static_cast<std::int64_t>(q.limit));
  if (q.user_id) s.bind(6, *q.user_id);
  if (q.since) s.bind(7, *q.since);
  if (q.until) s.bind(8, *q.until);
  return collect<AuditEvent>(s, [](const Stmt& r) {
    AuditEvent e;
    e.id = r.i64(0);
    e.at = r.i64(1);
    e.type = r.text(2);
    e.user_id = r.text(3);
    e.owner_id = r.text(4);
    e.agent_id = r.opt_text(5);
    e.session_id = r.opt_text(6);
    e.details = r.text(7);
    return e;
  });
}

Result<std::string> SqliteStore::init_setting(const std::string& key, const std::string& value) {
  Stmt s(*this, "INSERT INTO settings VALUES (?,?) ON CONFLICT(key) DO NOTHING");
  if (auto st = s.bind(1, key).bind(2, value).run(); !st) return std::move(st).error();
  return setting(key);
}

Status SqliteStore::set_setting(const std::string& key, const std::string& value) {
  Stmt s(*this,
         "INSERT INTO settings VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  return s.bind(1, key).bind(2, value).run();
}

}  // namespace rx::server
