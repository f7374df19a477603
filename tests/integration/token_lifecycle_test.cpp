// SPDX-License-Identifier: MIT
// API token lifecycle end to end (PROTOCOL §2, §5): shown once and stored only hashed,
// last_used_at kept, revocation and agent deletion effective at once (the validation cache is
// cleared), expiry enforced, bad expiry refused, and a short JWT secret refused at start-up.
#include <catch2/catch.hpp>
#include <openssl/sha.h>

#include <string>

#include "fixture.h"

using rx::test::System;
using namespace std::chrono_literals;

namespace {

std::string sha256_hex(const std::string& s) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out.push_back(hex[c >> 4U]);
    out.push_back(hex[c & 15U]);
  }
  return out;
}

nlohmann::json find_token(const nlohmann::json& list, const std::string& id) {
  for (const auto& t : list) {
    if (t.value("id", "") == id) return t;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("token lifecycle: shown once, hashed, last use, revoke, expiry, agent delete",
          "[integration][tokens]") {
  System sys;
  const std::string owner = sys.add_user("tess");
  auto& loop = sys.loop();
  const auto call = [&](const std::string& method, const std::string& path,
                        const std::string& token, const std::string& body = "") {
    return rx::test::http(loop, method, sys.http_url(path), token, body);
  };

  auto made = call("POST", "/api/tokens", owner, R"({"name":"ci","expires_in":30})");
  REQUIRE(made.status == 201);
  const std::string token = made.body["token"];
  const std::string id = made.body["id"];
  CHECK(token.rfind("rexec_", 0) == 0);
  CHECK(token.size() == 70);
  CHECK(made.body["token_prefix"] == token.substr(0, 12));
  CHECK(made.body["expires_at"].is_string());

  // Shown once: the listing has the prefix, never the token or its hash.
  auto list = call("GET", "/api/tokens", owner);
  REQUIRE(list.status == 200);
  const auto listed = find_token(list.body, id);
  REQUIRE(listed.is_object());
  CHECK_FALSE(listed.contains("token"));
  CHECK(listed["last_used_at"].is_null());
  CHECK(list.raw.find(token) == std::string::npos);
  CHECK(list.raw.find(sha256_hex(token)) == std::string::npos);
  CHECK(list.raw.find(token.substr(12)) == std::string::npos);

  // Stored only hashed: not a byte of the secret part is in the database files.
  CHECK(call("GET", "/api/agents", token).status == 200);
  for (const char* suffix : {"", "-wal"}) {
    const std::string db = rx::test::read_file(sys.db_path() + suffix);
    CHECK(db.find(token.substr(6)) == std::string::npos);
  }
  // ...while its hash is (so the search above looks in the right place).
  const std::string stored =
      rx::test::read_file(sys.db_path()) + rx::test::read_file(sys.db_path() + "-wal");
  CHECK(stored.find(sha256_hex(token)) != std::string::npos);

  // last_used_at is kept.
  list = call("GET", "/api/tokens", owner);
  CHECK(find_token(list.body, id)["last_used_at"].is_string());

  // Revocation is effective at once, though the token was just validated (and cached).
  CHECK(call("GET", "/api/tokens/validate", token).status == 200);
  auto revoked = call("DELETE", "/api/tokens/" + id, owner);
  CHECK(revoked.status == 200);
  auto after = call("GET", "/api/agents", token);
  CHECK(after.status == 401);
  CHECK(after.body == nlohmann::json{{"error", "unauthorized"}});
  CHECK(find_token(call("GET", "/api/tokens", owner).body, id)["revoked_at"].is_string());
  CHECK(call("DELETE", "/api/tokens/" + id, sys.add_user("uma")).status == 404);

  // Expiry: a token whose expires_at has passed is refused.
  auto soon = call("POST", "/api/tokens", owner, R"({"name":"soon","expires_in":1})");
  REQUIRE(soon.status == 201);
  const std::string soon_token = soon.body["token"];
  auto sql = rx::test::run_program({"/usr/bin/sqlite3", sys.db_path(),
                                    "UPDATE api_tokens SET expires_at = 1000 WHERE id = '" +
                                        soon.body["id"].get<std::string>() + "'"},
                                   sys.dir() + "/sqlite.log");
  REQUIRE(sql.exit_code == 0);
  CHECK(call("GET", "/api/agents", soon_token).status == 401);

  // Expiry values that are not 1..36500 whole days are refused, never wrapped around.
  for (const char* bad :
       {R"({"name":"x","expires_in":0})", R"({"name":"x","expires_in":-3})",
        R"({"name":"x","expires_in":1.5})", R"({"name":"x","expires_in":"7"})",
        R"({"name":"x","expires_in":36501})", R"({"name":"x","expires_in":18446744073709551615})",
        R"({"name":"x","expires_in":9223372036854775807})"}) {
    auto r = call("POST", "/api/tokens", owner, bad);
    CHECK(r.status == 400);
    CHECK(r.body ==
          nlohmann::json{{"error", "expires_in must be a whole number of days from 1 to 36500"}});
  }

  // Deleting an agent revokes its token at once.
  auto agent = call("POST", "/api/agents", owner, R"({"name":"doomed"})");
  REQUIRE(agent.status == 201);
  const std::string agent_token = agent.body["token"];
  CHECK(call("GET", "/api/tokens/validate", agent_token).status == 200);
  CHECK(call("DELETE", "/api/agents/" + agent.body["id"].get<std::string>(), owner).status == 200);
  CHECK(call("GET", "/api/tokens/validate", agent_token).status == 401);
}

TEST_CASE("a JWT secret shorter than 32 bytes is refused at start-up", "[integration][tokens]") {
  System sys;  // for its directory
  auto r =
      rx::test::run_program({rx::test::server_binary(), "serve", "--listen", "127.0.0.1:0", "--db",
                             sys.dir() + "/short.db", "--jwt-secret", std::string(31, 'k')},
                            sys.dir() + "/short.log");
  CHECK(r.exit_code != 0);
  CHECK(rx::test::read_file(sys.dir() + "/short.log").find("at least 32 bytes") !=
        std::string::npos);
}
