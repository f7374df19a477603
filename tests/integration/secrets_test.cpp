// SPDX-License-Identifier: MIT
// Nothing secret in the logs (Security): a whole scenario at debug and at trace level
// (registration, the agent's token, a user token, a JWT in the query string, MFA enrolment and
// verification, typed terminal bytes, their echo, an exec) and then every log of every process is
// searched for each secret and each typed byte string.
#include "rexec/server/auth/totp.h"

#include <catch2/catch.hpp>

#include <ctime>
#include <fstream>
#include <sstream>

#include "fixture.h"
#include "jwt_sign.h"

using rx::test::read_file;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

TEST_CASE("logs at debug and trace level hold no token, JWT, secret or terminal byte",
          "[integration]") {
  const std::string level = GENERATE(std::string("debug"), std::string("trace"));
  INFO("log level " << level);
  rx::test::ServerOptions options;
  options.log_level = level;
  System sys(options);
  const std::string token = sys.add_user("vera");
  auto agent = sys.start_agent(token, "secret-agent", {"REXEC_LOG_LEVEL=" + level});
  auto& loop = sys.loop();
  REQUIRE(sys.wait_online(token, agent.id));
  // The agent's own token, from its config.
  const auto config = nlohmann::json::parse(read_file(agent.config_path));
  const std::string agent_token = config.at("token").get<std::string>();
  REQUIRE(agent_token.rfind("rexec_", 0) == 0);

  // A JWT on a terminal socket's query string, typed input, output, an exec.
  auto me = rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), token);
  const auto now = static_cast<long long>(std::time(nullptr));
  const std::string jwt = rx::test::make_jwt(
      {{"user_id", me.body.value("user_id", "")}, {"username", "vera"}, {"exp", now + 600}},
      sys.jwt_secret());
  const std::string typed =
      "Typed"
      "Secret"
      "Zq7";  // never a literal the logs could hold
  const std::string shown =
      "Shown"
      "Secret"
      "Wx9";
  {
    TestSocket s(loop);
    REQUIRE(s.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=sec&token=" + jwt), ""));
    REQUIRE(s.wait_type("shell_started"));
    s.send_json(
        {{"type", "input"}, {"data", "echo " + typed + " | tr Tt Ss; echo " + shown + "\n"}});
    REQUIRE(s.wait_output(shown));
    s.send_json({{"type", "exec"}, {"data", {{"command", "echo " + typed + "-exec"}}}});
    REQUIRE(s.wait_type("exec_result"));
    s.send_binary(typed + "-binary\n");
    REQUIRE(s.wait_output(typed + "-binary"));
  }

  // MFA: the enrolment secret and a code.
  auto enrol = rx::test::run_program(
      {rx::test::server_binary(), "user", "mfa-enroll", "vera", "--db", sys.db_path()},
      sys.dir() + "/mfa-cli.log");
  REQUIRE(enrol.exit_code == 0);
  const std::string mfa_secret = enrol.out.substr(enrol.out.find("secret: ") + 8, 32);
  const std::string code = *rx::server::totp_code(mfa_secret, std::time(nullptr));
  const std::string base = sys.http_url("/api/security/terminal/agent:" + agent.id);
  REQUIRE(rx::test::http(loop, "POST", base + "/mfa-verify", token,
                         nlohmann::json{{"code", code}}.dump())
              .status == 200);

  // Let the agent log what it logs about all this, then stop everything so logs are complete.
  loop.run_for(300ms);
  agent.process->signal(SIGTERM);
  (void)agent.process->wait(10s);
  sys.server().signal(SIGTERM);
  (void)sys.server().wait(10s);

  std::string logs;
  for (const std::string& path : {sys.dir() + "/server.log", agent.process->log_path(),
                                  sys.dir() + "/cli.log", sys.dir() + "/mfa-cli.log"}) {
    logs += read_file(path);
  }
  REQUIRE(logs.find("agent connected") != std::string::npos);  // the logs are the right ones
  REQUIRE(logs.find("terminal opened") != std::string::npos);
  REQUIRE(logs.find(" debug ") != std::string::npos);  // trace includes debug
  const std::pair<const char*, std::string> secrets[] = {
      {"user token", token},
      {"user token body", token.substr(6)},
      {"agent token", agent_token},
      {"agent token body", agent_token.substr(6)},
      {"JWT", jwt},
      {"JWT signature", jwt.substr(jwt.rfind('.') + 1)},
      {"JWT secret", sys.jwt_secret()},
      {"TOTP secret", mfa_secret},
      {"TOTP code", "\"" + code + "\""},
      {"typed bytes", typed},
      {"typed bytes, translated by the shell", "Syped"},
      {"shown bytes", shown},
  };
  for (const auto& [what, needle] : secrets) {
    INFO(what);
    CHECK(logs.find(needle) == std::string::npos);
  }
}
