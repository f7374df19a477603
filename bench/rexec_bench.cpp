// SPDX-License-Identifier: MIT
// rexec-bench: the real rexec-server and rexec-agent on 127.0.0.1, measured against the physical
// limits of the same machine in the same run (docs/performance.md). Prints one table: each
// figure is the median of --runs runs with their min and max, next to its ceiling.
//
//   rexec-bench [--runs 5] [--bytes 1073741824] [--echoes 1000] [--idle-seconds 60]
//               [--sessions 0,1,100,1000] [--agents 1000,10000] [--terminals 1000]
//               [--only throughput,echo,memory,scale,terminals,slow,paste,idle,cluster,files,
//                       handover,size,weight] [--weight-bytes 50331648]
//               [--quick]
//
// --quick is the CI smoke: tiny sizes, one run; it fails only on a functional error (a wrong
// byte count, a socket that never opens), never on a time.
#include "rexec/common/unique_fd.h"
#include "rexec/net/http_client.h"
#include "rexec/pty/pty_process.h"
#include "rexec/server/auth/tokens.h"
#include "rexec/server/http_server.h"
#include "rexec/server/storage/sqlite_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.h"
#include "fixture.h"
#include "fleet.h"
#include "percentile.h"
#include "test_certs.h"
#include "test_client.h"

namespace {

using rx::bench::percentile;

using rx::test::ServerOptions;
using rx::test::System;
using rx::test::TestSocket;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  int runs = 5;
  std::uint64_t bytes = 1ULL << 30U;  // raw bytes base64-encoded by the throughput command
  int echoes = 1000;
  int idle_seconds = 60;
  std::vector<int> sessions{0, 1, 100, 1000};
  std::vector<int> agents{1000, 10000};
  int terminals = 1000;
  // Raw bytes of each weight flood: base64 makes 64 MiB of terminal output of them.
  std::uint64_t weight_bytes = 48ULL << 20U;
  std::set<std::string> only;
  bool quick = false;
  // The scale server's --max-pending-requests; empty: its default. 0 gives lws's own accepting,
  // the storm before scripts/lws-patches/0006, for a before/after from one build.
  std::string max_pending_requests;

  [[nodiscard]] bool want(const std::string& part) const {
    return only.empty() || only.count(part) != 0;
  }
};

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- figures and the table ----

struct Stat {
  double median = 0, min = 0, max = 0;
};

Stat stat_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  const double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {median, v.front(), v.back()};
}

struct Row {
  std::string what;
  std::string unit;
  Stat value;
  std::string ceiling;  // e.g. "raw PTY 812 MB/s", or a target
  std::string verdict;  // ratio or comparison
};

std::vector<Row> g_rows;

std::string fmt(double v) {
  char buf[64];
  if (v >= 100 || v == 0) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

void add_row(std::string what, std::string unit, Stat s, std::string ceiling = "",
             std::string verdict = "") {
  std::fprintf(stderr, "  %s: %s %s (min %s, max %s)\n", what.c_str(), fmt(s.median).c_str(),
               unit.c_str(), fmt(s.min).c_str(), fmt(s.max).c_str());
  g_rows.push_back({std::move(what), std::move(unit), s, std::move(ceiling), std::move(verdict)});
}

void print_table(const Options& o) {
  std::printf("\n| measure | median | min | max | unit | ceiling / target | ratio / verdict |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Row& r : g_rows) {
    std::printf("| %s | %s | %s | %s | %s | %s | %s |\n", r.what.c_str(),
                fmt(r.value.median).c_str(), fmt(r.value.min).c_str(), fmt(r.value.max).c_str(),
                r.unit.c_str(), r.ceiling.c_str(), r.verdict.c_str());
  }
  std::printf("\n%d run(s) per figure%s.\n", o.runs,
              o.quick ? " (--quick smoke: not figures)" : "");
}

// ---- /proc ----

double rss_mib(pid_t pid) {
  const std::uint64_t kib = rx::test::proc_number(pid, "status", "VmRSS:");
  if (kib == 0) fail("no VmRSS for " + std::to_string(pid));
  return static_cast<double>(kib) / 1024.0;
}

// CPU seconds (user + system) used so far by `pid`.
double cpu_seconds(pid_t pid) {
  const std::string st = rx::test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto close = st.rfind(')');
  std::istringstream in(st.substr(close + 2));
  std::string field;
  std::vector<std::string> f;
  while (in >> field) f.push_back(field);
  // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(f.at(11)) + std::stod(f.at(12))) / ticks;
}

// ---- a running system ----

struct Bench {
  std::unique_ptr<System> sys;
  std::string token;
  System::Agent agent;

  Bench(const std::vector<std::string>& server_args, const std::vector<std::string>& agent_env,
        const rx::test::TestCerts* tls = nullptr) {
    ServerOptions so;
    so.tls = tls;
    so.ping_interval = 15s;
    so.pong_timeout = 45s;
    so.session_linger = 60s;
    so.agent_grace = 60s;
    so.log_level = "warn";
    so.extra_args = {"--max-sessions-per-agent", "5000",  "--max-sockets-per-user", "20000",
                     "--max-sockets-per-ip",     "20000", "--max-conns-per-ip",     "0"};
    so.extra_args.insert(so.extra_args.end(), server_args.begin(), server_args.end());
    sys = std::make_unique<System>(so);
    token = sys->add_user("bench", "enterprise", true);
    std::vector<std::string> env = agent_env;
    env.insert(env.end(), {"REXEC_LOG_LEVEL=warn", "REXEC_MAX_SESSIONS=5000"});
    agent = sys->start_agent(token, "bench-agent", env);
    if (!sys->wait_online(token, agent.id, 15s)) {
      sys->dump_logs();
      fail("agent did not come online");
    }
  }

  std::string url(const std::string& conn_id, bool split = true) const {
    return sys->ws_url("/ws/agent/" + agent.id + "/terminal?id=" + conn_id +
                       (split ? "&newSession=true" : ""));
  }

  // A terminal socket whose shell has started.
  std::unique_ptr<TestSocket> open(const std::string& conn_id, bool v2, bool split = true) {
    auto s = std::make_unique<TestSocket>(sys->loop());
    if (!s->open(url(conn_id, split), token, v2 ? "rexec.v2" : "rexec.v1")) {
      sys->dump_logs();
      fail("terminal " + conn_id + " did not open");
    }
    if (!s->wait_type("shell_started", 20s)) fail("shell " + conn_id + " did not start");
    return s;
  }
};

// Types `command` and runs the loop until `sentinel` has arrived after it; returns the seconds.
// Only the last bytes of output are kept, so any size fits in memory.
double run_to_sentinel(rx::test::Loop& loop, TestSocket& s, const std::string& command,
                       const std::string& sentinel, std::chrono::seconds limit) {
  std::string tail;
  bool seen = false;
  s.set_sink([&](std::string_view data, bool) {
    tail.append(data);
    if (tail.find(sentinel) != std::string::npos) seen = true;
    if (tail.size() > 4 * sentinel.size() + 64) tail.erase(0, tail.size() - sentinel.size() - 64);
  });
  const auto start = Clock::now();
  s.send_binary(command);
  if (!loop.run_until([&] { return seen; }, limit)) fail("no sentinel: " + sentinel);
  const double t = seconds_since(start);
  s.set_sink([](std::string_view, bool) {});
  return t;
}

// ---- raw PTY: the ceiling for the terminal figures ----

class RawPty {
 public:
  explicit RawPty(const std::string& command) {
    rx::pty::SpawnOptions o;
    o.argv_override = {"/bin/sh", "-c", command};
    auto p = rx::pty::spawn_pty(o);
    if (!p) fail("spawn_pty: " + p.error().message);
    proc_ = std::make_unique<rx::pty::PtyProcess>(std::move(p).value());
  }

  ~RawPty() {
    ::kill(proc_->pid(), SIGKILL);
    ::waitpid(proc_->pid(), nullptr, 0);
  }

  RawPty(const RawPty&) = delete;
  RawPty& operator=(const RawPty&) = delete;
  RawPty(RawPty&&) = delete;
  RawPty& operator=(RawPty&&) = delete;

  // Reads until `sentinel` has been seen; false on EOF or time-out.
  bool read_until(const std::string& sentinel, std::chrono::seconds limit) {
    std::vector<char> buf(64 * 1024);
    std::string tail;
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      pollfd p{proc_->master_fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::read(proc_->master_fd(), buf.data(), buf.size());
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      tail.append(buf.data(), static_cast<std::size_t>(n));
      if (tail.find(sentinel) != std::string::npos) return true;
      if (tail.size() > 256) tail.erase(0, tail.size() - 128);
    }
    return false;
  }

  [[nodiscard]] int master_fd() const { return proc_->master_fd(); }

  void write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(proc_->master_fd(), bytes.data(), bytes.size());
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{proc_->master_fd(), POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      if (n <= 0) fail("raw pty write");
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

 private:
  std::unique_ptr<rx::pty::PtyProcess> proc_;
};

// The throughput command: `bytes` of zeros as base64 in 1000-character lines, then a sentinel.
std::string flood_command(std::uint64_t bytes, const std::string& sentinel) {
  return "head -c " + std::to_string(bytes) + " /dev/zero | base64 -w 1000; echo " + sentinel;
}

// Terminal bytes the flood puts on the wire: base64 text, with each \n turned into \r\n.
double flood_output_bytes(std::uint64_t bytes) {
  const double text = static_cast<double>((bytes + 2) / 3 * 4);
  return text + 2 * std::ceil(text / 1000);
}

// ---- raw loopback WebSocket: the ceiling for the network path ----

// A child process serving one WebSocket that sends `bytes` in 64 KiB binary frames, then a text
// frame "end", as fast as the client takes them.
class WsSource final : public rx::server::WsHandler {
 public:
  WsSource(rx::server::WsConn& c, std::uint64_t bytes) : conn_(c), left_(bytes) { on_drain(); }

  void on_message(std::string_view, bool) override {}

  void on_drain() override {
    constexpr std::size_t kFrame = 64U * 1024U;
    while (left_ > 0 && conn_.queued_bytes() < (4U << 20U)) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(kFrame, left_));
      conn_.send(rx::net::make_message(n, true));
      left_ -= n;
    }
    if (left_ == 0 && !ended_) {
      ended_ = true;
      conn_.send_text("end");
    }
  }

  void on_closed() override {}

 private:
  rx::server::WsConn& conn_;
  std::uint64_t left_;
  bool ended_ = false;
};

// An HttpServer with `make()`'s handlers in a child process (as rexec-server is a process of
// its own): returns its port and pid. The caller kills it.
std::pair<int, pid_t> fork_http_server(const std::function<rx::server::HttpHandlers()>& make) {
  int ready[2];
  if (::pipe(ready) != 0) fail("pipe");
  const pid_t child = ::fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    ::close(ready[0]);
    uv_loop_t loop;
    uv_loop_init(&loop);
    rx::server::HttpServerOptions o;
    o.loop = &loop;
    o.port = 0;
    o.max_conns_per_ip = 0;
    auto server = rx::server::HttpServer::start(o, make());
    if (!server) ::_exit(2);
    const int port = (*server)->port();
    if (::write(ready[1], &port, sizeof port) != sizeof port) ::_exit(3);
    uv_run(&loop, UV_RUN_DEFAULT);
    ::_exit(0);
  }
  ::close(ready[1]);
  int port = 0;
  if (::read(ready[0], &port, sizeof port) != sizeof port) fail("the child server did not start");
  ::close(ready[0]);
  return {port, child};
}

double raw_websocket_seconds(std::uint64_t bytes) {
  const auto [port, child] = fork_http_server([bytes] {
    rx::server::HttpHandlers h;
    h.on_request = [](const rx::server::HttpRequest&) {
      return rx::server::HttpResponse::json(404, "{}");
    };
    h.on_upgrade = [bytes](const rx::server::HttpRequest&) {
      rx::server::UpgradeDecision d;
      d.accept = [bytes](rx::server::WsConn& c) { return std::make_unique<WsSource>(c, bytes); };
      return d;
    };
    return h;
  });
  rx::test::Loop loop;
  TestSocket s(loop);
  std::uint64_t got = 0;
  bool done = false;
  if (!s.open("ws://127.0.0.1:" + std::to_string(port) + "/", "", "rexec.v2")) {
    fail("raw websocket did not open");
  }
  const auto start = Clock::now();
  s.set_sink([&](std::string_view data, bool binary) {
    if (binary) got += data.size();
    if (!binary && data == "end") done = true;
  });
  // Frames that arrived with the open are not counted: the clock started after them.
  if (!loop.run_until([&] { return done; }, 600s)) fail("raw websocket: no end");
  const double t = seconds_since(start);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  if (got + (4U << 20U) < bytes) fail("raw websocket: short count");
  return t;
}

// ---- the parts ----

void bench_throughput(const Options& o) {
  std::fprintf(stderr, "throughput: %llu bytes of zeros as base64, %d runs\n",
               static_cast<unsigned long long>(o.bytes), o.runs);
  const double mb = flood_output_bytes(o.bytes) / 1e6;
  std::vector<double> raw_pty;
  std::vector<double> raw_ws;
  std::vector<double> v1;
  std::vector<double> v2;
  std::vector<double> cpu_v1;  // agent + server CPU ms per MB of output
  std::vector<double> cpu_v2;
  for (int r = 0; r < o.runs; ++r) {
    {
      RawPty pty("stty -echo; " + flood_command(o.bytes, "raw-'end'"));
      const auto start = Clock::now();
      if (!pty.read_until("raw-end", 600s)) fail("raw pty: no sentinel");
      raw_pty.push_back(mb / seconds_since(start));
    }
    raw_ws.push_back(static_cast<double>(o.bytes) / 1e6 / raw_websocket_seconds(o.bytes));
  }
  for (const bool v2_link : {false, true}) {
    Bench b({},
            v2_link ? std::vector<std::string>{} : std::vector<std::string>{"REXEC_PROTOCOL=v1"});
    auto s = b.open("tp", v2_link);
    run_to_sentinel(b.sys->loop(), *s, "stty -echo; echo warm-'up'\n", "warm-up", 20s);
    for (int r = 0; r < o.runs; ++r) {
      const std::string sentinel = "tp-end-" + std::to_string(r);
      const pid_t agent = b.agent.process->pid();
      const pid_t server = b.sys->server().pid();
      const double cpu0 = cpu_seconds(agent) + cpu_seconds(server);
      const double t = run_to_sentinel(
          b.sys->loop(), *s, flood_command(o.bytes, "tp-'end'-" + std::to_string(r)) + "\n",
          sentinel, 600s);
      (v2_link ? v2 : v1).push_back(mb / t);
      const double cpu = cpu_seconds(agent) + cpu_seconds(server) - cpu0;
      (v2_link ? cpu_v2 : cpu_v1).push_back(cpu * 1e3 / mb);
    }
  }
  const Stat pty = stat_of(raw_pty);
  const Stat s1 = stat_of(v1);
  const Stat s2 = stat_of(v2);
  add_row("output throughput, raw PTY (ceiling)", "MB/s", pty);
  add_row("output throughput, raw loopback WebSocket (ceiling)", "MB/s", stat_of(raw_ws));
  add_row("output throughput, v1 (agent link and viewer)", "MB/s", s1,
          "raw PTY " + fmt(pty.median) + " MB/s", fmt(s1.median / pty.median) + " × raw PTY");
  add_row("output throughput, v2 (agent link and viewer)", "MB/s", s2,
          "≥ 0.8 × raw PTY, ≥ 1.5 × v1",
          fmt(s2.median / pty.median) + " × raw PTY, " + fmt(s2.median / s1.median) + " × v1");
  const Stat c1 = stat_of(cpu_v1);
  const Stat c2 = stat_of(cpu_v2);
  add_row("CPU per MB of output, agent + server, v1", "ms/MB", c1);
  add_row("CPU per MB of output, agent + server, v2", "ms/MB", c2, "v1 " + fmt(c1.median),
          fmt(c1.median / c2.median) + " × less CPU than v1");
}

// One keystroke at a time into `cat > /dev/null` (the terminal's own echo answers), so every
// round trip is: viewer → server → agent → PTY → agent → server → viewer.
std::vector<double> echo_rexec(rx::test::Loop& loop, TestSocket& s, int n) {
  run_to_sentinel(loop, s, "stty echo; cat > /dev/null\n", "cat > /dev/null", 20s);
  loop.run_for(200ms);
  std::vector<double> ms;
  std::string got;
  s.set_sink([&](std::string_view data, bool binary) {
    if (binary) {
      got.append(data);
    } else {
      auto j = nlohmann::json::parse(data, nullptr, false);
      if (j.is_object() && j.value("type", "") == "output") got += j["data"].get<std::string>();
    }
  });
  for (int i = 0; i < n; ++i) {
    const bool newline = i % 64 == 63;
    const std::string key = newline ? "\r" : std::string(1, static_cast<char>('a' + i % 26));
    const std::string want = newline ? "\r\n" : key;
    got.clear();
    const auto start = Clock::now();
    s.send_binary(key);
    if (!loop.run_until([&] { return got.find(want) != std::string::npos; }, 10s)) {
      fail("echo lost");
    }
    if (!newline) ms.push_back(seconds_since(start) * 1e3);
  }
  s.set_sink([](std::string_view, bool) {});
  s.send_binary("\x03");
  return ms;
}

std::vector<double> echo_raw(int n) {
  RawPty pty("echo raw-'ready'; exec cat > /dev/null");
  if (!pty.read_until("raw-ready", 10s)) fail("raw echo: no shell");
  std::this_thread::sleep_for(100ms);
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    const bool newline = i % 64 == 63;
    const std::string key = newline ? "\r" : std::string(1, static_cast<char>('a' + i % 26));
    const auto start = Clock::now();
    pty.write(key);
    if (!pty.read_until(newline ? "\r\n" : key, 10s)) fail("raw echo lost");
    if (!newline) ms.push_back(seconds_since(start) * 1e3);
  }
  return ms;
}

void bench_echo(const Options& o) {
  std::fprintf(stderr, "echo: %d keystrokes per run, %d runs\n", o.echoes, o.runs);
  std::vector<double> raw50, raw99, rawmax;
  for (int r = 0; r < o.runs; ++r) {
    const auto ms = echo_raw(o.echoes);
    raw50.push_back(percentile(ms, 0.5));
    raw99.push_back(percentile(ms, 0.99));
    rawmax.push_back(*std::max_element(ms.begin(), ms.end()));
  }
  const Stat raw_p99 = stat_of(raw99);
  add_row("keystroke echo p50, raw PTY (ceiling)", "ms", stat_of(raw50));
  add_row("keystroke echo p99, raw PTY (ceiling)", "ms", raw_p99);
  add_row("keystroke echo max, raw PTY", "ms", stat_of(rawmax));
  for (const bool v2 : {false, true}) {
    Bench b({}, v2 ? std::vector<std::string>{} : std::vector<std::string>{"REXEC_PROTOCOL=v1"});
    auto s = b.open("echo", v2, false);
    std::vector<double> p50, p99, pmax;
    for (int r = 0; r < o.runs; ++r) {
      const auto ms = echo_rexec(b.sys->loop(), *s, o.echoes);
      p50.push_back(percentile(ms, 0.5));
      p99.push_back(percentile(ms, 0.99));
      pmax.push_back(*std::max_element(ms.begin(), ms.end()));
    }
    const std::string name = v2 ? "v2" : "v1";
    const Stat s99 = stat_of(p99);
    add_row("keystroke echo p50, " + name, "ms", stat_of(p50));
    add_row("keystroke echo p99, " + name, "ms", s99, "≤ raw p99 + 1 ms",
            s99.median <= raw_p99.median + 1.0
                ? "met (+" + fmt(s99.median - raw_p99.median) + ")"
                : "missed (+" + fmt(s99.median - raw_p99.median) + ")");
    add_row("keystroke echo max, " + name, "ms", stat_of(pmax));
  }
}

// ---- shell handover: what the keeper costs, and how long a restart freezes a terminal ----

void bench_handover(const Options& o) {
  std::fprintf(stderr, "handover: echo with and without the keeper, %d restarts\n", o.runs);
  // The keeper is off the data path: echo through a kept shell against one that is the agent's.
  for (const bool kept : {false, true}) {
    Bench b({},
            kept ? std::vector<std::string>{"REXEC_HANDOVER_S=30"} : std::vector<std::string>{});
    auto s = b.open("echo", true, false);
    std::vector<double> p50, p99;
    for (int r = 0; r < o.runs; ++r) {
      const auto ms = echo_rexec(b.sys->loop(), *s, o.echoes);
      p50.push_back(percentile(ms, 0.5));
      p99.push_back(percentile(ms, 0.99));
    }
    const std::string name = kept ? "kept shell (handover on)" : "agent's own shell";
    add_row("keystroke echo p50, " + name, "ms", stat_of(p50));
    add_row("keystroke echo p99, " + name, "ms", stat_of(p99));
  }
  // A restart: SIGTERM to the agent and a new one started at once, while the shell prints a line
  // every 10 ms. The freeze is the longest pause between two output lines the viewer saw.
  Bench b({}, {"REXEC_HANDOVER_S=30"});
  auto s = b.open("ho", true, false);
  std::string out;
  Clock::time_point last = Clock::now();
  double longest = 0;
  s->set_sink([&](std::string_view data, bool binary) {
    if (binary) {
      out.append(data);
    } else {
      auto j = nlohmann::json::parse(data, nullptr, false);
      if (!j.is_object() || j.value("type", "") != "output") return;
      out += j["data"].get<std::string>();
    }
    const auto now = Clock::now();
    longest = std::max(longest, std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
  });
  s->send_binary("while :; do echo tick; sleep 0.01; done\n");
  b.sys->loop().run_for(500ms);
  std::vector<double> freeze, back;
  double keeper_rss = 0;
  for (int r = 0; r < o.runs; ++r) {
    longest = 0;
    const auto start = Clock::now();
    b.agent.process->signal(SIGTERM);
    // The loop runs meanwhile, so output is timed as it arrives.
    if (!b.sys->loop().run_until([&] { return b.agent.process->wait(0ms).has_value(); }, 15s)) {
      fail("agent did not stop");
    }
    b.sys->restart_agent(b.agent, {"REXEC_HANDOVER_S=30", "REXEC_LOG_LEVEL=warn"});
    const std::size_t before = out.size();
    if (!b.sys->loop().run_until([&] { return out.size() > before; }, 20s)) {
      b.sys->dump_logs();
      fail("no output after the restart");
    }
    back.push_back(seconds_since(start) * 1e3);
    b.sys->loop().run_for(300ms);
    freeze.push_back(longest);
  }
  // The keeper: `rexec-agent keeper --agent-id ID`.
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string cmd = rx::test::read_file(e.path().string() + "/cmdline");
    if (cmd.find(std::string("keeper") + '\0' + "--agent-id" + '\0' + b.agent.id) !=
        std::string::npos) {
      keeper_rss = rss_mib(static_cast<pid_t>(std::stol(e.path().filename().string())));
    }
  }
  s->set_sink([](std::string_view, bool) {});
  add_row("restart: SIGTERM to the first output from the new agent", "ms", stat_of(back));
  add_row("restart: longest pause in the viewer's output", "ms", stat_of(freeze));
  add_row("keeper RSS", "MiB", stat_of({keeper_rss}));
}

// ---- several instances: a user on another instance than the agent's (docs/deploy.md) ----

// A throwaway PostgreSQL cluster for the part (tests/fixtures/pg_cluster.sh), stopped after.
class PgCluster {
 public:
  PgCluster() : dir_("/tmp/rexec-bench-pg-" + std::to_string(::getpid())) {
    const std::string script = std::string(REXEC_FIXTURES_DIR) + "/pg_cluster.sh";
    auto r = rx::test::run_program({"/bin/bash", script, "start", dir_}, dir_ + ".log", 60s);
    if (r.exit_code != 0) fail("cannot start PostgreSQL: " + rx::test::read_file(dir_ + ".log"));
    ::setenv("REXEC_TEST_PG_URL_FILE", (dir_ + "/url").c_str(), 1);
  }

  ~PgCluster() {
    ::unsetenv("REXEC_TEST_PG_URL_FILE");
    (void)rx::test::run_program(
        {"/bin/bash", std::string(REXEC_FIXTURES_DIR) + "/pg_cluster.sh", "stop", dir_},
        dir_ + ".log", 60s);
    std::remove((dir_ + ".log").c_str());
  }

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  PgCluster(PgCluster&&) = delete;
  PgCluster& operator=(PgCluster&&) = delete;

 private:
  std::string dir_;
};

void bench_cluster(const Options& o) {
  std::fprintf(stderr, "cluster: 2 instances, PostgreSQL and Redis; %d runs\n", o.runs);
  PgCluster pg;
  rx::test::ClusterSystem sys(2, "warn");
  auto& loop = sys.loop();
  const std::string token = sys.add_user("bench", true);
  auto agent = sys.start_agent(token, {1});  // on instance 1
  if (!sys.wait_online(token, agent.id, 0, 15s)) {
    sys.dump_logs();
    fail("cluster agent did not come online");
  }
  const double mb = flood_output_bytes(o.bytes) / 1e6;
  std::map<int, std::vector<double>> tput;
  std::map<int, std::vector<double>> p50;
  std::map<int, std::vector<double>> p99;
  std::map<int, std::vector<double>> cpu;  // ms per MB: both instances and Redis
  // CPU seconds so far of what relays the terminal: both instances and Redis. The throughput
  // depends on what else the machine runs; the work per MB much less.
  auto relay_cpu = [&] {
    return cpu_seconds(sys.instance(0).pid()) + cpu_seconds(sys.instance(1).pid()) +
           cpu_seconds(sys.redis().pid());
  };
  // A terminal (a split of its own) through `instance`, its shell started.
  auto open = [&](int instance, const std::string& conn_id) {
    auto s = std::make_unique<TestSocket>(loop);
    const std::string url = sys.ws_url(
        instance, "/ws/agent/" + agent.id + "/terminal?id=" + conn_id + "&newSession=true");
    if (!s->open(url, token, "rexec.v2") || !s->wait_type("shell_started", 20s)) {
      sys.dump_logs();
      fail("cluster terminal did not open");
    }
    return s;
  };
  for (int instance : {1, 0}) {  // the agent's own, then the other
    auto t = open(instance, "ct" + std::to_string(instance));
    run_to_sentinel(loop, *t, "stty -echo; echo warm-'up'\n", "warm-up", 20s);
    for (int r = 0; r < o.runs; ++r) {
      const std::string sentinel = "cl-end-" + std::to_string(r);
      const double cpu0 = relay_cpu();
      const double secs = run_to_sentinel(
          loop, *t, flood_command(o.bytes, "cl-'end'-" + std::to_string(r)) + "\n", sentinel, 600s);
      tput[instance].push_back(mb / secs);
      cpu[instance].push_back((relay_cpu() - cpu0) * 1e3 / mb);
    }
    auto e = open(instance, "ce" + std::to_string(instance));
    for (int r = 0; r < o.runs; ++r) {
      const auto ms = echo_rexec(loop, *e, o.echoes);
      p50[instance].push_back(percentile(ms, 0.5));
      p99[instance].push_back(percentile(ms, 0.99));
    }
  }
  const Stat same = stat_of(tput[1]);
  const Stat cross = stat_of(tput[0]);
  add_row("cluster: output throughput v2, user on the agent's instance", "MB/s", same);
  add_row("cluster: output throughput v2, user on another instance", "MB/s", cross,
          "same instance " + fmt(same.median), fmt(cross.median / same.median) + " × same");
  const Stat same_cpu = stat_of(cpu[1]);
  const Stat cross_cpu = stat_of(cpu[0]);
  add_row("cluster: CPU per MB of output, instances + Redis, same instance", "ms/MB", same_cpu);
  add_row("cluster: CPU per MB of output, instances + Redis, another instance", "ms/MB", cross_cpu,
          "same instance " + fmt(same_cpu.median),
          fmt(cross_cpu.median / same_cpu.median) + " × same");
  const Stat s99 = stat_of(p99[1]);
  const Stat c99 = stat_of(p99[0]);
  add_row("cluster: keystroke echo p50, same instance", "ms", stat_of(p50[1]));
  add_row("cluster: keystroke echo p50, another instance", "ms", stat_of(p50[0]));
  add_row("cluster: keystroke echo p99, same instance", "ms", s99);
  add_row("cluster: keystroke echo p99, another instance", "ms", c99,
          "same instance " + fmt(s99.median), "+" + fmt(c99.median - s99.median) + " ms");
}

// ---- file transfers (PROTOCOL §8) ----

// `size` bytes of random-looking data at `path` (what a real file's bytes cost to move).
void write_random_file(const std::string& path, std::uint64_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::uint64_t x = 0x9E3779B97F4A7C15ULL;
  std::string buf(1U << 20U, '\0');
  while (size > 0) {
    for (std::size_t i = 0; i + 8 <= buf.size(); i += 8) {
      x ^= x << 13U;
      x ^= x >> 7U;
      x ^= x << 17U;
      std::memcpy(buf.data() + i, &x, 8);
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(size, buf.size()));
    out.write(buf.data(), static_cast<std::streamsize>(n));
    size -= n;
  }
  if (!out) fail("cannot write " + path);
}

// The ceiling of a transfer that ends in a file on this disk: read `from`, write `to`, fsync,
// as a local copy does. Seconds.
double local_copy_seconds(const std::string& from, const std::string& to) {
  const auto start = Clock::now();
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in < 0 || out < 0) fail("local copy: cannot open");
  std::string buf(1U << 20U, '\0');
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0) fail("local copy: read failed");
    if (n == 0) break;
    if (::write(out, buf.data(), static_cast<std::size_t>(n)) != n) fail("local copy: short write");
  }
  ::fsync(out);
  ::close(in);
  ::close(out);
  return seconds_since(start);
}

// The ceiling of a file transfer: the same curl against an HTTP endpoint of the same lws
// plumbing (HttpServer's streams) that discards an upload and serves a download from memory,
// with no agent behind it. In a child process, as rexec-server is.
class NullFiles final : public rx::server::HttpStreamHandler {
 public:
  NullFiles(rx::server::HttpStream& s, std::uint64_t size, bool download)
      : s_(s), size_(size), piece_(64U << 10U, 'x') {
    if (!download) return;
    rx::server::HttpResponse head;
    head.content_type = "application/octet-stream";
    s_.respond_head(std::move(head), size_);
    fill();
  }

  void on_body(std::string_view /*bytes*/) override {}

  void on_body_end() override { s_.respond(rx::server::HttpResponse::json(200, "{}")); }

  void on_written(std::uint64_t /*total*/) override { fill(); }

  void on_closed() override {}

 private:
  void fill() {
    while (queued_ < size_ && s_.queued_bytes() < (1U << 20U)) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(piece_.size(), size_ - queued_));
      s_.write(piece_.substr(0, n));
      queued_ += n;
    }
  }

  rx::server::HttpStream& s_;
  std::uint64_t size_;
  std::uint64_t queued_ = 0;
  std::string piece_;
};

// The null endpoint in a child; its port and pid.
std::pair<int, pid_t> start_null_files(std::uint64_t size) {
  return fork_http_server([size] {
    rx::server::HttpHandlers h;
    h.on_request = [](const rx::server::HttpRequest&) {
      return rx::server::HttpResponse::json(404, "{}");
    };
    h.on_upgrade = [](const rx::server::HttpRequest&) { return rx::server::UpgradeDecision{}; };
    h.on_stream = [size](const rx::server::HttpRequest& r, rx::server::HttpStream& s) {
      return std::make_unique<NullFiles>(s, size, r.method == "GET");
    };
    return h;
  });
}

void bench_files(const Options& o) {
  const std::uint64_t size = o.quick ? (16ULL << 20U) : (200ULL << 20U);
  const std::uint64_t big = o.quick ? (64ULL << 20U) : (1ULL << 30U);
  std::fprintf(stderr,
               "files: %llu MiB up and down with curl, %d runs; echo during a %llu MiB "
               "download\n",
               static_cast<unsigned long long>(size >> 20U), o.runs,
               static_cast<unsigned long long>(big >> 20U));
  Bench b({"--max-upload", std::to_string(2 * big)}, {});
  const std::string dir = b.sys->dir() + "/bench-files";
  std::filesystem::create_directories(dir);
  const std::string src = dir + "/src";
  write_random_file(src, size);
  auto url = [&](const std::string& path) {
    return b.sys->http_url("/api/agents/" + b.agent.id + "/files?path=" + path);
  };
  auto curl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "-f",
                                     "--max-time",
                                     "600",
                                     "-H",
                                     "Authorization: Bearer " + b.token};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  const double mb = static_cast<double>(size) / 1e6;
  const auto [null_port, null_pid] = start_null_files(size);
  const std::string null_url = "http://127.0.0.1:" + std::to_string(null_port) + "/f";
  std::vector<double> local, null_up, null_down, up, down;
  for (int r = 0; r < o.runs; ++r) {
    local.push_back(mb / local_copy_seconds(src, dir + "/local-copy"));
    auto start = Clock::now();
    if (rx::test::run_program(curl({"-T", src, "-o", "/dev/null", null_url}), dir + "/curl.log",
                              600s)
            .exit_code != 0) {
      fail("upload to the null endpoint failed");
    }
    null_up.push_back(mb / seconds_since(start));
    start = Clock::now();
    if (rx::test::run_program(curl({"-o", dir + "/null-down", null_url}), dir + "/curl.log", 600s)
            .exit_code != 0) {
      fail("download from the null endpoint failed");
    }
    null_down.push_back(mb / seconds_since(start));
    start = Clock::now();
    auto u = rx::test::run_program(curl({"-T", src, "-o", "/dev/null", url(dir + "/up")}),
                                   dir + "/curl.log", 600s);
    if (u.exit_code != 0) fail("upload failed: " + rx::test::read_file(dir + "/curl.log"));
    up.push_back(mb / seconds_since(start));
    start = Clock::now();
    auto d = rx::test::run_program(curl({"-o", dir + "/down", url(src)}), dir + "/curl.log", 600s);
    if (d.exit_code != 0) fail("download failed: " + rx::test::read_file(dir + "/curl.log"));
    down.push_back(mb / seconds_since(start));
    if (std::filesystem::file_size(dir + "/down") != size ||
        std::filesystem::file_size(dir + "/up") != size) {
      fail("a transfer has the wrong size");
    }
  }
  ::kill(null_pid, SIGKILL);
  ::waitpid(null_pid, nullptr, 0);
  add_row("files: local copy with fsync (page cache)", "MB/s", stat_of(local));
  const Stat cu = stat_of(null_up);
  const Stat cd = stat_of(null_down);
  add_row("files: curl -T to an HTTP endpoint that discards (ceiling)", "MB/s", cu);
  add_row("files: curl -o from an HTTP endpoint in memory (ceiling)", "MB/s", cd);
  const Stat su = stat_of(up);
  const Stat sd = stat_of(down);
  add_row("files: upload " + std::to_string(size >> 20U) + " MiB (curl -T)", "MB/s", su,
          "endpoint " + fmt(cu.median), fmt(su.median / cu.median) + " × endpoint");
  add_row("files: download " + std::to_string(size >> 20U) + " MiB (curl -o)", "MB/s", sd,
          "endpoint " + fmt(cd.median), fmt(sd.median / cd.median) + " × endpoint");
  std::filesystem::remove(dir + "/null-down");
  std::filesystem::remove(dir + "/up");
  std::filesystem::remove(dir + "/down");
  std::filesystem::remove(dir + "/local-copy");

  // Keystroke echo on the same agent, idle and then while a large download runs.
  write_random_file(dir + "/big", big);
  auto term = b.open("files-echo", true, false);
  auto& loop = b.sys->loop();
  std::vector<double> idle50, idle99, busy50, busy99, up50, up99, server_rss, agent_rss;
  for (int r = 0; r < o.runs; ++r) {
    const auto idle = echo_rexec(loop, *term, o.echoes);
    idle50.push_back(percentile(idle, 0.5));
    idle99.push_back(percentile(idle, 0.99));
    rx::test::Process dl =
        rx::test::Process::start(curl({"-o", "/dev/null", url(dir + "/big")}), dir + "/dl.log");
    loop.run_for(300ms);  // the transfer is under way
    const auto busy = echo_rexec(loop, *term, o.echoes);
    server_rss.push_back(rss_mib(b.sys->server().pid()));
    agent_rss.push_back(rss_mib(b.agent.process->pid()));
    const bool overlapped = dl.running();
    const auto st = dl.wait(600s);
    if (!st || WEXITSTATUS(*st) != 0) fail("the large download failed");
    if (!overlapped && !o.quick) fail("the download ended before the echoes: use a larger file");
    busy50.push_back(percentile(busy, 0.5));
    busy99.push_back(percentile(busy, 0.99));
    // The other direction: an upload shares the server-to-agent half with the keystrokes.
    rx::test::Process ul = rx::test::Process::start(
        curl({"-T", dir + "/big", "-o", "/dev/null", url(dir + "/big-up")}), dir + "/ul.log");
    loop.run_for(300ms);
    const auto during_up = echo_rexec(loop, *term, o.echoes);
    const bool up_overlapped = ul.running();
    const auto ust = ul.wait(600s);
    if (!ust || WEXITSTATUS(*ust) != 0) fail("the large upload failed");
    if (!up_overlapped && !o.quick) fail("the upload ended before the echoes: use a larger file");
    up50.push_back(percentile(during_up, 0.5));
    up99.push_back(percentile(during_up, 0.99));
  }
  const Stat i99 = stat_of(idle99);
  const Stat b99 = stat_of(busy99);
  add_row("files: keystroke echo p50, idle link", "ms", stat_of(idle50));
  add_row("files: keystroke echo p50, during a " + std::to_string(big >> 20U) + " MiB download",
          "ms", stat_of(busy50));
  add_row("files: keystroke echo p99, idle link", "ms", i99);
  add_row("files: keystroke echo p99, during a " + std::to_string(big >> 20U) + " MiB download",
          "ms", b99, "idle " + fmt(i99.median), "+" + fmt(b99.median - i99.median) + " ms");
  const Stat u99 = stat_of(up99);
  add_row("files: keystroke echo p50, during a " + std::to_string(big >> 20U) + " MiB upload", "ms",
          stat_of(up50));
  add_row("files: keystroke echo p99, during a " + std::to_string(big >> 20U) + " MiB upload", "ms",
          u99, "idle " + fmt(i99.median), "+" + fmt(u99.median - i99.median) + " ms");
  add_row("files: server RSS during the download", "MiB", stat_of(server_rss));
  add_row("files: agent RSS during the download", "MiB", stat_of(agent_rss));
}

void bench_memory(const Options& o) {
  std::fprintf(stderr, "agent memory: sessions %zu counts, %d runs\n", o.sessions.size(), o.runs);
  std::map<int, std::vector<double>> rss;
  for (int r = 0; r < o.runs; ++r) {
    Bench b({}, {"REXEC_SHELL=/bin/sh"});
    std::vector<std::unique_ptr<TestSocket>> open;
    for (const int n : o.sessions) {
      while (static_cast<int>(open.size()) < n) {
        open.push_back(b.open("m" + std::to_string(open.size()), true));
      }
      b.sys->loop().run_for(1s);  // settle: stats sent, queues empty
      rss[n].push_back(rss_mib(b.agent.process->pid()));
    }
  }
  for (const int n : o.sessions) {
    add_row("agent RSS, " + std::to_string(n) + " open sessions", "MiB", stat_of(rss[n]),
            n == 1 ? "≤ 4 MiB" : "",
            n == 1 ? (stat_of(rss[n]).median <= 4.0 ? "met" : "missed") : "");
  }
  const int hi = o.sessions.back();
  if (hi > 1 && rss.count(1) != 0) {
    std::vector<double> per;
    for (std::size_t i = 0; i < rss[hi].size(); ++i) {
      per.push_back((rss[hi][i] - rss[1][i]) * 1024.0 / (hi - 1));
    }
    const Stat s = stat_of(per);
    add_row("agent RSS per extra idle session", "KiB", s, "≤ 64 KiB",
            s.median <= 64.0 ? "met" : "missed");
  }
}

// ---- server scale: many agents on one instance, and a reconnect storm (docs/performance.md) ----

// Resets the peak RSS (VmHWM) of `pid`; peak_rss_mib() then reads the peak since (weight part).
void reset_peak_rss(pid_t pid);
double peak_rss_mib(pid_t pid);

// The server's /metrics as name -> value (labels kept in the name).
std::map<std::string, double> server_metrics(System& sys) {
  const auto r = rx::test::http(sys.loop(), "GET", sys.http_url("/metrics"));
  if (r.status != 200) fail("GET /metrics: " + std::to_string(r.status));
  std::map<std::string, double> out;
  std::istringstream in(r.raw);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp != std::string::npos) out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

// TcpExt ListenOverflows of the whole machine (/proc/net/netstat): SYNs a full accept queue
// turned away. Each is a retransmission for the client, not an error; it becomes one only when
// the client gives up.
double listen_overflows() {
  std::ifstream in("/proc/net/netstat");
  std::string names;
  std::string values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n(names);
    std::istringstream v(values);
    for (std::string k, x; n >> k && v >> x;) {
      if (k == "ListenOverflows") return std::atof(x.c_str());
    }
  }
  return 0;
}

// How much counter `name` grew from `before` to `after` (server_metrics()).
double metric_delta(const std::map<std::string, double>& before,
                    const std::map<std::string, double>& after, const std::string& name) {
  const auto b = before.find(name);
  const auto a = after.find(name);
  if (a == after.end() || b == before.end()) fail("GET /metrics has no " + name);
  return a->second - b->second;
}

// `n` agents made in the server's SQLite database directly, each with its own agent token
// (registering 100,000 through the API, one request each, would take minutes).
std::vector<rx::bench::FleetAgent> make_fleet_agents(System& sys, const std::string& token, int n) {
  auto who = rx::test::http(sys.loop(), "GET", sys.http_url("/api/tokens/validate"), token);
  if (who.status != 200) fail("validate token: " + std::to_string(who.status));
  const std::string user_id = who.body["user_id"];
  auto store = rx::server::SqliteStore::open(sys.db_path());
  if (!store) fail("open " + sys.db_path() + ": " + store.error().message);
  std::vector<rx::bench::FleetAgent> out;
  const auto now = rx::server::now_ms();
  for (int i = 0; i < n; ++i) {
    rx::server::Agent a;
    a.id = rx::server::new_uuid_v4();
    a.user_id = user_id;
    a.name = "fleet-" + std::to_string(i);
    a.created_at = a.updated_at = now;
    rx::server::ApiToken t;
    const std::string secret = rx::server::generate_api_token();
    t.id = rx::server::new_uuid_v4();
    t.user_id = user_id;
    t.name = "agent-" + a.name;
    t.token_hash = rx::server::hash_token(secret);
    t.token_prefix = secret.substr(0, 12);
    t.scopes = {"agent"};
    t.agent_id = a.id;
    t.created_at = now;
    a.token_id = t.id;
    if (!(*store)->create_agent(a) || !(*store)->create_token(t)) fail("insert fleet agent");
    out.push_back({a.id, secret});
  }
  return out;
}

// Keystroke echo p50 and p99 over `n` keystrokes, in ms.
std::pair<double, double> echo_figure(rx::test::Loop& loop, TestSocket& s, int n) {
  const auto ms = echo_rexec(loop, s, n);
  return {percentile(ms, 0.5), percentile(ms, 0.99)};
}

// Runs the bench's loop while polling the fleet every 250 ms, until `done` or `limit`; `each`
// (if set) runs once per round, before the loop does.
nlohmann::json fleet_wait(System& sys, rx::bench::FleetProcess& fleet,
                          const std::function<bool(const nlohmann::json&)>& done,
                          std::chrono::seconds limit, const std::function<void()>& each = {}) {
  const auto start = Clock::now();
  nlohmann::json st = fleet.command("status");
  while (!done(st) && Clock::now() - start < limit) {
    if (each) each();
    sys.loop().run_for(250ms);
    st = fleet.command("status");
  }
  return st;
}

// N simulated agents (fleet.h) from a child process over 16 loopback source addresses, each
// with its own token, sending stats every 5 s and answering pings every 15 s; one real agent
// with a terminal for the echo figure. Then every fleet connection is reset at once (a load
// balancer that flaps) and the agents come back with their own backoff.
void bench_scale(const Options& o) {
  for (const int n : o.agents) {
    std::fprintf(stderr, "server scale: %d agents\n", n);
    ServerOptions so;
    so.ping_interval = 15s;
    so.pong_timeout = 45s;
    so.log_level = "warn";
    so.extra_args = {"--max-conns-per-ip", "0"};
    if (!o.max_pending_requests.empty()) {
      so.extra_args.insert(so.extra_args.end(), {"--max-pending-requests", o.max_pending_requests});
    }
    so.rate_limit = 1000000;  // thousands of upgrades a second from a few addresses
    System sys(so);
    const pid_t server = sys.server().pid();
    const std::string token = sys.add_user("scale", "enterprise", true);
    auto agent = sys.start_agent(token, "echo-agent", {"REXEC_LOG_LEVEL=warn"});
    if (!sys.wait_online(token, agent.id, 15s)) {
      sys.dump_logs();
      fail("the echo agent did not come online");
    }
    auto fleet_agents = make_fleet_agents(sys, token, n);
    auto term = std::make_unique<TestSocket>(sys.loop());
    if (!term->open(sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=scale-echo"), token,
                    "rexec.v2") ||
        !term->wait_type("shell_started", 20s)) {
      sys.dump_logs();
      fail("the echo terminal did not open");
    }
    const int echoes = o.quick ? 50 : std::max(o.echoes, 1000);
    const auto idle_echo = echo_figure(sys.loop(), *term, echoes);
    sys.loop().run_for(1s);
    const double base = rss_mib(server);

    const auto start = Clock::now();
    rx::bench::FleetProcess fleet("/proc/self/exe", sys.dir(), "127.0.0.1", sys.port(),
                                  fleet_agents, 16, 5s);
    fleet.command("ramp");
    auto st = fleet_wait(
        sys, fleet, [n](const nlohmann::json& j) { return j["open"] == n; },
        std::chrono::seconds(60 + n / 200));
    if (st["open"] != n)
      fail("only " + st["open"].dump() + " of " + std::to_string(n) +
           " fleet agents connected: " + st.dump());
    const double connect_s = seconds_since(start);
    sys.loop().run_for(o.quick ? 2s : 10s);  // settle: system_info and first stats stored
    const double rss = rss_mib(server);
    const double per_kib = (rss - base) * 1024.0 / n;
    // Idle: every agent sends stats every 5 s and answers a ping every 15 s.
    const double idle_s = o.quick ? 5.0 : 30.0;
    const auto m0 = server_metrics(sys);
    const double cpu0 = cpu_seconds(server);
    sys.loop().run_for(std::chrono::milliseconds(static_cast<int>(idle_s * 1000)));
    const double cpu = (cpu_seconds(server) - cpu0) / idle_s * 100.0;
    const auto m1 = server_metrics(sys);
    const auto load_echo = echo_figure(sys.loop(), *term, echoes);
    if (m1.at("rexec_agents_connected") != n + 1) {
      fail("the server counts " + fmt(m1.at("rexec_agents_connected")) + " agents, not " +
           std::to_string(n + 1));
    }
    const std::string tag = std::to_string(n) + " agents";
    add_row("server RSS per connected agent, " + tag, "KiB", {per_kib, per_kib, per_kib},
            "≤ 8 KiB at 100,000", per_kib <= 8.0 ? "met" : "missed");
    add_row("server RSS, " + tag, "MiB", {rss, rss, rss}, "before the fleet " + fmt(base));
    add_row("server CPU at idle (pings 15 s, stats 5 s), " + tag, "% of a core", {cpu, cpu, cpu},
            "≤ 15 %", cpu <= 15.0 ? "met" : "missed");
    const double w0 = metric_delta(m0, m1, "rexec_db_write_statements_total");
    const double c0 = metric_delta(m0, m1, "rexec_db_commits_total");
    add_row("database writes at idle, " + tag, "statements/s",
            {w0 / idle_s, w0 / idle_s, w0 / idle_s}, "", fmt(c0 / idle_s) + " commits/s");
    add_row("time to connect " + tag + " (one fleet process, 2,000 handshakes at a time)", "s",
            {connect_s, connect_s, connect_s});
    add_row("keystroke echo p99, idle server", "ms",
            {idle_echo.second, idle_echo.second, idle_echo.second}, "p50 " + fmt(idle_echo.first));
    const double plus = load_echo.second - idle_echo.second;
    add_row("keystroke echo p99, " + tag + " connected", "ms",
            {load_echo.second, load_echo.second, load_echo.second}, "≤ idle p99 + 1 ms",
            (plus <= 1.0 ? "met (+" : "missed (+") + fmt(plus) + ")");

    // The storm: every fleet connection reset at once.
    std::fprintf(stderr, "reconnect storm: %d agents\n", n);
    reset_peak_rss(server);
    const double overflows0 = listen_overflows();
    const auto s0 = server_metrics(sys);
    fleet.command("drop");
    // A load balancer's health check through the storm: GET /healthz every quarter second.
    std::vector<double> health_ms;
    int health_failed = 0;
    st = fleet_wait(
        sys, fleet, [n](const nlohmann::json& j) { return j["back"] == n; }, 120s,
        [&] {
          const auto asked = Clock::now();
          const auto r = rx::test::http(sys.loop(), "GET", sys.http_url("/healthz"));
          health_ms.push_back(seconds_since(asked) * 1000.0);
          health_failed += r.status == 200 ? 0 : 1;
        });
    const double peak = peak_rss_mib(server);
    sys.loop().run_for(o.quick ? 2s : 5s);  // the writes of the last ones
    const auto s1 = server_metrics(sys);
    const double overflows1 = listen_overflows();
    if (st["back"] != n)
      fail("only " + st["back"].dump() + " of " + std::to_string(n) +
           " agents came back: " + st.dump());
    const double back_max = st["back_max_ms"].get<double>() / 1000.0;
    const double back_p50 = st["back_p50_ms"].get<double>() / 1000.0;
    add_row("reconnect storm: all " + tag + " back online", "s", {back_max, back_max, back_max},
            "≤ 60 s",
            (back_max <= 60.0 ? "met, median " : "missed, median ") + fmt(back_p50) + " s");
    add_row("reconnect storm: server peak RSS", "MiB", {peak, peak, peak},
            "≤ 1.5 × " + fmt(rss) + " MiB",
            (peak <= 1.5 * rss ? "met, " : "missed, ") + fmt(peak / rss) + " ×");
    std::string failed;
    for (const auto& [kind, count] : st["failures"].items()) {
      failed += (failed.empty() ? "" : ", ") + kind + " " + count.dump();
    }
    const double overflows = overflows1 - overflows0;
    add_row("reconnect storm: accept queue overflows (kernel, retried by TCP)", "SYNs",
            {overflows, overflows, overflows}, "",
            "agents' failed attempts: " + (failed.empty() ? std::string("none") : failed));
    const double health_max =
        health_ms.empty() ? 0.0 : *std::max_element(health_ms.begin(), health_ms.end());
    add_row("reconnect storm: GET /healthz, slowest of " + std::to_string(health_ms.size()), "ms",
            {health_max, health_max, health_max}, "answered",
            health_failed == 0 ? std::string("all answered")
                               : std::to_string(health_failed) + " not answered with 200");
    const double writes = metric_delta(s0, s1, "rexec_db_write_statements_total");
    const double commits = metric_delta(s0, s1, "rexec_db_commits_total");
    add_row("reconnect storm: database write statements", "statements", {writes, writes, writes},
            "2 × " + std::to_string(n) + " agent events",
            fmt(commits) + " commits, " + fmt(writes / n) + " statements per agent");
    fleet.command("quit");
  }
}

// Many sessions through one agent, each printing a 500-byte line ten times a second.
void bench_terminals(const Options& o) {
  const int n = o.terminals;
  std::fprintf(stderr, "terminals: %d sessions with moderate output\n", n);
  Bench b({}, {"REXEC_SHELL=/bin/sh"});
  std::vector<std::unique_ptr<TestSocket>> socks;
  std::vector<std::uint64_t> got(static_cast<std::size_t>(n), 0);
  std::vector<std::uint64_t> got_at_window(static_cast<std::size_t>(n), 0);
  for (int i = 0; i < n; ++i) {
    socks.push_back(b.open("t" + std::to_string(i), true));
    socks.back()->set_sink([&got, i](std::string_view d, bool binary) {
      if (binary) got[static_cast<std::size_t>(i)] += d.size();
    });
    socks.back()->send_binary(
        "exec perl -e '$|=1; while (1) { print \"x\" x 498, \"\\n\"; "
        "select(undef, undef, undef, 0.1) }'\n");
  }
  b.sys->loop().run_for(2s);
  const int windows = o.quick ? 2 : 10;
  int stalls = 0;
  const auto start = Clock::now();
  std::uint64_t total0 = 0;
  for (auto g : got) total0 += g;
  for (int w = 0; w < windows; ++w) {
    got_at_window = got;
    b.sys->loop().run_for(1s);
    for (std::size_t i = 0; i < got.size(); ++i) stalls += got[i] == got_at_window[i] ? 1 : 0;
  }
  std::uint64_t total = 0;
  for (auto g : got) total += g;
  const double mbps = static_cast<double>(total - total0) / 1e6 / seconds_since(start);
  const double expected = n * 10 * 501 / 1e6;  // lines are 498 x, \r\n... roughly 500 B
  add_row(std::to_string(n) + " sessions through one agent, aggregate output", "MB/s",
          {mbps, mbps, mbps}, "offered ≈ " + fmt(expected) + " MB/s",
          std::to_string(stalls) + " one-second stalls over " + std::to_string(n * windows) +
              " session-seconds");
  if (total == total0) fail("terminals: no output at all");
}

// The slow-consumer window, in 200 ms samples.
int slow_samples(const Options& o) { return o.quick ? 10 : 40; }

void bench_slow(const Options& o) {
  std::fprintf(stderr, "slow consumer\n");
  std::vector<double> agent_rss, server_rss, written_mb;
  for (int r = 0; r < o.runs; ++r) {
    Bench b({"--slow-consumer-stall", "120s"}, {});
    auto s = b.open("slow", true);
    const std::uint64_t bytes = o.quick ? (64ULL << 20U) : (1ULL << 30U);
    s->set_sink([](std::string_view, bool) {});
    s->send_binary("yes slowprod | head -c " + std::to_string(bytes) + "\n");
    b.sys->loop().run_for(300ms);  // the command goes out, output starts
    // Stop reading (the loop does not run) for 8 s; sample memory as we go.
    double a_max = 0;
    double s_max = 0;
    for (int i = 0; i < slow_samples(o); ++i) {
      std::this_thread::sleep_for(200ms);
      a_max = std::max(a_max, rss_mib(b.agent.process->pid()));
      s_max = std::max(s_max, rss_mib(b.sys->server().pid()));
    }
    agent_rss.push_back(a_max);
    server_rss.push_back(s_max);
    // What the producer got out while nobody read: the shell blocked, or memory grew.
    std::uint64_t wchar = 0;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
      const std::string cmd = rx::test::read_file(e.path().string() + "/cmdline");
      if (cmd.rfind("head", 0) == 0 && cmd.find(std::to_string(bytes)) != std::string::npos) {
        wchar = rx::test::proc_number(static_cast<pid_t>(std::stol(e.path().filename().string())),
                                      "io", "wchar:");
      }
    }
    written_mb.push_back(static_cast<double>(wchar) / 1e6);
    s->send_binary("\x03");
  }
  add_row("slow consumer: producer output while the viewer reads nothing for " +
              std::to_string(slow_samples(o) / 5) + " s",
          "MB", stat_of(written_mb), "1 GiB offered", "the shell blocks");
  add_row("slow consumer: agent peak RSS", "MiB", stat_of(agent_rss), "bound: 32 MiB",
          stat_of(agent_rss).max <= 32 ? "met" : "missed");
  add_row("slow consumer: server peak RSS", "MiB", stat_of(server_rss), "bound: 64 MiB",
          stat_of(server_rss).max <= 64 ? "met" : "missed");
}

void bench_paste(const Options& o) {
  std::fprintf(stderr, "paste: 1 MiB into wc -c, %d runs\n", o.runs);
  std::string paste;
  for (int i = 0; paste.size() < (1U << 20U); ++i) {
    std::string line = std::to_string(i);
    line.resize(63, 'p');
    paste += line + "\n";
  }
  std::vector<double> ms;
  Bench b({}, {});
  auto s = b.open("paste", true);
  for (int r = 0; r < o.runs; ++r) {
    run_to_sentinel(b.sys->loop(), *s, "stty -echo; echo paste-'ready'; wc -c\n", "paste-ready",
                    20s);
    b.sys->loop().run_for(100ms);
    const auto start = Clock::now();
    s->send_binary(paste);  // one message, as a browser sends a paste
    run_to_sentinel(b.sys->loop(), *s, "\x04", "1048576",
                    60s);  // end of input: wc prints its count
    ms.push_back(seconds_since(start) * 1e3);
  }
  add_row("1 MiB paste into wc -c (one message), count correct", "ms", stat_of(ms));
}

void bench_idle(const Options& o) {
  const int secs = o.quick ? 2 : o.idle_seconds;
  std::fprintf(stderr, "idle: %d s with one session open\n", secs);
  Bench b({}, {});
  auto s = b.open("idle", true, false);
  b.sys->loop().run_for(1s);
  const pid_t agent = b.agent.process->pid();
  const double cpu0 = cpu_seconds(agent);
  b.sys->loop().run_for(std::chrono::seconds(secs));
  const double used = cpu_seconds(agent) - cpu0;
  const double pct = used / secs * 100.0;
  add_row("agent CPU at idle, one session (stats every 5 s, pings every 15 s)", "%",
          {pct, pct, pct}, "≈ 0", fmt(used * 1e3) + " ms CPU in " + std::to_string(secs) + " s");
  const double rss = rss_mib(agent);
  add_row("agent RSS at idle, one session", "MiB", {rss, rss, rss}, "≤ 4 MiB",
          rss <= 4.0 ? "met" : "missed");
  // RSS counts the binary's clean text pages too; this is the memory the agent dirtied.
  const auto dirty_kib = rx::test::proc_number(agent, "smaps_rollup", "Private_Dirty:");
  const double dirty = static_cast<double>(dirty_kib) / 1024.0;
  add_row("agent private dirty memory at idle, one session", "MiB", {dirty, dirty, dirty});
}

// ---- weight: the agent's binary, memory and CPU per byte (docs/performance.md "Weight") ----

// Figures of /proc/PID/smaps_rollup, in MiB.
struct Smaps {
  double rss = 0;
  double private_dirty = 0;  // what the process wrote: heap, stacks, relocated data, rings
  double private_clean = 0;  // file pages mapped by this process alone: the binary's text
};

Smaps smaps_of(pid_t pid) {
  const auto mib = [pid](const char* key) {
    return static_cast<double>(rx::test::proc_number(pid, "smaps_rollup", key)) / 1024.0;
  };
  return {mib("Rss:"), mib("Private_Dirty:"), mib("Private_Clean:")};
}

// Prints where `pid`'s private dirty memory is, mapping by mapping (diagnostics on stderr).
void print_dirty_mappings(pid_t pid) {
  const std::string smaps = rx::test::read_file("/proc/" + std::to_string(pid) + "/smaps");
  std::string name;
  std::size_t at = 0;
  while (at < smaps.size()) {
    const auto end = std::min(smaps.find('\n', at), smaps.size());
    const std::string line = smaps.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) != 0 &&
        line.find('-') < line.find(' ')) {
      const auto path = line.find_first_of('/', 20);
      name = line.substr(0, line.find(' ')) + " " +
             (path != std::string::npos ? line.substr(path) : line.substr(line.rfind(' ') + 1));
    } else if (line.rfind("Private_Dirty:", 0) == 0) {
      const long kib = std::strtol(line.c_str() + 14, nullptr, 10);
      if (kib >= 8) std::fprintf(stderr, "    %6ld KiB dirty  %s\n", kib, name.c_str());
    }
  }
}

// Resets the peak RSS (VmHWM) of `pid`, so that the next read gives the peak from now on.
void reset_peak_rss(pid_t pid) {
  std::ofstream f("/proc/" + std::to_string(pid) + "/clear_refs");
  f << "5";
  if (!f) fail("cannot reset the peak RSS of " + std::to_string(pid));
}

double peak_rss_mib(pid_t pid) {
  return static_cast<double>(rx::test::proc_number(pid, "status", "VmHWM:")) / 1024.0;
}

// Runs `loop` as a viewer that takes at most `rate` bytes/s (0: as fast as it can) until
// `sentinel` has arrived after `command`. The viewer runs the loop only while it is behind its
// schedule, so the rest waits in socket buffers and the server's queue, as behind a link of that
// speed.
void flood_at_rate(rx::test::Loop& loop, TestSocket& s, const std::string& command,
                   const std::string& sentinel, double rate) {
  constexpr double kBurst = 64.0 * 1024;
  std::string tail;
  bool seen = false;
  double received = 0;
  s.set_sink([&](std::string_view data, bool) {
    received += static_cast<double>(data.size());
    tail.append(data);
    if (tail.find(sentinel) != std::string::npos) seen = true;
    if (tail.size() > 4 * sentinel.size() + 64) tail.erase(0, tail.size() - sentinel.size() - 64);
  });
  const auto start = Clock::now();
  const auto allowed = [&] { return rate * seconds_since(start) + kBurst; };
  s.send_binary(command);
  while (!seen) {
    if (seconds_since(start) > 600) fail("flood: no sentinel " + sentinel);
    if (rate > 0 && received >= allowed()) {
      std::this_thread::sleep_for(
          std::chrono::duration<double>(std::max(0.001, (received - allowed()) / rate)));
      continue;
    }
    (void)loop.run_until([&] { return seen || (rate > 0 && received >= allowed()); }, 100ms);
  }
  s.set_sink([](std::string_view, bool) {});
}

// The floor: `cat` moving the same flood from a PTY master to a loopback TCP socket that is read
// at `rate` (0: as fast as it can). That is the least any agent does per byte (read the PTY,
// write a socket), with no protocol at all. Returns cat's CPU ms per MB of output.
double cat_relay_ms_per_mb(std::uint64_t bytes, double rate) {
  rx::UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (!listener || ::bind(listener.get(), sa, len) != 0 || ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), sa, &len) != 0) {
    fail("cat relay: listen");
  }
  rx::UniqueFd out(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!out || ::connect(out.get(), sa, len) != 0) fail("cat relay: connect");
  rx::UniqueFd in(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!in) fail("cat relay: accept");

  const std::string sentinel = "floor-end";
  RawPty pty(flood_command(bytes, "floor-'end'"));
  const pid_t cat = ::fork();
  if (cat < 0) fail("fork");
  if (cat == 0) {
    // The master is non-blocking for the bench; cat reads it blocking, as the simplest relay.
    if (::dup2(pty.master_fd(), 0) < 0 || ::dup2(out.get(), 1) < 0 ||
        ::fcntl(0, F_SETFL, ::fcntl(0, F_GETFL) & ~O_NONBLOCK) != 0) {
      ::_exit(127);
    }
    ::execlp("cat", "cat", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  out.reset();
  std::vector<char> buf(64 * 1024);
  std::string tail;
  double received = 0;
  const auto start = Clock::now();
  while (tail.find(sentinel) == std::string::npos) {
    if (seconds_since(start) > 600) fail("cat relay: no sentinel");
    if (rate > 0 && received >= rate * seconds_since(start) + static_cast<double>(buf.size())) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n <= 0) fail("cat relay: read");
    received += static_cast<double>(n);
    tail.append(buf.data(), static_cast<std::size_t>(n));
    if (tail.size() > 256) tail.erase(0, tail.size() - 128);
  }
  const double cpu = cpu_seconds(cat);
  ::kill(cat, SIGKILL);
  ::waitpid(cat, nullptr, 0);
  return cpu * 1e3 / (flood_output_bytes(bytes) / 1e6);
}

// The pid of the process whose command line holds `needle` ("keeper --agent-id ID"), or -1.
pid_t find_process(const std::string& needle) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = rx::test::read_file(e.path().string() + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    if (cmd.find(needle) != std::string::npos) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

// With --handover (as the systemd unit runs it), a keeper process holds the shells: what the
// two cost together, idle with one shell over ws.
void bench_keeper_weight(const Options& o) {
  std::vector<double> agent_dirty;
  std::vector<double> keeper_dirty;
  std::vector<double> keeper_rss;
  for (int r = 0; r < o.runs; ++r) {
    Bench b({}, {"REXEC_HANDOVER_S=60"});
    auto s = b.open("weight", true, false);
    run_to_sentinel(b.sys->loop(), *s, "stty -echo; echo warm-'up'\n", "warm-up", 20s);
    b.sys->loop().run_for(2s);
    const pid_t keeper = find_process("keeper --agent-id " + b.agent.id);
    if (keeper < 0) fail("no keeper process for agent " + b.agent.id);
    agent_dirty.push_back(smaps_of(b.agent.process->pid()).private_dirty);
    const Smaps k = smaps_of(keeper);
    keeper_dirty.push_back(k.private_dirty);
    keeper_rss.push_back(k.rss);
    ::kill(keeper, SIGKILL);  // it would wait 60 s for a next agent
  }
  add_row("with --handover 60: agent private dirty memory, idle, one shell, ws", "MiB",
          stat_of(agent_dirty), "≤ 1 MiB", stat_of(agent_dirty).median <= 1 ? "met" : "missed");
  add_row("with --handover 60: keeper private dirty memory", "MiB", stat_of(keeper_dirty));
  add_row("with --handover 60: keeper RSS (its text pages are the agent's)", "MiB",
          stat_of(keeper_rss));
}

void bench_weight(const Options& o) {
  struct Speed {
    const char* name;
    double rate;            // bytes/s; 0: as fast as the viewer can
    std::uint64_t divisor;  // of o.weight_bytes, so the slow viewer's run stays short
  };

  const std::vector<Speed> speeds = {
      {"viewer as fast as it can", 0, 1},
      {"viewer at 20 MB/s", 20e6, 1},
      {"viewer at 2 MB/s", 2e6, 4},
  };
  std::fprintf(stderr, "weight: %llu bytes per flood, ws and wss, %d runs\n",
               static_cast<unsigned long long>(o.weight_bytes), o.runs);
  // A binary read straight after it was written shows its pages as dirty until written back.
  ::sync();
  const rx::test::TestCerts certs;
  std::map<std::string, std::vector<double>> floor;
  for (const Speed& sp : speeds) {
    for (int r = 0; r < o.runs; ++r) {
      floor[sp.name].push_back(cat_relay_ms_per_mb(o.weight_bytes / sp.divisor, sp.rate));
    }
  }
  for (const bool tls : {false, true}) {
    const std::string link = tls ? "wss" : "ws";
    std::vector<double> rss;
    std::vector<double> dirty;
    std::vector<double> clean;
    std::vector<double> dirty_after;
    std::vector<double> peak;
    std::map<std::string, std::vector<double>> cpu;
    std::map<std::string, std::vector<double>> syscalls;
    for (int r = 0; r < o.runs; ++r) {
      Bench b({}, {}, tls ? &certs : nullptr);
      const pid_t agent = b.agent.process->pid();
      auto s = b.open("weight", true, false);  // `main`, the user's login shell
      run_to_sentinel(b.sys->loop(), *s, "stty -echo; echo warm-'up'\n", "warm-up", 20s);
      b.sys->loop().run_for(2s);  // settle: the first stats sent, queues empty
      const Smaps idle = smaps_of(agent);
      if (r == 0) {
        std::fprintf(stderr, "  agent %s, idle:\n", link.c_str());
        print_dirty_mappings(agent);
      }
      rss.push_back(idle.rss);
      dirty.push_back(idle.private_dirty);
      clean.push_back(idle.private_clean);
      double peak_mib = 0;
      for (const Speed& sp : speeds) {
        const std::uint64_t bytes = o.weight_bytes / sp.divisor;
        const std::string sentinel = "w-end-" + std::to_string(r);
        reset_peak_rss(agent);
        const double cpu0 = cpu_seconds(agent);
        const auto calls = [agent] {
          return static_cast<double>(rx::test::proc_number(agent, "io", "syscr:") +
                                     rx::test::proc_number(agent, "io", "syscw:"));
        };
        const double calls0 = calls();
        flood_at_rate(b.sys->loop(), *s,
                      flood_command(bytes, "w-'end'-" + std::to_string(r)) + "\n", sentinel,
                      sp.rate);
        const double mb = flood_output_bytes(bytes) / 1e6;
        cpu[sp.name].push_back((cpu_seconds(agent) - cpu0) * 1e3 / mb);
        syscalls[sp.name].push_back((calls() - calls0) / mb);
        peak_mib = std::max(peak_mib, peak_rss_mib(agent));
      }
      peak.push_back(peak_mib);
      // Idle again: the agent gives freed heap back at its next stats tick (every 5 s).
      b.sys->loop().run_for(6s);
      dirty_after.push_back(smaps_of(agent).private_dirty);
      if (r == 0) {
        std::fprintf(stderr, "  agent %s, idle after the floods:\n", link.c_str());
        print_dirty_mappings(agent);
      }
    }
    const auto verdict = [](const Stat& st, double limit) {
      return st.median <= limit ? "met" : "missed";
    };
    const Stat st_rss = stat_of(rss);
    const Stat st_dirty = stat_of(dirty);
    const Stat st_after = stat_of(dirty_after);
    const Stat st_peak = stat_of(peak);
    add_row("agent RSS, idle, connected, one open shell, " + link, "MiB", st_rss, "≤ 5 MiB",
            verdict(st_rss, 5));
    add_row("agent private dirty memory, same, " + link, "MiB", st_dirty, "≤ 1 MiB",
            verdict(st_dirty, 1));
    add_row("agent private clean file pages (its binary), same, " + link, "MiB", stat_of(clean));
    add_row("agent private dirty memory after the floods (output ring full), " + link, "MiB",
            st_after, "≤ 1 MiB", verdict(st_after, 1));
    add_row("agent peak RSS during the floods, " + link, "MiB", st_peak, "≤ 6 MiB",
            verdict(st_peak, 6));
    for (const Speed& sp : speeds) {
      const Stat c = stat_of(cpu[sp.name]);
      const Stat f = stat_of(floor[sp.name]);
      add_row(std::string("agent CPU per MB of output, ") + sp.name + ", " + link, "ms/MB", c,
              "≤ 4 ms/MB; floor (cat) " + fmt(f.median),
              std::string(verdict(c, 4)) + ", " + fmt(c.median / f.median) + " × floor");
    }
    for (const Speed& sp : speeds) {
      add_row(std::string("agent read and write system calls per MB, ") + sp.name + ", " + link,
              "calls/MB", stat_of(syscalls[sp.name]));
    }
  }
  for (const Speed& sp : speeds) {
    add_row(std::string("floor: cat relaying the PTY to a loopback socket, ") + sp.name, "ms/MB",
            stat_of(floor[sp.name]));
  }
  bench_keeper_weight(o);
}

void bench_size() {
  struct stat st {};

  const std::string path = rx::test::agent_binary();
  if (::stat(path.c_str(), &st) != 0) fail("no agent binary at " + path);
  const double mib = static_cast<double>(st.st_size) / 1048576.0;
  const auto at = path.rfind("build/");
  add_row("agent binary size (" + path.substr(at == std::string::npos ? 0 : at) + ", " +
              std::to_string(st.st_size) + " B)",
          "MiB", {mib, mib, mib}, "≤ 4.5 MiB", mib <= 4.5 ? "met" : "missed");
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

const char* const kUsage =
    "usage: rexec-bench [--runs N] [--bytes N] [--echoes N] [--idle-seconds N]\n"
    "                   [--sessions 0,1,100,1000] [--agents 1000,10000] [--terminals N]\n"
    "                   [--only "
    "throughput,echo,paste,idle,memory,slow,terminals,scale,cluster,files,handover,size,weight]\n"
    "                   [--weight-bytes N] [--max-pending-requests N] [--agent PATH] [--quick]\n";

int main(int argc, char** argv) {
  // The simulated agents of the scale part run in a child of their own (fleet.h).
  if (argc == 3 && std::string(argv[1]) == "--fleet") return rx::bench::fleet_main(argv[2]);
  Options o;
  std::string sessions = "0,1,100,1000";
  std::string agents = "1000,10000";
  std::string only;
  std::string agent_path;
  // A handful of options: parsed here rather than with CLI11, whose inlined code trips GCC 12's
  // -Wnull-dereference at -O2 in this translation unit.
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--quick") {
        o.quick = true;
        continue;
      }
      if (arg == "--help" || i + 1 >= argc) {
        std::fputs(kUsage, arg == "--help" ? stdout : stderr);
        return arg == "--help" ? 0 : 2;
      }
      const std::string value = argv[++i];
      if (arg == "--runs") {
        o.runs = std::stoi(value);
      } else if (arg == "--bytes") {
        o.bytes = std::stoull(value);
      } else if (arg == "--echoes") {
        o.echoes = std::stoi(value);
      } else if (arg == "--idle-seconds") {
        o.idle_seconds = std::stoi(value);
      } else if (arg == "--sessions") {
        sessions = value;
      } else if (arg == "--agents") {
        agents = value;
      } else if (arg == "--weight-bytes") {
        o.weight_bytes = std::stoull(value);
      } else if (arg == "--terminals") {
        o.terminals = std::stoi(value);
      } else if (arg == "--only") {
        only = value;
      } else if (arg == "--agent") {
        agent_path = value;
      } else if (arg == "--max-pending-requests") {
        o.max_pending_requests = std::to_string(std::stoul(value));
      } else {
        std::fputs(kUsage, stderr);
        return 2;
      }
    }
  } catch (const std::exception&) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (o.quick) {
    o.runs = 1;
    o.bytes = 4U << 20U;
    o.echoes = 50;
    sessions = "0,1,10";
    agents = "50";
    o.terminals = 10;
    o.weight_bytes = 3ULL << 19U;
  }
  o.sessions = parse_list(sessions);
  o.agents = parse_list(agents);
  std::stringstream ss(only);
  for (std::string part; std::getline(ss, part, ',');) o.only.insert(part);

  // Hundreds of thousands of sockets in this process and its children (the server and the
  // fleet inherit it): as many as the kernel allows a process when we may raise the hard limit
  // (root), else up to the hard limit.
  rlimit want{};
  want.rlim_cur = want.rlim_max = 1U << 20U;  // fs.nr_open's default
  if (::setrlimit(RLIMIT_NOFILE, &want) != 0) (void)rx::raise_open_file_limit();
  if (!agent_path.empty()) ::setenv("REXEC_AGENT_BINARY", agent_path.c_str(), 1);
  ::setenv("HOME", "/tmp", 1);
  ::setenv("HISTFILE", "/dev/null", 1);

  try {
    if (o.want("size")) bench_size();
    if (o.want("weight")) bench_weight(o);
    if (o.want("throughput")) bench_throughput(o);
    if (o.want("echo")) bench_echo(o);
    if (o.want("paste")) bench_paste(o);
    if (o.want("idle")) bench_idle(o);
    if (o.want("memory")) bench_memory(o);
    if (o.want("slow")) bench_slow(o);
    if (o.want("terminals")) bench_terminals(o);
    if (o.want("scale")) bench_scale(o);
    if (o.want("cluster")) bench_cluster(o);
    if (o.want("files")) bench_files(o);
    if (o.want("handover")) bench_handover(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rexec-bench: FAILED: %s\n", e.what());
    print_table(o);
    return 1;
  }
  print_table(o);
  return 0;
}
