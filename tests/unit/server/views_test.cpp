// SPDX-License-Identifier: MIT
// Golden answers of the routes the deployed Rexec's public CLI reads (docs/protocol.md
// "Compatibility"): GET /api/profile, GET /api/containers (an empty list included) and
// GET /api/tokens/validate, byte for byte; and the body of POST /api/agents/:id/exec.
#include "rexec/server/views.h"

#include "rexec/server/exec_route.h"

#include <catch2/catch.hpp>

using namespace rx::server;
using nlohmann::json;

namespace {

constexpr Millis kCreated = 1796012345000;  // 2026-11-30T04:19:05Z
constexpr Millis kPinged = 1796015945000;   // 2026-11-30T05:19:05Z

User alice() {
  User u;
  u.id = "u-1";
  u.username = "alice";
  u.tier = "pro";
  u.created_at = kCreated;
  u.email = "alice@example.com";
  return u;
}

Agent agent(const std::string& id, const std::string& name) {
  Agent a;
  a.id = id;
  a.user_id = "u-1";
  a.name = name;
  a.os = "linux";
  a.arch = "amd64";
  a.created_at = a.updated_at = kCreated;
  return a;
}

}  // namespace

TEST_CASE("golden: GET /api/profile", "[server]") {
  ProfileFacts f;
  f.user = alice();
  f.mfa_enabled = true;
  f.agents = 2;
  f.agents_online = 1;
  f.agent_limit = 10;
  CHECK(profile_json(f).dump() ==
        R"({"limits":{"containers":0,"max_agents":10},)"
        R"("stats":{"agents":2,"agents_online":1,"container_count":0,"container_limit":0},)"
        R"("user":{"avatar":"","created_at":"2026-11-30T04:19:05Z","email":"alice@example.com",)"
        R"("first_name":"","id":"u-1","is_admin":false,"last_name":"","mfa_enabled":true,)"
        R"("name":"alice","tier":"pro","updated_at":"2026-11-30T04:19:05Z","username":"alice",)"
        R"("verified":false}})");
  // An admin has no plan limit; a user without an e-mail address still has the key.
  f.user.is_admin = true;
  f.user.email.clear();
  f.agent_limit.reset();
  const json j = profile_json(f);
  CHECK(j["limits"]["max_agents"] == -1);
  CHECK(j["user"]["email"] == "");
  CHECK(j["user"]["is_admin"] == true);
  for (const char* key :
       {"id", "email", "username", "name", "first_name", "last_name", "avatar", "verified", "tier",
        "created_at", "updated_at", "is_admin", "mfa_enabled"}) {
    INFO(key);
    CHECK(j["user"].contains(key));
  }
}

TEST_CASE("golden: GET /api/containers", "[server]") {
  Agent online = agent("a-1", "box-1");
  online.shell = "/bin/bash";
  online.distro = "Debian GNU/Linux 12 (bookworm)";
  online.last_ping = kPinged;
  const json info = json::parse(
      R"({"hostname":"box","num_cpu":4,"memory":{"total":8589934592,"available":1,"free":1},)"
      R"("disk":{"total":107374182400,"available":1,"free":1},"region":"eu","os":"linux"})");
  const json stats = json::parse(R"({"cpu_percent":1.5,"sessions":1})");
  Agent offline = agent("a-2", "box-2");
  offline.description = "lab";
  offline.mfa_locked = true;
  json entries = json::array();
  entries.push_back(container_json(online, true, info, stats));
  entries.push_back(container_json(offline, false, nullptr, nullptr));
  CHECK(containers_json(entries, 5).dump() ==
        R"({"containers":[)"
        R"({"arch":"amd64","created_at":"2026-11-30T04:19:05Z","description":"",)"
        R"j("distro":"Debian GNU/Linux 12 (bookworm)","hostname":"box","id":"agent:a-1",)j"
        R"("image":"linux/amd64","last_used_at":"2026-11-30T05:19:05Z","mfa_locked":false,)"
        R"("name":"box-1","os":"linux","region":"eu",)"
        R"("resources":{"cpu_shares":4096,"disk_mb":102400,"memory_mb":8192},)"
        R"("session_type":"agent","shell":"/bin/bash","stats":{"cpu_percent":1.5,"sessions":1},)"
        R"("status":"running"},)"
        R"({"arch":"amd64","created_at":"2026-11-30T04:19:05Z","description":"lab","distro":"",)"
        R"("id":"agent:a-2","image":"linux/amd64","last_used_at":null,"mfa_locked":true,)"
        R"("name":"box-2","os":"linux",)"
        R"("resources":{"cpu_shares":1024,"disk_mb":0,"memory_mb":0},)"
        R"("session_type":"agent","shell":"","status":"offline"}],)"
        R"("count":2,"limit":5})");
  // Online before its first system_info and stats: the keys are there, empty.
  const json early = container_json(online, true, nullptr, nullptr);
  CHECK(early["hostname"] == "");
  CHECK(early["region"] == "");
  CHECK(early["stats"].is_null());
}

TEST_CASE("golden: an empty container list is [], never null", "[server]") {
  CHECK(containers_json(json::array(), 5).dump() == R"({"containers":[],"count":0,"limit":5})");
  CHECK(containers_json(nullptr, std::nullopt).dump() ==
        R"({"containers":[],"count":0,"limit":-1})");
}

TEST_CASE("golden: GET /api/tokens/validate carries the e-mail address", "[server]") {
  Principal p;
  p.user_id = "u-1";
  p.username = "alice";
  p.tier = "pro";
  p.scopes = {"read", "write"};
  CHECK(validate_json(p, "alice@example.com").dump() ==
        R"({"email":"alice@example.com","scopes":["read","write"],"tier":"pro",)"
        R"("user_id":"u-1","username":"alice","valid":true})");
}

TEST_CASE("POST /api/agents/:id/exec: the request body", "[server]") {
  auto ok = parse_exec_body(R"({"command":"echo hi","timeout_s":5,"extra":1})");
  REQUIRE(ok);
  CHECK(ok->command == "echo hi");
  CHECK(ok->timeout_s == 5);
  auto plain = parse_exec_body(R"({"command":"true","timeout_s":null})");
  REQUIRE(plain);
  CHECK(plain->timeout_s == 60);
  for (const char* bad :
       {"", "[]", "not json", R"({"command":""})", R"({"command":7})", R"({"cmd":"ls"})"}) {
    INFO(bad);
    auto r = parse_exec_body(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == rx::Errc::kInvalidArgument);
  }
  for (const char* t : {"0", "3601", "-1", "1.5", "\"5\""}) {
    INFO(t);
    auto r = parse_exec_body(std::string(R"({"command":"ls","timeout_s":)") + t + "}");
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "timeout_s must be a whole number of seconds from 1 to 3600");
  }
  CHECK(parse_exec_body(R"({"timeout_s":5})").error().message == "command is required");
}
