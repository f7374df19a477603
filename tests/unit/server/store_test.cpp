// SPDX-License-Identifier: MIT
// SqliteStore on a real database file: migrations, records, ordering, stats retention.
#include "rexec/server/storage/sqlite_store.h"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>

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
    CHECK((*s)->schema_version() == 2);
    REQUIRE((*s)->create_user({"u1", "alice", "free", false, false, 1}));
  }
  auto again = SqliteStore::open(t.path());
  REQUIRE(again);
  CHECK((*again)->schema_version() == 2);
  auto u = (*again)->user_by_name("alice");
  REQUIRE(u);
  REQUIRE(u->has_value());
  CHECK((*u)->id == "u1");
  CHECK((*again)->create_user({"u2", "alice", "free", false, false, 1}).error().code ==
        rx::Errc::kExists);
}

TEST_CASE("an unwritable database path is a clear error", "[server]") {
  auto s = SqliteStore::open("/proc/rexec/no/such/dir/db");
  REQUIRE_FALSE(s);
  CHECK(s.error().code == rx::Errc::kStorage);
  CHECK(s.error().message.find("/proc/rexec/no/such/dir/db") != std::string::npos);
}

TEST_CASE("agents: newest first, counts, updates, status, delete", "[server]") {
  TempDb t;
  auto s = SqliteStore::open(t.path());
  REQUIRE(s);
  Store& st = **s;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1}));
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
  auto a = st.agent("a");
  REQUIRE(a);
  CHECK((*a)->name == "renamed");
  CHECK((*a)->status == "online");
  CHECK(*(*a)->connected_at == 500);
  CHECK((*a)->system_info == R"({"hostname":"h"})");
  // Heartbeats are written in batches; unknown ids are ignored.
  REQUIRE(st.touch_agents({"b", "c", "nope"}, 700));
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
  TempDb t;
  auto s = SqliteStore::open(t.path());
  REQUIRE(s);
  Store& st = **s;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1}));
  REQUIRE(st.create_user({"u2", "bob", "free", false, false, 1}));
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

TEST_CASE("stats keep the newest samples within retention", "[server]") {
  TempDb t;
  auto s = SqliteStore::open(t.path());
  REQUIRE(s);
  Store& st = **s;
  REQUIRE(st.create_user({"u1", "alice", "free", false, false, 1}));
  REQUIRE(st.create_agent(make_agent("a", 1)));
  for (int i = 0; i < 20; ++i)
    REQUIRE(st.add_stats("a", 1000 + i, "{\"i\":" + std::to_string(i) + "}"));
  REQUIRE(st.prune_stats("a", 1005, 10));
  auto rows = st.stats_of("a", 100);
  REQUIRE(rows);
  REQUIRE(rows->size() == 10);
  CHECK(rows->front().first == 1019);
  CHECK(rows->back().first == 1010);
  REQUIRE(st.prune_stats("a", 1015, 100));
  CHECK(st.stats_of("a", 100)->size() == 5);
}

TEST_CASE("mfa: enrol, each time step once, re-enrol resets, lock flag", "[server][mfa]") {
  TempDb t;
  auto s = SqliteStore::open(t.path());
  REQUIRE(s);
  Store& db = **s;
  REQUIRE(db.create_user({"u1", "alice", "free", false, false, 1}));
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
