// SPDX-License-Identifier: MIT
// The MFA lock end to end (PROTOCOL §6): TOTP enrolment from the server's command line, lock,
// the 423 on the terminal socket, verify, replay and wrong-code refusals, the rate limit, unlock.
#include "rexec/server/auth/totp.h"

#include <catch2/catch.hpp>

#include <ctime>

#include "fixture.h"

using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

TEST_CASE("MFA lock: enrol, lock, 423, verify, replay refused, rate limit, unlock",
          "[integration][mfa][pg]") {
  System sys;
  const std::string token = sys.add_user("mia");
  const std::string other = sys.add_user("olga");
  auto agent = sys.start_agent(token);
  auto& loop = sys.loop();
  REQUIRE(sys.wait_online(token, agent.id));
  const std::string base = sys.http_url("/api/security/terminal/agent:" + agent.id);
  const auto post = [&](const std::string& action, const std::string& body,
                        const std::string& who) {
    return rx::test::http(loop, "POST", base + "/" + action, who, body);
  };
  const auto code_at = [&](const std::string& secret, std::time_t t) {
    return *rx::server::totp_code(secret, t);
  };

  // Not enrolled: no lock.
  auto r = post("mfa-lock", "", token);
  CHECK(r.status == 400);
  CHECK(r.body == nlohmann::json{{"error", "mfa_required"}});
  r = rx::test::http(loop, "GET", base + "/mfa-status", token);
  CHECK(r.status == 200);
  CHECK(r.body["mfa_enabled"] == false);
  CHECK(r.body["locked"] == false);

  auto enrol = rx::test::run_program(
      {rx::test::server_binary(), "user", "mfa-enroll", "mia", "--db", sys.db_path()},
      sys.dir() + "/mfa-cli.log");
  REQUIRE(enrol.exit_code == 0);
  const auto at = enrol.out.find("secret: ");
  REQUIRE(at != std::string::npos);
  const std::string secret = enrol.out.substr(at + 8, 32);
  CHECK(enrol.out.rfind("otpauth://totp/Rexec:mia?secret=" + secret, 0) == 0);

  // Someone else's agent does not exist for them.
  CHECK(post("mfa-lock", "", other).status == 404);

  r = post("mfa-lock", "", token);
  CHECK(r.status == 200);
  CHECK(r.body["locked"] == true);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents/" + agent.id), token)
            .body["mfa_locked"] == true);
  const std::string term = sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=mfa1");
  {
    auto refused = rx::test::http(
        loop, "GET", sys.http_url("/ws/agent/" + agent.id + "/terminal?id=mfa1"), token);
    CHECK(refused.status == 423);
    CHECK(refused.body == nlohmann::json{{"error", "terminal is MFA protected"}});
    TestSocket s(loop);
    CHECK_FALSE(s.open(term, token));
    CHECK(s.close_info().http_status == 423);
  }

  const std::time_t now = std::time(nullptr);
  const std::string good = code_at(secret, now);
  const std::string wrong = good == "000000" ? "111111" : "000000";
  r = post("mfa-verify", nlohmann::json{{"code", wrong}}.dump(), token);
  CHECK(r.status == 401);
  CHECK(r.body == nlohmann::json{{"error", "invalid MFA code"}});
  r = post("mfa-verify", nlohmann::json{{"code", good}}.dump(), token);
  CHECK(r.status == 200);
  CHECK(r.body["verified"] == true);
  CHECK(r.body["expires_in"] == 600);
  {
    TestSocket s(loop);
    REQUIRE(s.open(term, token));
    CHECK(s.wait_type("shell_started"));
  }
  // The same code twice is a replay.
  CHECK(post("mfa-verify", nlohmann::json{{"code", good}}.dump(), token).status == 401);

  // Unlock with the next step's code (accepted: one step of clock skew either side).
  r = post("mfa-unlock", nlohmann::json{{"code", code_at(secret, now + 30)}}.dump(), token);
  CHECK(r.status == 200);
  CHECK(r.body["locked"] == false);
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents/" + agent.id), token)
            .body["mfa_locked"] == false);

  // Wrong codes: five are answered (a success cleared the earlier failures), then the user must
  // wait, even with a right code.
  for (int i = 0; i < 5; ++i) {
    CHECK(post("mfa-verify", nlohmann::json{{"code", wrong}}.dump(), token).status == 401);
  }
  r = post("mfa-verify", nlohmann::json{{"code", code_at(secret, now - 30)}}.dump(), token);
  CHECK(r.status == 429);
  CHECK(r.body["error"] == "too many MFA attempts");
  CHECK(r.body["retry_after"].get<int>() > 0);
  // Other users are not affected by mia's failures.
  CHECK(rx::test::http(loop, "GET", base + "/mfa-status", other).status == 404);
}
