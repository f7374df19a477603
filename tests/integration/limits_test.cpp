// SPDX-License-Identifier: MIT
// Resource limits end to end (docs/security.md): request bodies, WebSocket messages, sessions
// per agent (server and agent), user sockets per user and per address, TCP connections per
// address, the request-head timeout that bounds slow-loris clients, and the connections that may
// wait for their request head at once (--max-pending-requests). Each limit answers with its
// documented error and, once the holder lets go, frees its place.
#include "rexec/common/unique_fd.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

using rx::test::ServerOptions;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A raw TCP connection to the server from a chosen loopback address, for clients that do not
// speak HTTP properly.
class RawConn {
 public:
  RawConn(const std::string& from, int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, from.c_str(), &a.sin_addr) == 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr) == 1);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }

  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }

  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  RawConn(RawConn&&) = delete;
  RawConn& operator=(RawConn&&) = delete;

  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }

  // True once the server has closed the connection (EOF or reset); reads what it sent.
  bool closed_by_peer(std::chrono::milliseconds wait = 0ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        received_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      return n == 0 || errno != EAGAIN;  // EWOULDBLOCK is EAGAIN on Linux
    }
  }

  [[nodiscard]] const std::string& received() const { return received_; }

 private:
  int fd_;
  std::string received_;
};

std::size_t open_fds(pid_t pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++n;
  }
  return n;
}

std::string terminal_path(const std::string& agent, const std::string& query) {
  return "/ws/agent/" + agent + "/terminal?" + query;
}

}  // namespace

TEST_CASE("limits: request bodies over --max-body get 413 and the server carries on",
          "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--max-body", "1024"};
  System sys(o);
  const std::string token = sys.add_user("bea");
  auto& loop = sys.loop();
  const std::string big = nlohmann::json{{"name", std::string(4096, 'x')}}.dump();
  auto r = rx::test::http(loop, "POST", sys.http_url("/api/agents"), token, big);
  CHECK(r.status == 413);
  CHECK(r.body == nlohmann::json{{"error", "request body too large"}});
  r = rx::test::http(loop, "POST", sys.http_url("/api/agents"), token,
                     nlohmann::json{{"name", "small"}}.dump());
  CHECK(r.status == 201);
  if (r.status != 201) sys.dump_logs();
}

TEST_CASE("limits: a terminal message over --max-message closes with 1009, others go on",
          "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--max-message", "65536"};
  System sys(o);
  const std::string token = sys.add_user("max");
  auto agent = sys.start_agent(token);
  REQUIRE(sys.wait_online(token, agent.id));
  auto& loop = sys.loop();
  TestSocket big(loop);
  REQUIRE(big.open(sys.ws_url(terminal_path(agent.id, "id=big")), token));
  TestSocket calm(loop);
  REQUIRE(calm.open(sys.ws_url(terminal_path(agent.id, "id=calm")), token));
  big.send_json({{"type", "input"}, {"data", std::string(100000, 'a')}});
  REQUIRE(big.wait_closed());
  CHECK(big.close_info().close_code == 1009);
  calm.send_json({{"type", "input"}, {"data", "echo calm-$((6*7))\r"}});
  CHECK(calm.wait_output("calm-42"));
  if (!calm.wait_output("calm-42", 1ms)) sys.dump_logs();
}

TEST_CASE("limits: sessions per agent, on the server and on the agent", "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--max-sessions-per-agent", "3"};
  System sys(o);
  const std::string token = sys.add_user("sam");
  auto agent = sys.start_agent(token, "capped", {"REXEC_MAX_SESSIONS=2"});
  REQUIRE(sys.wait_online(token, agent.id));
  auto& loop = sys.loop();
  const auto url = [&](const std::string& q) { return sys.ws_url(terminal_path(agent.id, q)); };

  TestSocket main(loop);
  REQUIRE(main.open(url("id=m1"), token));
  REQUIRE(main.wait_type("shell_started"));
  TestSocket a(loop);
  REQUIRE(a.open(url("id=aa&newSession=true"), token));
  REQUIRE(a.wait_type("shell_started"));

  // The agent holds two shells: a third is refused by the agent, whose limit is lower.
  TestSocket b(loop);
  REQUIRE(b.open(url("id=bb&newSession=true"), token));
  auto err = b.wait_type("shell_error");
  REQUIRE(err);
  CHECK((*err)["data"]["session_id"] == "split-bb");
  CHECK((*err)["data"]["error"].get<std::string>().find("session limit reached (2") !=
        std::string::npos);
  CHECK(b.messages("shell_started").empty());

  // The server's limit counts the sessions it keeps (main, split-aa, split-bb): a fourth is
  // refused before the upgrade, with the documented body.
  TestSocket c(loop);
  CHECK_FALSE(c.open(url("id=cc&newSession=true"), token));
  CHECK(c.close_info().http_status == 403);
  auto r = rx::test::http(loop, "GET",
                          sys.http_url(terminal_path(agent.id, "id=cc&newSession=true")), token);
  CHECK(r.status == 403);
  CHECK(r.body == nlohmann::json{{"error", "session limit reached for this agent"},
                                 {"code", "session_limit_reached"},
                                 {"limit", 3}});
  // Joining a session that exists is not a new session.
  TestSocket main2(loop);
  CHECK(main2.open(url("id=m2"), token));
  TestSocket a2(loop);
  CHECK(a2.open(url("id=aa&newSession=true"), token));  // takes over split-aa
  CHECK(a.wait_closed());

  // Closing split sessions frees their places, on both sides.
  b.close();
  a2.close();
  REQUIRE(loop.run_until(
      [&] {
        return rx::test::http(loop, "GET",
                              sys.http_url(terminal_path(agent.id, "id=dd&newSession=true")), token)
                   .status == 426;
      },
      10s));
  // The agent counts a stopping shell until its process is gone, so its place may come back a
  // moment after the server's: a refusal in that moment is retried, a bounded number of times.
  std::unique_ptr<TestSocket> d;
  for (int attempt = 0; attempt < 50; ++attempt) {
    d = std::make_unique<TestSocket>(loop);
    REQUIRE(d->open(url("id=dd&newSession=true"), token));
    auto first = d->wait_json([](const nlohmann::json& j) {
      return j.value("type", "") == "shell_started" || j.value("type", "") == "shell_error";
    });
    REQUIRE(first);
    if ((*first)["type"] == "shell_started") break;
    d->close();
    d->wait_closed();
    loop.run_for(100ms);
  }
  REQUIRE_FALSE(d->messages("shell_started").empty());
  d->send_json({{"type", "input"}, {"data", "echo split-$((6*7))\r"}});
  CHECK(d->wait_output("split-42"));
  if (!d->wait_output("split-42", 1ms)) sys.dump_logs();
}

TEST_CASE("limits: open user sockets per user and per address", "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--max-sockets-per-user", "3", "--max-sockets-per-ip", "4"};
  System sys(o);
  const std::string una = sys.add_user("una");
  const std::string vic = sys.add_user("vic");
  auto agent = sys.start_agent(una);
  REQUIRE(sys.wait_online(una, agent.id));
  auto& loop = sys.loop();
  const auto url = [&](const std::string& q) { return sys.ws_url(terminal_path(agent.id, q)); };

  TestSocket events(loop);
  REQUIRE(events.open(sys.ws_url("/api/events"), una));
  TestSocket t1(loop);
  REQUIRE(t1.open(url("id=t1"), una));
  TestSocket t2(loop);
  REQUIRE(t2.open(url("id=t2"), una));
  // una holds 3: the fourth socket (terminal or events) is refused.
  TestSocket t3(loop);
  CHECK_FALSE(t3.open(url("id=t3"), una));
  CHECK(t3.close_info().http_status == 429);
  TestSocket events2(loop);
  CHECK_FALSE(events2.open(sys.ws_url("/api/events"), una));
  CHECK(events2.close_info().http_status == 429);
  auto r = rx::test::http(loop, "GET", sys.http_url(terminal_path(agent.id, "id=t3")), una);
  CHECK(r.status == 429);
  CHECK(r.body == nlohmann::json{{"error", "too many open sockets for this user"},
                                 {"code", "socket_limit_reached"},
                                 {"limit", 3}});

  // vic, from the same address, gets one more socket there (4 in all), then the address is full.
  TestSocket v1(loop);
  CHECK(v1.open(sys.ws_url("/api/events"), vic));
  TestSocket v2(loop);
  CHECK_FALSE(v2.open(sys.ws_url("/api/events"), vic));
  CHECK(v2.close_info().http_status == 429);
  r = rx::test::http(loop, "GET", sys.http_url("/api/events"), vic);
  CHECK(r.status == 429);
  CHECK(r.body == nlohmann::json{{"error", "too many open sockets from this address"},
                                 {"code", "socket_limit_reached"},
                                 {"limit", 4}});

  // Closed sockets give their places back.
  t1.close();
  REQUIRE(t1.wait_closed());
  REQUIRE(loop.run_until(
      [&] {
        return rx::test::http(loop, "GET", sys.http_url(terminal_path(agent.id, "id=t4")), una)
                   .status == 426;
      },
      10s));
  TestSocket t4(loop);
  CHECK(t4.open(url("id=t4"), una));
}

TEST_CASE("limits: TCP connections per address are capped at accept", "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--max-conns-per-ip", "8", "--header-timeout", "30s"};
  System sys(o);
  auto& loop = sys.loop();
  std::vector<std::unique_ptr<RawConn>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<RawConn>("127.0.0.2", sys.port()));
  // The ninth from that address is closed at once, with nothing sent.
  RawConn ninth("127.0.0.2", sys.port());
  CHECK(ninth.closed_by_peer(3000ms));
  CHECK(ninth.received().empty());
  loop.run_for(300ms);
  for (auto& c : held) CHECK_FALSE(c->closed_by_peer());
  // Other addresses are not affected.
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/version")).status == 200);

  // Once they are gone, that address is served again.
  held.clear();
  bool served = false;
  for (const auto until = Clock::now() + 10s; !served && Clock::now() < until;) {
    RawConn again("127.0.0.2", sys.port());
    again.send("GET /api/version HTTP/1.0\r\nHost: x\r\n\r\n");
    for (const auto t = Clock::now() + 3s; Clock::now() < t && !again.closed_by_peer(100ms);) {
    }
    served = again.received().rfind("HTTP/1.0 200", 0) == 0 &&
             again.received().find(R"("version")") != std::string::npos;
    if (!served) std::this_thread::sleep_for(100ms);
  }
  CHECK(served);
}

TEST_CASE("limits: slow-loris clients are cut at the header timeout, others are served",
          "[integration][limits]") {
  ServerOptions o;
  o.extra_args = {"--header-timeout", "2s"};
  System sys(o);
  auto& loop = sys.loop();
  REQUIRE(rx::test::http(loop, "GET", sys.http_url("/api/version")).status == 200);
  const std::size_t fds_before = open_fds(sys.server().pid());

  // 30 dribblers (a byte of header every 250 ms, never finishing) and 30 silent connections.
  constexpr int kEach = 30;
  std::vector<std::unique_ptr<RawConn>> conns;
  for (int i = 0; i < 2 * kEach; ++i) {
    conns.push_back(std::make_unique<RawConn>("127.0.0.3", sys.port()));
    if (i < kEach) CHECK(conns.back()->send("GET /api/version HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  const auto start = Clock::now();
  std::vector<Clock::duration> closed_after(conns.size(), Clock::duration::zero());
  std::size_t open = conns.size();
  bool served_meanwhile = false;
  while (open > 0 && Clock::now() - start < 15s) {
    for (std::size_t i = 0; i < conns.size(); ++i) {
      if (closed_after[i] != Clock::duration::zero()) continue;
      if (conns[i]->closed_by_peer() || (i < kEach && !conns[i]->send("a"))) {
        closed_after[i] = Clock::now() - start;
        --open;
      }
    }
    if (!served_meanwhile && Clock::now() - start > 500ms && open == conns.size()) {
      // While every slow client is still held, a normal client is served.
      served_meanwhile = rx::test::http(loop, "GET", sys.http_url("/api/version")).status == 200;
    }
    loop.run_for(250ms);
  }
  CHECK(served_meanwhile);
  CHECK(open == 0);
  for (const auto& t : closed_after) {
    // Not before the timeout (lws checks it once a second), and not much after it.
    CHECK(t >= 1500ms);
    CHECK(t <= 6s);
  }
  // Everything they held is freed.
  CHECK(loop.run_until([&] { return open_fds(sys.server().pid()) <= fds_before; }, 5s));
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/version")).status == 200);
}

namespace {

// Opens `silent` connections that never send a byte, from three addresses (under the default
// 512 each), to a server started with `args` and a 4 s header timeout.
struct SilentCrowd {
  explicit SilentCrowd(std::vector<std::string> args, std::size_t silent) : sys(options(args)) {
    REQUIRE(rx::raise_open_file_limit() >= silent + 200);
    REQUIRE(rx::test::http(sys.loop(), "GET", sys.http_url("/api/version")).status == 200);
    fds_before = open_fds(sys.server().pid());
    for (std::size_t i = 0; i < silent; ++i) {
      conns.push_back(
          std::make_unique<RawConn>("127.0.0." + std::to_string(4 + i % 3), sys.port()));
    }
  }

  static ServerOptions options(std::vector<std::string> args) {
    ServerOptions o;
    o.extra_args = std::move(args);
    o.extra_args.insert(o.extra_args.end(), {"--header-timeout", "4s"});
    return o;
  }

  // Waits until the server has accepted `n` of them.
  bool accepted(std::size_t n) {
    return sys.loop().run_until([&] { return open_fds(sys.server().pid()) >= fds_before + n; }, 5s);
  }

  System sys;
  std::size_t fds_before = 0;
  std::vector<std::unique_ptr<RawConn>> conns;
};

}  // namespace

TEST_CASE(
    "limits: past --max-pending-requests connections waiting for a request head, the next "
    "one waits its turn",
    "[integration][limits]") {
  // scripts/lws-patches/0006: the listener stops accepting, the kernel queues the connection,
  // and it is served once the header timeout has closed the silent ones.
  std::vector<std::string> args;
  std::size_t limit = 0;
  SECTION("the default, 1,024") { limit = 1024; }
  SECTION("--max-pending-requests 64") {
    limit = 64;
    args = {"--max-pending-requests", "64"};
  }
  SilentCrowd crowd(args, limit);
  auto& loop = crowd.sys.loop();
  const pid_t server = crowd.sys.server().pid();
  REQUIRE(crowd.accepted(limit));

  // The next connection is queued by the kernel, not accepted: no answer while they wait.
  RawConn next("127.0.0.7", crowd.sys.port());
  REQUIRE(next.send("GET /api/version HTTP/1.0\r\nHost: x\r\n\r\n"));
  CHECK_FALSE(next.closed_by_peer(1500ms));
  CHECK(next.received().empty());
  CHECK(open_fds(server) <= crowd.fds_before + limit);  // the next one was not accepted

  // The header timeout closes the silent ones; then the queued request is answered.
  const auto start = Clock::now();
  bool answered = false;
  while (!answered && Clock::now() - start < 15s) {
    answered = next.closed_by_peer(100ms);
    loop.run_for(10ms);
  }
  CHECK(answered);
  CHECK(next.received().rfind("HTTP/1.0 200", 0) == 0);
  std::size_t cut = 0;
  for (auto& c : crowd.conns) cut += c->closed_by_peer(2000ms) ? 1U : 0U;
  CHECK(cut == crowd.conns.size());
  crowd.conns.clear();
  CHECK(loop.run_until([&] { return open_fds(server) <= crowd.fds_before; }, 5s));
  CHECK(rx::test::http(loop, "GET", crowd.sys.http_url("/api/version")).status == 200);
}

TEST_CASE("limits: --max-pending-requests 0 accepts every connection at once",
          "[integration][limits]") {
  // lws's own behaviour: with 1,100 silent connections held, a request is still answered at once.
  constexpr std::size_t kSilent = 1100;
  SilentCrowd crowd({"--max-pending-requests", "0"}, kSilent);
  REQUIRE(crowd.accepted(kSilent));
  RawConn next("127.0.0.7", crowd.sys.port());
  REQUIRE(next.send("GET /api/version HTTP/1.0\r\nHost: x\r\n\r\n"));
  bool answered = false;
  const auto start = Clock::now();
  while (!answered && Clock::now() - start < 2s) answered = next.closed_by_peer(100ms);
  CHECK(answered);
  CHECK(next.received().rfind("HTTP/1.0 200", 0) == 0);
  std::size_t open = 0;
  for (auto& c : crowd.conns) open += c->closed_by_peer() ? 0U : 1U;
  CHECK(open == kSilent);  // all still held: the request did not wait for the header timeout
}
