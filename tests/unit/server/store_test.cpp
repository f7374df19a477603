// SPDX-License-Identifier: MIT
// Both Store backends on real databases: SQLite on a file, PostgreSQL on a fresh database of
// the test cluster (tests/fixtures/pg_cluster.sh). Every contract test runs on each.
#include "rexec/server/storage/pg_store.h"
#include "rexec/server/storage/sqlite_store.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "pg_test_db.h"

using namespace rx::server;

namespace {

struct TempDb {
  std::string dir;

  TempDb() {
    char tmpl[] = "/tmp/rexec-store-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
  }

  ~TempDb() { std::filesystem::remove_all(dir); }

  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;
  TempDb(TempDb&&) = delete;
  TempDb& operator=(TempDb&&) = delete;

  [[nodiscard]] std::string path() const { return dir + "/rexec.db"; }
};

// One backend under test. `store` is null when PostgreSQL is not available here and not
// required (REXEC_REQUIRE_PG).
struct Backend {
  std::unique_ptr<TempDb> file;
  std::unique_ptr<rx::test::PgTestDb> pg;
  std::unique_ptr<Store> store;
};

// The test cluster's URL; "" (after a warning) when it is not running and not required.
std::string pg_cluster_or_skip() {
  std::string cluster = rx::test::pg_cluster_url();
  if (cluster.empty()) {
    if (rx::test::pg_required()) FAIL("REXEC_REQUIRE_PG is set but no test cluster runs");
    WARN("PostgreSQL test cluster not running: the PostgreSQL part is skipped");
  }
  return cluster;
}

Backend open_backend(const std::string& kind) {
  Backend b;
  if (kind == "sqlite") {
    b.file = std::make_unique<TempDb>();
    auto s = SqliteStore::open(b.file->path());
    REQUIRE(s);
    b.store = std::move(*s);
    return b;
  }
  const std::string cluster = pg_cluster_or_skip();
  if (cluster.empty()) return b;
  b.pg = std::make_unique<rx::test::PgTestDb>(cluster);
  auto s = PgStore::open(b.pg->url());
  if (!s) FAIL(s.error().message);
  b.store = std::move(*s);
  return b;
}

Agent make_agent(const std::string& id, Millis created) {
  Agent a;
  a.id = id;
  a.user_id = "u1";
  a.name = "box-" + id;
  a.tags = {"x", "y"};
  a.created_at = a.updated_at = created;
  return a;
}

}  // namespace

TEST_CASE("migrations run once and reopening keeps the data", "[server]") {
  TempDb t;
  {
    auto s = SqliteStore::open(t.path());
    REQUIRE(s);
    CHECK((*s)->schema_version() == 5);
    REQUIRE((*s)->create_user({"u1", "alice", "free", false, false, 1, "alice@example.com"}));
  }
  auto again = SqliteStore::open(t.path());
  REQUIRE(again);
  CHECK((*again)->schema_version() == 5);
  auto u = (*again)->user_by_name("alice");
  REQUIRE(u);
  REQUIRE(u->has_value());
  CHECK((*u)->id == "u1");
  CHECK((*u)->email == "alice@example.com");
  CHECK((*again)->create_user({"u2", "alice", "free", false, false, 1, ""}).error().code ==
        rx::Errc::kExists);
}

// A database of schema version 2 (before audit_events and users.email), as a server of that
// version left it, is upgraded in place when a newer server opens it: its records stay.
TEST_CASE("a version 2 database is upgraded to audit events and emails, keeping its data",
          "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  REQUIRE(b.store->create_user({"u1", "alice", "free", false, false, 1, ""}));
  b.store.reset();
  // Back to version 2, as if the migrations after it had never run.
  const std::string cmd =
      kind == "sqlite" ? "/usr/bin/sqlite3 " + b.file->path() +
                             " 'DROP TABLE audit_events; ALTER TABLE users DROP COLUMN email;"
                             " DROP INDEX agent_stats_at; PRAGMA user_version=2;'"
                       : "psql -q '" + b.pg->url() +
                             "' -c 'DROP TABLE audit_events; ALTER TABLE users DROP COLUMN email;"
                             " DROP TABLE recording_chunks, recordings; DROP INDEX agent_stats_at;"
                             " DELETE FROM rexec_schema WHERE version>=3;'";
  REQUIRE(std::system(cmd.c_str()) == 0);  // NOLINT(cert-env33-c): test set-up
  std::unique_ptr<Store> again;
  int version = 0;
  if (kind == "sqlite") {
    auto s = SqliteStore::open(b.file->path());
    REQUIRE(s);
    version = (*s)->schema_version();
    again = std::move(*s);
  } else {
    auto s = PgStore::open(b.pg->url());
    REQUIRE(s);
    version = (*s)->schema_version();
    again = std::move(*s);
  }
  CHECK(version == (kind == "sqlite" ? 5 : 6));  // PostgreSQL: also recordings (RecordingRows)
  CHECK((*again->user_by_name("alice"))->id == "u1");
  CHECK((*again->user_by_name("alice"))->email.empty());
  REQUIRE(again->create_user({"u2", "bob", "free", false, false, 2, "bob@example.com"}));
  CHECK((*again->user_by_id("u2"))->email == "bob@example.com");
  AuditEvent e;
  e.at = 5;
  e.type = "token_created";
  e.user_id = e.owner_id = "u1";
  REQUIRE(again->add_audit(e));
  again->flush();
  CHECK(again->audit_events({})->size() == 1);
}

TEST_CASE("audit events: newest first, filters, paging, owners, retention", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  const auto event = [&](Millis at, const std::string& type, const std::string& owner,
                         std::optional<std::string> agent) {
    AuditEvent e;
    e.at = at;
    e.type = type;
    e.user_id = owner;
    e.owner_id = owner;
    e.agent_id = std::move(agent);
    e.details = R"({"n":)" + std::to_string(at) + "}";
    REQUIRE(st.add_audit(e));
  };
  event(10, "agent_registered", "u1", "a1");
  event(20, "terminal_opened", "u1", "a1");
  event(30, "token_created", "u2", std::nullopt);
  event(40, "terminal_closed", "u1", "a2");
  event(50, "terminal_opened", "u1", "a2");
  st.flush();
  AuditQuery all;
  auto rows = st.audit_events(all);
  REQUIRE(rows);
  REQUIRE(rows->size() == 5);
  CHECK(rows->front().at == 50);
  CHECK(rows->back().at == 10);
  CHECK(rows->front().id > rows->back().id);
  CHECK(rows->back().details == R"({"n":10})");
  CHECK(rows->back().agent_id == std::optional<std::string>("a1"));
  CHECK_FALSE(rows->back().session_id);
  CHECK_FALSE((*rows)[2].agent_id);

  AuditQuery mine;
  mine.owner_id = "u1";
  CHECK(st.audit_events(mine)->size() == 4);
  mine.agent_id = "a2";
  CHECK(st.audit_events(mine)->size() == 2);
  mine.type = "terminal_opened";
  rows = st.audit_events(mine);
  REQUIRE(rows->size() == 1);
  CHECK(rows->front().at == 50);

  // Paging: two at a time, by id.
  AuditQuery page;
  page.owner_id = "u1";
  page.limit = 2;
  auto first = st.audit_events(page);
  REQUIRE(first->size() == 2);
  page.before = first->back().id;
  auto second = st.audit_events(page);
  REQUIRE(second->size() == 2);
  CHECK(second->front().at == 20);
  CHECK(second->back().at == 10);

  REQUIRE(st.prune_audit(30));
  st.flush();
  rows = st.audit_events(all);
  REQUIRE(rows->size() == 3);
  CHECK(rows->back().at == 30);
}

TEST_CASE("an unwritable database path is a clear error", "[server]") {
  auto s = SqliteStore::open("/proc/rexec/no/such/dir/db");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == rx::Errc::kStorage);
  CHECK(s.error().message.find("/proc/rexec/no/such/dir/db") != std::string::npos);
}

TEST_CASE("agents: newest first, counts, updates, status, delete", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  CHECK(st.agents_of("u1")->empty());
  REQUIRE(st.create_agent(make_agent("a", 100)));
  REQUIRE(st.create_agent(make_agent("b", 300)));
  REQUIRE(st.create_agent(make_agent("c", 200)));
  auto list = st.agents_of("u1");
  REQUIRE(list);
  REQUIRE(list->size() == 3);
  CHECK((*list)[0].id == "b");
  CHECK((*list)[2].id == "a");
  CHECK((*list)[0].tags == std::vector<std::string>{"x", "y"});
  CHECK(*st.count_agents("u1") == 3);
  REQUIRE(st.update_agent("a", "renamed", "desc", 400));
  REQUIRE(st.set_online("a", 500));
  REQUIRE(st.set_system_info("a", R"({"hostname":"h"})"));
  st.flush();  // PostgreSQL writes online/offline, heartbeats and stats behind
  auto a = st.agent("a");
  REQUIRE(a);
  CHECK((*a)->name == "renamed");
  CHECK((*a)->status == "online");
  CHECK(*(*a)->connected_at == 500);
  CHECK((*a)->system_info == R"({"hostname":"h"})");
  // Heartbeats are written in batches; unknown ids are ignored.
  REQUIRE(st.touch_agents({"b", "c", "nope"}, 700));
  st.flush();
  CHECK(*(*st.agent("b"))->last_ping == 700);
  CHECK(*(*st.agent("c"))->last_ping == 700);
  CHECK((*st.agent("a"))->last_ping != std::optional<Millis>(700));  // not in the batch
  REQUIRE(st.touch_agents({}, 800));
  REQUIRE(st.set_all_offline());
  CHECK((*st.agent("a"))->status == "offline");
  REQUIRE(st.delete_agent("a"));
  CHECK_FALSE(st.agent("a")->has_value());
}

TEST_CASE("tokens: lookup by hash, revoke by owner, revoke an agent's tokens", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  REQUIRE(st.create_user({"u2", "bob", "free", false, false, 1, ""}));
  ApiToken tok;
  tok.id = "t1";
  tok.user_id = "u1";
  tok.name = "agent-x";
  tok.token_hash = "h1";
  tok.token_prefix = "rexec_000000";
  tok.scopes = {"agent"};
  tok.agent_id = "a1";
  tok.created_at = 5;
  REQUIRE(st.create_token(tok));
  auto found = st.token_by_hash("h1");
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->scopes == std::vector<std::string>{"agent"});
  CHECK_FALSE(*st.revoke_token("t1", "u2", 9));  // not bob's
  auto ids = st.revoke_agent_tokens("a1", 10);
  REQUIRE(ids);
  CHECK(*ids == std::vector<std::string>{"t1"});
  CHECK(*(*st.token_by_hash("h1"))->revoked_at == 10);
  CHECK_FALSE(*st.revoke_token("t1", "u1", 11));  // already revoked
}

TEST_CASE("stats older than the cutoff go, for every agent at once", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  REQUIRE(st.create_agent(make_agent("a", 1)));
  REQUIRE(st.create_agent(make_agent("b", 2)));
  for (int i = 0; i < 20; ++i) {
    REQUIRE(st.add_stats("a", 1000 + i, "{\"i\":" + std::to_string(i) + "}"));
    REQUIRE(st.add_stats("b", 1000 + i, "{}"));
  }
  REQUIRE(st.prune_stats(1005));
  st.flush();
  auto rows = st.stats_of("a", 10);  // the newest 10, newest first
  REQUIRE(rows);
  REQUIRE(rows->size() == 10);
  CHECK(rows->front().first == 1019);
  CHECK(rows->front().second == "{\"i\":19}");
  CHECK(rows->back().first == 1010);
  CHECK(st.stats_of("a", 100)->size() == 15);
  CHECK(st.stats_of("b", 100)->size() == 15);
  REQUIRE(st.prune_stats(1015));
  st.flush();
  CHECK(st.stats_of("a", 100)->size() == 5);
  CHECK(st.stats_of("b", 100)->size() == 5);
}

TEST_CASE("a storm of agent writes reaches the database in a few statements", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  constexpr int kAgents = 2000;
  std::vector<std::string> ids;
  for (int i = 0; i < kAgents; ++i) {
    ids.push_back("storm-" + std::to_string(i));
    REQUIRE(st.create_agent(make_agent(ids.back(), i)));
  }
  st.flush();
  const std::uint64_t w0 = st.write_statements();
  const std::uint64_t c0 = st.commits();
  // What 2,000 agents reconnecting at once cause: offline, online, system info, a stats
  // sample and an audit event each, all within a few milliseconds.
  for (int i = 0; i < kAgents; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    REQUIRE(st.set_offline(id, 10));
    REQUIRE(st.set_online(id, 20 + i));
    REQUIRE(st.set_system_info(id, "{\"hostname\":\"h" + std::to_string(i) + "\"}"));
    REQUIRE(st.add_stats(id, 30, "{}"));
    AuditEvent e;
    e.at = 40;
    e.type = "agent_connected";
    e.user_id = e.owner_id = "u1";
    e.agent_id = id;
    REQUIRE(st.add_audit(e));
  }
  st.flush();
  CHECK(st.error_count() == 0);
  const std::uint64_t writes = st.write_statements() - w0;
  const std::uint64_t commits = st.commits() - c0;
  INFO(writes << " statements, " << commits << " commits");
  // One statement per agent would be 10,000; a batch is a handful of multi-row statements.
  CHECK(writes <= 40);
  CHECK(commits <= 8);
  for (const int i : {0, 777, kAgents - 1}) {
    const auto a = *st.agent(ids[static_cast<std::size_t>(i)]);
    REQUIRE(a);
    CHECK(a->status == "online");
    CHECK(a->system_info == "{\"hostname\":\"h" + std::to_string(i) + "\"}");
    CHECK(st.stats_of(a->id, 10)->size() == 1);
  }
  AuditQuery q;
  q.owner_id = "u1";
  q.limit = 1000;
  auto events = st.audit_events(q);
  REQUIRE(events);
  CHECK(events->size() == 1000);
}

TEST_CASE("mfa: enrol, each time step once, re-enrol resets, lock flag", "[server][mfa]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& db = *b.store;
  REQUIRE(db.create_user({"u1", "alice", "free", false, false, 1, ""}));
  CHECK_FALSE(*db.mfa_of("u1"));
  REQUIRE(db.set_mfa("u1", "SECRETA", 10));
  auto m = db.mfa_of("u1");
  REQUIRE(*m);
  CHECK((*m)->secret_base32 == "SECRETA");
  CHECK((*m)->last_step == 0);
  CHECK(*db.use_mfa_step("u1", 100));
  CHECK_FALSE(*db.use_mfa_step("u1", 100));  // the same code again: a replay
  CHECK_FALSE(*db.use_mfa_step("u1", 99));   // an older one too
  CHECK(*db.use_mfa_step("u1", 101));
  REQUIRE(db.set_mfa("u1", "SECRETB", 20));  // re-enrol
  CHECK((*db.mfa_of("u1"))->secret_base32 == "SECRETB");
  CHECK(*db.use_mfa_step("u1", 5));
  CHECK_FALSE(*db.use_mfa_step("nobody", 5));

  REQUIRE(db.create_agent(make_agent("a1", 1)));
  REQUIRE(db.set_mfa_locked("a1", true));
  CHECK((*db.agent("a1"))->mfa_locked);
  REQUIRE(db.set_mfa_locked("a1", false));
  CHECK_FALSE((*db.agent("a1"))->mfa_locked);
}

TEST_CASE("settings: set overwrites, init keeps the first value", "[server]") {
  const std::string kind = GENERATE(as<std::string>{}, "sqlite", "postgres");
  INFO(kind);
  Backend b = open_backend(kind);
  if (!b.store) return;
  Store& st = *b.store;
  CHECK(st.setting("k")->empty());
  CHECK(*st.init_setting("k", "first") == "first");
  CHECK(*st.init_setting("k", "second") == "first");
  REQUIRE(st.set_setting("k", "third"));
  CHECK(*st.setting("k") == "third");
  CHECK(st.describe().find(kind == "sqlite" ? "rexec.db" : "db=rx_") != std::string::npos);
}

TEST_CASE("postgres: migrations run once, also when instances start together", "[server][pg]") {
  const std::string cluster = pg_cluster_or_skip();
  if (cluster.empty()) return;
  rx::test::PgTestDb db(cluster);
  std::vector<std::unique_ptr<PgStore>> stores(4);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < stores.size(); ++i) {
    threads.emplace_back([&, i] {
      auto s = PgStore::open(db.url());
      if (s) {
        stores[i] = std::move(*s);
      } else {
        errors[i] = s.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < stores.size(); ++i) {
    INFO(errors[i]);
    REQUIRE(stores[i]);
    CHECK(stores[i]->schema_version() == 6);
  }
  // Each instance proposes its own secret; all of them keep the one that won.
  std::set<std::string> secrets;
  for (std::size_t i = 0; i < stores.size(); ++i) {
    secrets.insert(*stores[i]->init_setting("jwt_secret", "secret-" + std::to_string(i)));
  }
  CHECK(secrets.size() == 1);
  REQUIRE(stores[0]->create_user({"u1", "alice", "free", false, false, 1, ""}));
  stores.clear();
  auto again = PgStore::open(db.url());
  REQUIRE(again);
  CHECK((*again)->schema_version() == 6);
  CHECK((*again)->user_by_name("alice")->has_value());
  CHECK((*again)->create_user({"u2", "alice", "free", false, false, 1, ""}).error().code ==
        rx::Errc::kExists);
}

TEST_CASE("postgres: a wrong URL is a clear error without the password", "[server][pg]") {
  auto s = PgStore::open("postgres://rexec:hunter2@127.0.0.1:1/nope?connect_timeout=2");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == rx::Errc::kStorage);
  CHECK(s.error().message.find("cannot connect to PostgreSQL") != std::string::npos);
  CHECK(s.error().message.find("hunter2") == std::string::npos);
}

TEST_CASE("postgres: writes behind keep their order and survive a flood", "[server][pg]") {
  const std::string cluster = pg_cluster_or_skip();
  if (cluster.empty()) return;
  rx::test::PgTestDb db(cluster);
  auto s = PgStore::open(db.url());
  REQUIRE(s);
  PgStore& st = **s;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back("agent-" + std::to_string(i) + "\"quoted\"");  // array literal escaping
    REQUIRE(st.create_agent(make_agent(ids.back(), i)));
  }
  // Online then offline then online again: the last one wins, as it would on SQLite.
  for (const auto& id : ids) {
    REQUIRE(st.set_online(id, 10));
    REQUIRE(st.set_offline(id, 11));
  }
  REQUIRE(st.set_online(ids[7], 12));
  for (int round = 0; round < 50; ++round) REQUIRE(st.touch_agents(ids, 100 + round));
  for (int i = 0; i < 30; ++i) REQUIRE(st.add_stats(ids[0], 1000 + i, "{}"));
  REQUIRE(st.prune_stats(1010));  // keeps 1010..1029
  REQUIRE(st.delete_agent(ids[1]));
  REQUIRE(st.add_stats(ids[1], 5, "{}"));  // deleted meanwhile: dropped, not an error
  st.flush();
  CHECK(st.error_count() == 0);
  CHECK((*st.agent(ids[7]))->status == "online");
  CHECK((*st.agent(ids[8]))->status == "offline");
  CHECK(*(*st.agent(ids[199]))->last_ping == 149);
  CHECK(st.stats_of(ids[0], 100)->size() == 20);
  CHECK(st.stats_of(ids[1], 100)->empty());
}

TEST_CASE("postgres: recordings are chunk rows, raw bytes, pruned and deleted with the agent",
          "[server][pg]") {
  Backend b = open_backend("postgres");
  if (!b.store) return;
  Store& st = *b.store;
  RecordingRows* rows = st.recording_rows();
  REQUIRE(rows != nullptr);
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1, ""}));
  REQUIRE(st.create_agent(make_agent("a1", 1)));
  CHECK(rows->add_recording("nope", {0, "main-x.cast", "main", 1, 0}).error().code ==
        rx::Errc::kExists);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = rows->add_recording("a1", {0, "main-" + std::to_string(i) + ".cast", "main", i, 0});
    REQUIRE(id);
    ids.push_back(*id);
  }
  // Every byte value survives (bytea sent and read raw), in order, over two appends.
  std::string all(256, '\0');
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<char>(i);
  REQUIRE(rows->append_recording(ids[0], 0, {all, std::string("\0x", 2)}));
  REQUIRE(rows->append_recording(ids[0], 2, {"tail"}));
  CHECK(rows->append_recording(ids[0], 2, {"again"}).error().code == rx::Errc::kExists);
  auto row = rows->recording_named("a1", "main-0.cast");
  REQUIRE(row);
  REQUIRE(*row);
  CHECK((*row)->bytes == 256 + 2 + 4);
  auto first = rows->recording_chunks(ids[0], 0, 2);
  REQUIRE(first);
  REQUIRE(first->size() == 2);
  CHECK((*first)[0] == all);
  CHECK((*first)[1] == std::string("\0x", 2));
  auto rest = rows->recording_chunks(ids[0], 2, 2);
  REQUIRE(rest);
  CHECK(*rest == std::vector<std::string>{"tail"});
  // Newest first; pruning keeps the newest, and takes the chunks with the rows.
  auto list = rows->recordings_of("a1");
  REQUIRE(list);
  REQUIRE(list->size() == 3);
  CHECK((*list)[0].name == "main-2.cast");
  auto removed = rows->prune_recordings("a1", 2);
  REQUIRE(removed);
  CHECK(*removed == std::vector<std::string>{"main-0.cast"});
  CHECK(rows->recording_chunks(ids[0], 0, 10)->empty());
  CHECK(rows->append_recording(ids[0], 3, {"late"}).error().code == rx::Errc::kExists);
  REQUIRE(rows->delete_recording("a1", "main-2.cast"));
  CHECK(rows->recordings_of("a1")->size() == 1);
  REQUIRE(st.delete_agent("a1"));
  CHECK(rows->recordings_of("a1")->empty());
  CHECK(st.recording_rows() == rows);
}
