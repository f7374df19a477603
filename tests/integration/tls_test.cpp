// SPDX-License-Identifier: MIT
// TLS end to end (Ship it): a throwaway CA made with the openssl CLI, rexec-server serving TLS,
// and rexec-agent registering and connecting with verification on. A trusted CA connects; an
// untrusted one and a wrong host name are refused with one sentence naming host and reason.
#include <catch2/catch.hpp>

#include <filesystem>
#include <stdexcept>

#include "fixture.h"
#include "test_certs.h"

using rx::test::read_file;
using rx::test::run_program;
using rx::test::System;
using namespace std::chrono_literals;

namespace {

rx::test::ServerOptions tls_server(const rx::test::TestCerts& certs) {
  rx::test::ServerOptions o;
  o.tls = &certs;
  return o;
}

}  // namespace

TEST_CASE("TLS: a trusted CA registers, connects and serves a terminal over wss", "[integration]") {
  rx::test::TestCerts certs;
  System sys(tls_server(certs));
  REQUIRE(sys.http_url().rfind("https://", 0) == 0);
  const std::string token = sys.add_user("alice");
  const std::string cfg = sys.dir() + "/tls-agent.json";
  const std::string log = sys.dir() + "/tls-agent.log";
  auto reg =
      run_program({rx::test::agent_binary(), "register", "--server", sys.http_url(), "--token",
                   token, "--name", "tls", "--config", cfg, "--ca-file", certs.path + "/ca.pem"},
                  log);
  INFO(read_file(log));
  REQUIRE(reg.exit_code == 0);
  const std::string id = reg.out.substr(0, reg.out.find('\n'));
  // The CA is saved with the registration: `run` needs no flag.
  CHECK(read_file(cfg).find("ca.pem") != std::string::npos);
  rx::test::Process agent = rx::test::Process::start(
      {rx::test::agent_binary(), "run", "--config", cfg}, log,
      {"REXEC_LOG_LEVEL=debug", "HOME=" + rx::test::shell_home(sys.dir())});

  rx::test::Loop loop(certs.path + "/ca.pem");
  const bool online = loop.run_until(
      [&] {
        auto r = rx::test::http(loop, "GET", sys.http_url("/api/agents/" + id), token);
        return r.status == 200 && r.body.value("status", "") == "online";
      },
      15s);
  if (!online) sys.dump_logs();
  INFO(read_file(log));
  REQUIRE(online);

  rx::test::TestSocket user(loop);
  REQUIRE(user.open(sys.ws_url("/ws/agent/" + id + "/terminal?id=tls-1"), token));
  REQUIRE(user.wait_type("shell_started"));
  user.send_json({{"type", "input"}, {"data", "echo over-'tls'-ok\n"}});
  CHECK(user.wait_output("over-tls-ok"));
}

TEST_CASE("TLS: an untrusted CA and a wrong host name are refused in one sentence",
          "[integration]") {
  rx::test::TestCerts certs;
  System sys(tls_server(certs));
  const std::string token = sys.add_user("bob");
  const std::string port = std::to_string(sys.port());
  const std::string log = sys.dir() + "/refused.log";

  SECTION("untrusted: the system CAs and another CA do not vouch for the server") {
    for (const std::string& ca : {std::string(), certs.path + "/other-ca.pem"}) {
      // Without SSL_CERT_FILE and SSL_CERT_DIR (some shells set them): the agent's own search.
      std::vector<std::string> argv = {"/usr/bin/env",
                                       "-u",
                                       "SSL_CERT_FILE",
                                       "-u",
                                       "SSL_CERT_DIR",
                                       rx::test::agent_binary(),
                                       "register",
                                       "--server",
                                       sys.http_url(),
                                       "--token",
                                       token,
                                       "--config",
                                       sys.dir() + "/u.json"};
      if (!ca.empty()) argv.insert(argv.end(), {"--ca-file", ca});
      auto r = run_program(argv, log);
      const std::string err = read_file(log);
      INFO(err);
      CHECK(r.exit_code == 1);
      CHECK(err.find("cannot verify the TLS certificate of 127.0.0.1: it is not signed by a CA "
                     "this machine trusts") != std::string::npos);
      // Debian 12 with ca-certificates (as CI installs it): the hashed directory.
      CHECK(err.find(ca.empty() ? "trusted CAs: the directory /etc/ssl/certs"
                                : "trusted CAs: " + ca) != std::string::npos);
      CHECK_FALSE(std::filesystem::exists(sys.dir() + "/u.json"));
    }
  }

  SECTION("wrong host: the certificate names 127.0.0.1 and rexec.test, not localhost") {
    auto r = run_program(
        {rx::test::agent_binary(), "register", "--server", "https://localhost:" + port, "--token",
         token, "--config", sys.dir() + "/h.json", "--ca-file", certs.path + "/ca.pem"},
        log);
    const std::string err = read_file(log);
    INFO(err);
    CHECK(r.exit_code == 1);
    CHECK(err.find("cannot verify the TLS certificate of localhost: the certificate was issued "
                   "for another name (hostname mismatch)") != std::string::npos);
  }

  SECTION("run: the agent keeps retrying and logs the sentence, never connects") {
    // A config as `register` would have written it, for a server whose CA is not trusted.
    const std::string cfg = sys.dir() + "/run.json";
    {
      rx::test::Loop loop(certs.path + "/ca.pem");
      auto r = rx::test::http(loop, "POST", sys.http_url("/api/agents/register"), token,
                              R"({"name":"untrusted"})");
      REQUIRE(r.status == 201);
      nlohmann::json c = {{"server", sys.http_url()},
                          {"agent_id", r.body["id"]},
                          {"token", r.body["token"]},
                          {"ca_file", certs.path + "/other-ca.pem"}};
      std::FILE* f = std::fopen(cfg.c_str(), "w");
      REQUIRE(f != nullptr);
      std::fputs(c.dump().c_str(), f);
      std::fclose(f);
    }
    rx::test::Process agent =
        rx::test::Process::start({rx::test::agent_binary(), "run", "--config", cfg}, log);
    const bool said = rx::test::wait_until(
        [&] {
          return agent.log().find("cannot verify the TLS certificate of 127.0.0.1") !=
                 std::string::npos;
        },
        10s);
    INFO(agent.log());
    CHECK(said);
    CHECK(agent.running());  // a refused certificate is retried with backoff, not fatal
  }
}

TEST_CASE("TLS: the agent verifies RSA, ECDSA and Ed25519 servers", "[integration]") {
  // The static agent's OpenSSL is built with only what a TLS client needs
  // (scripts/build-openssl.sh): each certificate type a server may have must still verify.
  using rx::test::KeyType;
  const auto [type, name] = GENERATE(table<KeyType, std::string>({
      {KeyType::kRsa2048, "rsa"},
      {KeyType::kEcP256, "p256"},
      {KeyType::kEcP384, "p384"},
      {KeyType::kEd25519, "ed25519"},
  }));
  INFO(name);
  rx::test::TestCerts certs(type);
  System sys(tls_server(certs));
  const std::string token = sys.add_user("kt");
  auto agent = sys.start_agent(token, "kt-" + name);
  const bool online = sys.wait_online(token, agent.id, 15s);
  if (!online) sys.dump_logs();
  REQUIRE(online);
  rx::test::TestSocket user(sys.loop());
  REQUIRE(user.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=kt-1"), token));
  REQUIRE(user.wait_type("shell_started"));
  user.send_json({{"type", "input"}, {"data", "echo key-'type'-ok\n"}});
  CHECK(user.wait_output("key-type-ok"));
}
