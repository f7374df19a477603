// SPDX-License-Identifier: MIT
// Flow control end to end on a v2 agent link (PROTOCOL §7, docs/protocol.md "Flow control"): a
// viewer that stops reading pauses its shell (the producing process blocks in write) instead of
// growing anyone's memory; reading again resumes it; a viewer that stays behind past the stall
// is closed with 1008 and the shell goes on; one slow viewer does not hold back a fast one.
// "Stops reading" is real: the test's loop does not run, so its socket buffers fill.
#include <catch2/catch.hpp>

#include <dirent.h>

#include <optional>
#include <string>
#include <thread>

#include "online_agent.h"

using rx::test::ServerOptions;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

// The pid of the process whose command line contains `needle` (as NUL-separated words).
std::optional<pid_t> find_process(const std::string& needle) {
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return std::nullopt;
  std::optional<pid_t> found;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = rx::test::read_file("/proc/" + name + "/cmdline");
    for (char& c : cmd) {
      if (c == '\0') c = ' ';
    }
    if (cmd.find(needle) != std::string::npos) {
      found = static_cast<pid_t>(std::stol(name));
      break;
    }
  }
  ::closedir(d);
  return found;
}

// Bytes the process has written so far.
std::uint64_t written(pid_t pid) { return rx::test::proc_number(pid, "io", "wchar:"); }

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::uint64_t rss_kib(pid_t pid) { return rx::test::proc_number(pid, "status", "VmRSS:"); }

// A shell command that writes `bytes` of text as fast as the terminal takes it; its process is
// found by `tag`.
std::string producer(const std::string& tag, const std::string& bytes) {
  return "yes " + tag + " | head -c " + bytes + "; echo; echo " + tag + "-'done'\n";
}

struct Setup : rx::test::OnlineAgent {
  explicit Setup(ServerOptions o = {}, const std::vector<std::string>& agent_env = {})
      : OnlineAgent(std::move(o), "flo", "flow", agent_env) {}

  [[nodiscard]] std::string url(const std::string& conn_id) const { return terminal_url(conn_id); }
};

// Opens viewer `conn_id` (v2) and starts producer(tag, bytes) in its shell; returns the pid of
// the producer's `head`.
pid_t start_producer(Setup& s, TestSocket& v, const std::string& conn_id, const std::string& tag,
                     const std::string& bytes) {
  REQUIRE(v.open(s.url(conn_id), s.token, "rexec.v2"));
  REQUIRE(v.wait_type("shell_started"));
  v.send_json({{"type", "input"}, {"data", producer(tag, bytes)}});
  std::optional<pid_t> pid;
  REQUIRE(s.sys.loop().run_until(
      [&] { return (pid = find_process("head -c " + bytes)).has_value(); }, 10s));
  return *pid;
}

// Waits until `pid` has written nothing for `quiet`; returns its total then, or nullopt if it
// kept writing for `limit`. The test loop does not run meanwhile (its sockets are not read)
// unless `reading` is given.
std::optional<std::uint64_t> wait_blocked(pid_t pid, std::chrono::milliseconds quiet,
                                          std::chrono::milliseconds limit,
                                          rx::test::Loop* reading = nullptr) {
  const auto until = std::chrono::steady_clock::now() + limit;
  std::uint64_t last = written(pid);
  auto since = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < until) {
    if (reading != nullptr) {
      reading->run_for(100ms);
    } else {
      std::this_thread::sleep_for(100ms);
    }
    const std::uint64_t now = written(pid);
    if (now != last) {
      last = now;
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since >= quiet) {
      return last;
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("flow control: a viewer that stops reading pauses the shell, reading resumes it",
          "[integration][flow]") {
  // v2: the agent stops reading that PTY (shell_flow). v1: the server stops reading the agent.
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer the v1 link (base64 JSON both ways) moves 200 MB too slowly for the
  // time limits; the v1 pause is covered by the other builds.
  const std::string protocol = "v2";
#else
  const std::string protocol = GENERATE(as<std::string>{}, "v2", "v1");
#endif
  INFO("agent link " << protocol);
  // This test is about pausing, not the stall: on a loaded machine the producer can take longer
  // than the default 10 s stall to come to a halt, and the viewer would be closed 1008.
  ServerOptions o;
  o.extra_args = {"--slow-consumer-stall", "120s"};
  Setup s(o, {"REXEC_PROTOCOL=" + protocol});
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  const pid_t pid = start_producer(s, v, "flow-a", "flowprod", "200000000");
  // Output flows while we read (on a loaded machine, wait until it surely does).
  REQUIRE(loop.run_until([&] { return v.output().size() > (1U << 20U); }, 20s));

  // Stop reading. The producer must come to a halt: blocked in write. (Within seconds; the
  // limit is for a machine busy with other work.)
  const auto blocked_at = wait_blocked(pid, 1500ms, 60s);
  REQUIRE(blocked_at.has_value());
  const std::uint64_t server_rss = rss_kib(s.sys.server().pid());
  const std::uint64_t agent_rss = rss_kib(s.agent.process->pid());
  WARN("producer blocked after " << *blocked_at << " bytes; server RSS " << server_rss
                                 << " KiB, agent RSS " << agent_rss << " KiB");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // (Sanitizers' shadow memory and quarantine make RSS meaningless; the producer blocking is
  // the proof there.)
  CHECK(server_rss < 96U * 1024U);
  CHECK(agent_rss < 48U * 1024U);
#endif
  CHECK(rx::test::read_file(s.sys.dir() + "/server.log").find("session paused") !=
        std::string::npos);

  // Read again: it goes on to the end, and the viewer gets every byte, with no gap.
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer moves the v1 link's base64 JSON at a few MB/s: the rest of the 200 MB took
  // 57 to 82 s in CI runs, so 60 s was not always enough.
  constexpr auto kDrain = 180s;
#else
  constexpr auto kDrain = 60s;
#endif
  const bool done = v.wait_output("flowprod-done", kDrain);
  if (!done) s.sys.dump_logs();
  REQUIRE(done);
  CHECK(v.messages("gap").empty());
  CHECK(count(v.output(), "flowprod\r\n") == 200000000U / 9U);  // every whole line, once
}

TEST_CASE("flow control: a v2 viewer that asks for a pause blocks the shell while it reads on",
          "[integration][flow]") {
  // What the web page does when its terminal has more to draw than it can (docs/web.md): it
  // reads everything the server sends, yet the shell must stop, not the page's memory grow.
  // A short stall: a viewer that asked for the pause is not closed for being behind.
  ServerOptions o;
  o.extra_args = {"--slow-consumer-stall", "1s"};
  Setup s(o);
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  const pid_t pid = start_producer(s, v, "flow-ask", "askprod", "50000000");
  REQUIRE(loop.run_until([&] { return v.output().size() > (1U << 20U); }, 20s));
  v.send_json({{"type", "flow"}, {"data", {{"paused", true}}}});
  const auto blocked_at = wait_blocked(pid, 1500ms, 60s, &loop);
  REQUIRE(blocked_at.has_value());
  CHECK(*blocked_at < 50000000U);
  const std::size_t received = v.output().size();
  loop.run_for(2500ms);                  // past the 1 s stall, twice
  CHECK(v.output().size() == received);  // it read all there was: the shell is what stopped
  CHECK_FALSE(v.closed());
  CHECK(rx::test::read_file(s.sys.dir() + "/server.log").find("session paused") !=
        std::string::npos);

  v.send_json({{"type", "flow"}, {"data", {{"paused", false}}}});
  const bool done = v.wait_output("askprod-done", 60s);
  if (!done) s.sys.dump_logs();
  REQUIRE(done);
  CHECK(v.messages("gap").empty());
  CHECK(count(v.output(), "askprod\r\n") == 50000000U / 8U);
}

TEST_CASE("flow control: a viewer behind past the stall is closed 1008 and the shell goes on",
          "[integration][flow]") {
  ServerOptions o;
  o.extra_args = {"--slow-consumer-stall", "2s"};
  Setup s(o);
  auto& loop = s.sys.loop();
  TestSocket v(loop);
  const pid_t pid = start_producer(s, v, "flow-b", "stallprod", "3000000000");
  const auto blocked_at = wait_blocked(pid, 1000ms, 20s);
  REQUIRE(blocked_at.has_value());
  // Past the stall the server closes the viewer; with no viewer left the shell is resumed.
  const bool resumed = [&] {
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(100ms);
      if (written(pid) > *blocked_at + (8U << 20U)) return true;
    }
    return false;
  }();
  CHECK(resumed);
  REQUIRE(v.wait_closed(30s));
  CHECK(v.close_info().close_code == 1008);
  CHECK(rx::test::read_file(s.sys.dir() + "/server.log").find("slow consumer closed") !=
        std::string::npos);
}

TEST_CASE("flow control: one slow viewer does not hold back a fast one", "[integration][flow]") {
  Setup s;
  rx::test::Loop fast_loop;
  TestSocket slow(s.sys.loop());
  TestSocket fast(fast_loop);
  REQUIRE(slow.open(s.url("flow-slow"), s.token, "rexec.v2"));
  REQUIRE(slow.wait_type("shell_started"));
  REQUIRE(fast.open(s.url("flow-fast"), s.token, "rexec.v2"));
  REQUIRE(fast.wait_type("shell_started"));
  fast.send_json({{"type", "input"}, {"data", producer("mixprod", "60000000")}});
  // Only the fast viewer's loop runs: it gets the whole output; the slow one falls behind, and
  // gets a gap marker for what was dropped when it reads again.
  REQUIRE(fast.wait_output("mixprod-done", 60s));
  CHECK(fast.messages("gap").empty());
  CHECK(count(fast.output(), "mixprod\r\n") == 60000000U / 8U);
  REQUIRE(s.sys.loop().run_until([&] { return !slow.messages("gap").empty(); }, 30s));
}

TEST_CASE("a 1 MiB paste in one message reaches the shell whole, on v1 and v2 agent links",
          "[integration][flow]") {
  for (const char* protocol : {"v1", "v2"}) {
    INFO("agent link " << protocol);
    System sys;
    const std::string token = sys.add_user("pat");
    auto agent = sys.start_agent(token, "paste", {std::string("REXEC_PROTOCOL=") + protocol});
    REQUIRE(sys.wait_online(token, agent.id));
    TestSocket v(sys.loop());
    REQUIRE(v.open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=paste"), token, "rexec.v2"));
    REQUIRE(v.wait_type("shell_started"));
    v.send_json({{"type", "input"}, {"data", "stty -echo; echo paste-'ready'; wc -c\n"}});
    REQUIRE(v.wait_output("paste-ready"));
    sys.loop().run_for(200ms);  // wc is reading
    std::string paste;
    for (int i = 0; paste.size() < (1U << 20U); ++i) {
      std::string line = std::to_string(i);
      line.resize(63, 'p');
      paste += line + "\n";
    }
    REQUIRE(paste.size() == 1U << 20U);
    v.send_binary(paste);
    v.send_binary("\x04");  // end of input: wc prints its count
    CHECK(v.wait_output("1048576", 30s));
    if (!v.wait_output("1048576", 1ms)) sys.dump_logs();
  }
}
