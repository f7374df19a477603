// SPDX-License-Identifier: MIT
// The agent against a hostile server: a fake server (the real HttpServer plumbing with a
// handler of the test's own) sends garbage on the agent socket; the agent must drop it, keep the
// connection, and still answer a valid ping.
#include "rexec/server/http_server.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "fixture.h"

using namespace std::chrono_literals;

namespace {

class Recorder final : public rx::server::WsHandler {
 public:
  Recorder(rx::server::WsConn& c, std::vector<std::string>& got, rx::server::WsConn*& conn)
      : got_(got), conn_(conn) {
    conn_ = &c;
  }

  void on_message(std::string_view payload, bool binary) override {
    if (!binary) got_.emplace_back(payload);
  }

  void on_closed() override { conn_ = nullptr; }

 private:
  std::vector<std::string>& got_;
  rx::server::WsConn*& conn_;
};

}  // namespace

TEST_CASE("garbage from the server does not crash the agent", "[integration]") {
  rx::test::Loop loop;
  std::vector<std::string> got;
  rx::server::WsConn* conn = nullptr;
  int connections = 0;
  rx::server::HttpServerOptions o;
  o.loop = loop.uv();
  o.port = 0;
  rx::server::HttpHandlers h;
  h.on_request = [](const rx::server::HttpRequest&) {
    return rx::server::HttpResponse::json(404, R"({"error":"not found"})");
  };
  h.on_upgrade = [&](const rx::server::HttpRequest&) {
    rx::server::UpgradeDecision d;
    d.accept = [&](rx::server::WsConn& c) {
      ++connections;
      return std::make_unique<Recorder>(c, got, conn);
    };
    return d;
  };
  auto server = rx::server::HttpServer::start(o, std::move(h));
  REQUIRE(server);

  char dir[] = "/tmp/rexec-rb-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string cfg = std::string(dir) + "/agent.json";
  std::ofstream(cfg) << nlohmann::json{{"server",
                                        "http://127.0.0.1:" + std::to_string((*server)->port())},
                                       {"agent_id", "00000000-0000-4000-8000-000000000001"},
                                       {"token", "rexec_" + std::string(64, '0')}}
                            .dump();
  rx::test::Process agent = rx::test::Process::start(
      {rx::test::agent_binary(), "run", "--config", cfg}, std::string(dir) + "/agent.log",
      {"REXEC_LOG_LEVEL=debug", "REXEC_STATS_INTERVAL_MS=60000"});
  REQUIRE(loop.run_until([&] { return conn != nullptr && !got.empty(); }, 10s));
  CHECK(nlohmann::json::parse(got[0]).value("type", "") == "system_info");

  const std::vector<std::string> garbage = {
      "{not json",
      R"({"data":{}})",
      R"({"type":17})",
      R"({"type":"no_such_message","data":{}})",
      R"({"type":"shell_input","data":{"session_id":"main","data":"!!notbase64"}})",
      R"({"type":"shell_input","data":{"session_id":"nope","data":"bHMK"}})",
      R"({"type":"shell_start","data":{"session_id":"../../etc","new_session":true}})",
      R"({"type":"shell_resize","data":{"session_id":"main","cols":-5,"rows":99999}})",
      R"({"type":"shell_stop_session","data":{"session_id":"ghost"}})",
      R"({"type":"exec","data":{"command":42}})",
      std::string(200, '\xff'),
      // File messages that make no sense: unknown transfers, bad paths, sizes, checksums.
      R"({"type":"file_data","data":{"transfer_id":"ghost","seq":0,"data":"AAAA"}})",
      R"({"type":"file_ack","data":{"transfer_id":"ghost","bytes":99}})",
      R"({"type":"file_end","data":{"transfer_id":"ghost","sha256":"zz"}})",
      R"({"type":"file_get","data":{"transfer_id":"g1","path":"relative"}})",
      R"({"type":"file_get","data":{"transfer_id":"g2","path":"/"}})",
      R"({"type":"file_list","data":{"transfer_id":"l1","path":"/no/such/dir"}})",
      R"({"type":"file_put","data":{"transfer_id":"p1","path":")" + std::string(dir) +
          R"(/up","size":4}})",
      R"({"type":"file_data","data":{"transfer_id":"p1","seq":5,"data":"AAAA"}})",
      R"({"type":"file_put","data":{"transfer_id":"p2","path":")" + std::string(dir) +
          R"(/up2","size":2}})",
      R"({"type":"file_data","data":{"transfer_id":"p2","seq":0,"data":"AAAAAAAA"}})",
      R"({"type":"file_put","data":{"transfer_id":"p3","path":")" + std::string(dir) +
          R"(/up3","size":1}})",
      R"({"type":"file_data","data":{"transfer_id":"p3","seq":0,"data":"AA=="}})",
      R"({"type":"file_end","data":{"transfer_id":"p3","sha256":")" + std::string(64, 'a') +
          R"("}})",
      R"({"type":"file_put","data":{"transfer_id":"p4","path":")" + std::string(dir) +
          R"(/huge","size":18446744073709551615}})",
  };
  for (const auto& g : garbage) conn->send_text(g);
  for (const std::string& b :
       {std::string("\x02\x00", 2), std::string("\x07\x04main", 6), std::string("\x02\x50", 2),
        std::string(1, '\x02'), std::string("\x03\x02p1\x00", 5),
        std::string("\x03\x05ghost\x00\x00\x00\x00\x00\x00\x00\x00xyz", 18)}) {
    conn->send_binary(b);
  }
  conn->send_text(R"({"type":"ping"})");
  const bool ponged = loop.run_until(
      [&] {
        for (const auto& m : got) {
          if (nlohmann::json::parse(m, nullptr, false).value("type", "") == "pong") return true;
        }
        return false;
      },
      10s);
  if (!ponged) std::fprintf(stderr, "%s\n", agent.log().c_str());
  CHECK(ponged);
  CHECK(agent.running());
  CHECK(connections == 1);  // garbage never cost the connection
  const std::string log = agent.log();
  CHECK(log.find("message dropped") != std::string::npos);
  CHECK(log.find(std::string(64, '0')) == std::string::npos);  // the token is never logged
  // Every file request got its error, and no upload left anything behind.
  std::map<std::string, int> errors;
  loop.run_until(
      [&] {
        errors.clear();
        for (const auto& m : got) {
          const auto j = nlohmann::json::parse(m, nullptr, false);
          if (j.value("type", "") == "file_error") {
            errors[j["data"]["transfer_id"]] = j["data"]["status"];
          }
        }
        return errors.size() == 7;  // some come back from the thread pool after the pong
      },
      10s);
  CHECK(errors["g1"] == 400);
  CHECK(errors["g2"] == 400);
  CHECK(errors["l1"] == 404);
  CHECK(errors["p1"] == 400);
  CHECK(errors["p2"] == 400);
  CHECK(errors["p3"] == 400);
  CHECK(errors.count("p4") == 1);
  for (const char* name : {"/up", "/up2", "/up3", "/huge"}) {
    CHECK_FALSE(std::filesystem::exists(std::string(dir) + name));
  }
  agent.kill();
  server->reset();
  std::filesystem::remove_all(dir);
}
