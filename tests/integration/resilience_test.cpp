// SPDX-License-Identifier: MIT
// Output survives (PROTOCOL §4.3): the agent's ring, offsets, replay to viewers that join late or
// come back, gap markers, and a lost agent link (the agent frozen with SIGSTOP until the server
// gives up on it) with output delivered exactly once after it returns.
#include <catch2/catch.hpp>

#include <signal.h>

#include <regex>
#include <sstream>
#include <thread>

#include "online_agent.h"

using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

struct Setup : rx::test::OnlineAgent {
  explicit Setup(rx::test::ServerOptions o = {}, const std::vector<std::string>& agent_env = {})
      : OnlineAgent(std::move(o), "carol", "test-agent", agent_env) {}

  [[nodiscard]] std::string url(const std::string& conn_id, const std::string& extra = "") const {
    return terminal_url(conn_id, extra);
  }
};

}  // namespace

TEST_CASE("resume: a viewer back with &offset=N gets exactly what followed", "[integration]") {
  Setup s;
  TestSocket a(s.sys.loop());
  REQUIRE(a.open(s.url("resume-a"), s.token, "rexec.v2"));
  REQUIRE(a.wait_type("shell_started"));
  a.send_json({{"type", "input"}, {"data", "seq 1 300 | sed 's/^/L/'; echo first-'done'\n"}});
  REQUIRE(a.wait_output("first-done"));
  // More output after this viewer is gone; main lingers, so the shell keeps it in its ring.
  a.send_json(
      {{"type", "input"}, {"data", "sleep 0.5; seq 301 900 | sed 's/^/L/'; echo second-'done'\n"}});
  s.sys.loop().run_for(100ms);
  const std::uint64_t shown = a.output_end_offset();
  const std::string first = a.output();
  a.close();
  REQUIRE(a.wait_closed());
  s.sys.loop().run_for(800ms);  // the second batch runs with nobody watching

  TestSocket b(s.sys.loop());
  REQUIRE(b.open(s.url("resume-b", "&offset=" + std::to_string(shown)), s.token, "rexec.v2"));
  REQUIRE(b.wait_output("second-done"));
  const auto offsets = b.messages("offset");
  REQUIRE_FALSE(offsets.empty());
  CHECK(offsets.front()["data"].get<std::uint64_t>() == shown);
  CHECK(b.messages("gap").empty());
  // Together the two viewers saw every line once, in order.
  CHECK(rx::test::lines_matching(first + b.output(), "L[0-9]+") == rx::test::numbered("L", 1, 900));
}

TEST_CASE("scrollback: a new viewer of a running main sees it first, then live output",
          "[integration]") {
  Setup s;
  TestSocket a(s.sys.loop());
  REQUIRE(a.open(s.url("sb-a"), s.token, "rexec.v1"));
  REQUIRE(a.wait_type("shell_started"));
  a.send_json({{"type", "input"}, {"data", "seq 1 200 | sed 's/^/S/'; echo sb-'done'\n"}});
  REQUIRE(a.wait_output("sb-done"));

  for (const std::string proto : {"rexec.v1", "rexec.v2"}) {
    DYNAMIC_SECTION(proto) {
      TestSocket b(s.sys.loop());
      REQUIRE(b.open(s.url("sb-b" + proto.substr(6)), s.token, proto));
      REQUIRE(b.wait_output("sb-done"));
      a.send_json({{"type", "input"}, {"data", "echo live-'after'\n"}});
      REQUIRE(b.wait_output("live-after"));
      const std::string out = b.output();
      CHECK(rx::test::lines_matching(out, "S[0-9]+") == rx::test::numbered("S", 1, 200));
      CHECK(out.find("sb-done") < out.rfind("live-after"));
      CHECK(b.messages("gap").empty());
    }
  }
}

TEST_CASE("gap: asking for output older than the ring gives a marker, then the ring",
          "[integration]") {
  Setup s;
  TestSocket a(s.sys.loop());
  REQUIRE(a.open(s.url("gap-a"), s.token, "rexec.v2"));
  REQUIRE(a.wait_type("shell_started"));
  // 400,000 bytes: more than the 256 KiB ring.
  a.send_json({{"type", "input"},
               {"data", "head -c 400000 /dev/zero | tr '\\0' x; echo; echo big-'done'\n"}});
  REQUIRE(a.wait_output("big-done", 20s));
  s.sys.loop().run_for(500ms);  // the prompt after it arrives too: the ring's end is settled
  const std::uint64_t end = a.output_end_offset();

  TestSocket b(s.sys.loop());
  REQUIRE(b.open(s.url("gap-b", "&offset=10"), s.token, "rexec.v2"));
  REQUIRE(b.wait_output("big-done"));
  const auto gaps = b.messages("gap");
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0]["data"]["from"] == 10);
  const std::uint64_t to = gaps[0]["data"]["to"].get<std::uint64_t>();
  CHECK(to == end - 256 * 1024);
  // After the marker: the offset, then exactly the ring's bytes.
  CHECK(b.messages("offset").front()["data"].get<std::uint64_t>() == to);
  CHECK(b.output().size() == 256 * 1024);
}

TEST_CASE("agent link lost: output made while it was away arrives once, in order",
          "[integration]") {
  rx::test::ServerOptions o;
  o.agent_grace = 30s;  // the viewer waits for the agent
  Setup s(o);
  TestSocket v(s.sys.loop());
  REQUIRE(v.open(s.url("lost-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"},
               {"data", "for i in $(seq 1 60); do echo N$i; sleep 0.05; done; echo lost-'fin'\n"}});
  REQUIRE(v.wait_output("N5"));
  // Freeze the agent: the server hears nothing, declares it offline after pong_timeout and
  // closes the link; the shell goes on writing into the PTY meanwhile.
  s.agent.process->signal(SIGSTOP);
  REQUIRE(v.wait_type("agent_disconnected", 10s));
  s.agent.process->signal(SIGCONT);
  REQUIRE(v.wait_type("agent_connected", 20s));
  const bool done = v.wait_output("lost-fin", 20s);
  if (!done) s.sys.dump_logs();
  REQUIRE(done);
  CHECK(rx::test::lines_matching(v.output(), "N[0-9]+") == rx::test::numbered("N", 1, 60));
  CHECK(v.messages("gap").empty());
}

TEST_CASE("slow consumer: output dropped for a stalled viewer is reported as a gap",
          "[integration]") {
  // Output is dropped for a slow viewer only while another viewer of the session keeps up
  // (otherwise the session is paused, flow_test.cpp); on a v1 agent link, as here, the same.
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer's slowdown the "fast" viewer falls behind too, so the session is
  // paused rather than dropped for: the premise of this test does not hold there.
  WARN("skipped under ThreadSanitizer");
  return;
#endif
  // This test is about the gap, not the stall: under AddressSanitizer the 40 MB take about as
  // long as the default 10 s stall, and the stalled viewer was closed 1008 before its gap came
  // (the stall has its own test in flow_test.cpp).
  rx::test::ServerOptions o;
  o.extra_args = {"--slow-consumer-stall", "120s"};
  Setup s(o, {"REXEC_PROTOCOL=v1"});
  rx::test::Loop fast_loop;
  TestSocket fast(fast_loop);
  TestSocket v(s.sys.loop());
  REQUIRE(v.open(s.url("slow-v"), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  REQUIRE(fast.open(s.url("fast-v"), s.token, "rexec.v2"));
  REQUIRE(fast.wait_type("shell_started"));
  v.send_json({{"type", "input"}, {"data", "echo slow-'start'\n"}});
  REQUIRE(v.wait_output("slow-start"));
  v.send_json({{"type", "input"},
               {"data", "head -c 40000000 /dev/zero | tr '\\0' y; echo; echo slow-'done'\n"}});
  s.sys.loop().run_for(50ms);  // the command is on its way
  // Stop reading v: its loop does not run, so its socket buffers fill, then the server's queue
  // for it passes its limit and the server drops output for it. The fast viewer reads all.
  REQUIRE(fast.wait_output("slow-done", 60s));
  // Reading again: the queued output arrives, then the marker for what was dropped (at the
  // latest when the queue drains), then whatever the shell says next.
  const auto newest_has = [&](const std::string& needle) {
    const auto& f = v.frames();
    for (std::size_t i = f.size() > 20 ? f.size() - 20 : 0; i < f.size(); ++i) {
      if (f[i].data.find(needle) != std::string::npos) return true;
    }
    return false;
  };
  REQUIRE(s.sys.loop().run_until([&] { return newest_has(R"("type":"gap")"); }, 60s));
  v.send_json({{"type", "input"}, {"data", "echo after-'slow'\n"}});
  REQUIRE(s.sys.loop().run_until([&] { return newest_has("after-slow"); }, 20s));
  const auto gaps = v.messages("gap");
  REQUIRE_FALSE(gaps.empty());
  const auto from = gaps[0]["data"]["from"].get<std::uint64_t>();
  const auto to = gaps[0]["data"]["to"].get<std::uint64_t>();
  CHECK(to > from);
  // Every byte is accounted for: received + reported missing = produced.
  std::uint64_t missing = 0;
  for (const auto& g : gaps) {
    missing += g["data"]["to"].get<std::uint64_t>() - g["data"]["from"].get<std::uint64_t>();
  }
  CHECK(v.output_end_offset() - missing ==
        v.output().size() + v.messages("offset").front()["data"].get<std::uint64_t>());
}
