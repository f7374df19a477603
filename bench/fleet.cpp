// SPDX-License-Identifier: MIT
// The simulated agents (fleet.h): an epoll loop over non-blocking sockets that speaks just
// enough WebSocket for an idle agent. It is written by hand, not with net::WsClient, because it
// must hold 100,000 connections at a few hundred bytes each (lws gives every client connection
// a receive buffer of the protocol's size, 64 KiB here), bind each to one of several source
// addresses, and reset them all at once (SO_LINGER 0), none of which WsClient offers.
#include "fleet.h"

#include "rexec/agent/backoff.h"
#include "rexec/proto/message_codec.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "percentile.h"

extern char** environ;  // NOLINT: POSIX

namespace rx::bench {

namespace {

using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

// The initial ramp keeps at most this many handshakes in flight; reconnections after a drop
// follow only the agents' backoff, as a real fleet's do.
constexpr int kMaxRamping = 2000;
constexpr Ms kHandshakeTimeout{30000};  // as the agent's (PROTOCOL §3.1)

std::int64_t now_ms() {
  return std::chrono::duration_cast<Ms>(Clock::now().time_since_epoch()).count();
}

enum class State : std::uint8_t { kIdle, kConnecting, kHandshake, kOpen };

struct Conn {
  int fd = -1;
  State state = State::kIdle;
  std::uint32_t generation = 0;  // bumped at every state change: older timers are stale
  std::uint32_t source = 0;
  std::int64_t opened_at = 0;
  std::int64_t back_at = 0;  // first open after the last drop
  std::string rx;
  std::string tx;
  std::unique_ptr<agent::Backoff> backoff;
};

enum class TimerKind : std::uint8_t { kRetry, kStats, kHandshakeDeadline };

struct Timer {
  std::int64_t due;
  std::uint32_t index;
  std::uint32_t generation;
  TimerKind kind;

  bool operator>(const Timer& o) const { return due > o.due; }
};

// One frame from client to server: FIN, the opcode, a mask (the server requires one; its value
// does not matter to it) and the masked payload.
std::string client_frame(std::uint8_t opcode, std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(0x80U | opcode));
  const std::size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80U | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(0x80U | 126U));
    f.push_back(static_cast<char>((n >> 8U) & 0xffU));
    f.push_back(static_cast<char>(n & 0xffU));
  } else {
    f.push_back(static_cast<char>(0x80U | 127U));
    for (int i = 7; i >= 0; --i) {
      f.push_back(static_cast<char>((n >> (8U * static_cast<unsigned>(i))) & 0xffU));
    }
  }
  const std::array<std::uint8_t, 4> mask = {0x37, 0xfa, 0x21, 0x3d};
  for (std::uint8_t m : mask) f.push_back(static_cast<char>(m));
  for (std::size_t i = 0; i < n; ++i) {
    f.push_back(static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask[i & 3U]));
  }
  return f;
}

class Fleet {
 public:
  Fleet(std::string host, int port, int sources, Ms stats_interval, std::vector<FleetAgent> agents)
      : host_(std::move(host)),
        port_(port),
        stats_interval_(stats_interval),
        agents_(std::move(agents)),
        conns_(agents_.size()) {
    for (int i = 0; i < sources; ++i) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(0x7f000002U + static_cast<std::uint32_t>(i));  // 127.0.0.2+
      sources_.push_back(a);
    }
    server_.sin_family = AF_INET;
    server_.sin_port = htons(static_cast<std::uint16_t>(port_));
    if (inet_pton(AF_INET, host_.c_str(), &server_.sin_addr) != 1) {
      throw std::runtime_error("fleet: bad host " + host_);
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].source = static_cast<std::uint32_t>(i % sources_.size());
      conns_[i].backoff = std::make_unique<agent::Backoff>(Ms(1000), Ms(60000), 0x5eedULL + i);
    }
    proto::SystemInfo info;
    info.hostname = "fleet";
    info.num_cpu = 2;
    info.memory = {8ULL << 30U, 6ULL << 30U, 4ULL << 30U};
    info.disk = {100ULL << 30U, 60ULL << 30U, 60ULL << 30U};
    info.os = "linux";
    info.arch = "amd64";
    info.distro = "debian";
    info.kernel = "6.1.0";
    info.agent_version = "0.0.0-fleet";
    info.shell = "/bin/bash";
    system_info_ = client_frame(0x1, proto::encode(proto::AgentMessage(info)));
    proto::Stats st;
    st.cpu_percent = 3.25;
    st.memory = 2ULL << 30U;
    st.memory_limit = 8ULL << 30U;
    st.disk_usage = 40ULL << 30U;
    st.disk_limit = 100ULL << 30U;
    st.load1 = 0.12;
    st.load5 = 0.08;
    st.load15 = 0.05;
    st.uptime_s = 123456;
    st.isolation = "cgroup";
    stats_ = client_frame(0x1, proto::encode(proto::AgentMessage(st)));
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error("fleet: epoll_create1");
    watch(EPOLL_CTL_ADD, 0, kStdin, EPOLLIN);
  }

  // Runs until `quit` or the parent goes away.
  void run() {
    std::vector<epoll_event> events(4096);
    while (!quit_) {
      const std::int64_t now = now_ms();
      fire_timers(now);
      if (ramping_) ramp();
      int wait = 100;
      if (!timers_.empty()) {
        wait = static_cast<int>(std::clamp<std::int64_t>(timers_.top().due - now, 0, 100));
      }
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), wait);
      for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[static_cast<std::size_t>(i)].data.u64;
        if (tag == kStdin) {
          read_commands();
          continue;
        }
        on_event(static_cast<std::uint32_t>(tag), events[static_cast<std::size_t>(i)].events);
      }
    }
  }

 private:
  static constexpr std::uint64_t kStdin = ~std::uint64_t{0};

  void read_commands() {
    std::array<char, 4096> buf{};
    const ssize_t n = ::read(0, buf.data(), buf.size());
    if (n <= 0) {
      quit_ = true;  // the parent is gone
      return;
    }
    commands_.append(buf.data(), static_cast<std::size_t>(n));
    for (auto nl = commands_.find('\n'); nl != std::string::npos; nl = commands_.find('\n')) {
      const std::string line = commands_.substr(0, nl);
      commands_.erase(0, nl + 1);
      answer(line);
    }
  }

  void answer(const std::string& line) {
    nlohmann::json out;
    if (line == "ramp") {
      ramping_ = true;
      next_ramp_ = 0;
      out = {{"ok", true}};
    } else if (line == "drop") {
      drop_all();
      out = {{"ok", true}, {"dropped", dropped_}};
    } else if (line == "quit") {
      quit_ = true;
      out = {{"ok", true}};
    } else {
      out = status();
    }
    const std::string text = out.dump() + "\n";
    std::size_t at = 0;
    while (at < text.size()) {
      const ssize_t w = ::write(1, text.data() + at, text.size() - at);
      if (w <= 0) {
        quit_ = true;
        return;
      }
      at += static_cast<std::size_t>(w);
    }
  }

  nlohmann::json status() const {
    std::size_t open = 0;
    std::size_t connecting = 0;
    std::size_t handshake = 0;
    std::vector<double> back;
    for (const Conn& c : conns_) {
      open += c.state == State::kOpen ? 1U : 0U;
      connecting += c.state == State::kConnecting ? 1U : 0U;
      handshake += c.state == State::kHandshake ? 1U : 0U;
      if (drop_at_ != 0 && c.back_at != 0)
        back.push_back(static_cast<double>(c.back_at - drop_at_));
    }
    return {{"agents", conns_.size()},
            {"open", open},
            {"connecting", connecting},
            {"handshake", handshake},
            {"ramp_done", !ramping_ && next_ramp_ >= conns_.size()},
            {"attempts", attempts_},
            {"failures", failures_},
            {"pings", pings_},
            {"stats_sent", stats_sent_},
            {"server_closes", server_closes_},
            {"dropped", dropped_},
            {"back", back.size()},
            {"back_p50_ms", percentile(back, 0.5)},
            {"back_p99_ms", percentile(back, 0.99)},
            {"back_max_ms", percentile(back, 1.0)}};
  }

  // Adds `fd` to the epoll set, or changes what it waits for; events carry `tag`.
  void watch(int op, int fd, std::uint64_t tag, std::uint32_t events) const {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epoll_, op, fd, &ev);
  }

  void fail(const std::string& kind) { failures_[kind] = failures_.value(kind, 0) + 1; }

  void ramp() {
    while (next_ramp_ < conns_.size() && in_flight_ < kMaxRamping) {
      if (conns_[next_ramp_].state == State::kIdle) start(static_cast<std::uint32_t>(next_ramp_));
      ++next_ramp_;
    }
    if (next_ramp_ >= conns_.size()) ramping_ = false;
  }

  static bool is_in_flight(State s) { return s == State::kConnecting || s == State::kHandshake; }

  void set_state(Conn& c, State s) {
    in_flight_ += (is_in_flight(s) ? 1 : 0) - (is_in_flight(c.state) ? 1 : 0);
    c.state = s;
    ++c.generation;
  }

  void add_timer(std::uint32_t index, TimerKind kind, std::int64_t due) {
    timers_.push({due, index, conns_[index].generation, kind});
  }

  void fire_timers(std::int64_t now) {
    while (!timers_.empty() && timers_.top().due <= now) {
      const Timer t = timers_.top();
      timers_.pop();
      Conn& c = conns_[t.index];
      if (t.generation != c.generation) continue;
      switch (t.kind) {
        case TimerKind::kRetry:
          if (c.state == State::kIdle) start(t.index);
          break;
        case TimerKind::kHandshakeDeadline:
          fail("handshake_timeout");
          ended(t.index, false);
          break;
        case TimerKind::kStats:
          if (c.state == State::kOpen) {
            send(t.index, stats_);
            ++stats_sent_;
            add_timer(t.index, TimerKind::kStats, t.due + stats_interval_.count());
          }
          break;
      }
    }
  }

  // One connection attempt: a non-blocking connect from the agent's source address.
  void start(std::uint32_t index) {
    Conn& c = conns_[index];
    ++attempts_;
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      fail("socket_" + std::string(std::strerror(errno)));
      retry(index);
      return;
    }
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in& src = sources_[c.source];
    if (::bind(c.fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      fail("bind_" + std::string(std::strerror(errno)));
      ::close(c.fd);
      c.fd = -1;
      retry(index);
      return;
    }
    const int rc = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&server_), sizeof server_);
    if (rc != 0 && errno != EINPROGRESS) {
      fail(std::string("connect_") + std::strerror(errno));
      ::close(c.fd);
      c.fd = -1;
      retry(index);
      return;
    }
    set_state(c, State::kConnecting);
    watch(EPOLL_CTL_ADD, c.fd, index, EPOLLOUT | EPOLLIN);
    add_timer(index, TimerKind::kHandshakeDeadline, now_ms() + kHandshakeTimeout.count());
  }

  void retry(std::uint32_t index) {
    Conn& c = conns_[index];
    set_state(c, State::kIdle);
    add_timer(index, TimerKind::kRetry, now_ms() + c.backoff->next_delay().count());
  }

  // The connection is over (failed, closed by the server, reset): close it and back off.
  void ended(std::uint32_t index, bool was_open) {
    Conn& c = conns_[index];
    if (c.fd >= 0) {
      ::close(c.fd);  // also leaves the epoll set
      c.fd = -1;
    }
    c.rx.clear();
    c.tx.clear();
    if (was_open) c.backoff->on_connection_ended(Ms(now_ms() - c.opened_at));
    retry(index);
  }

  void drop_all() {
    drop_at_ = now_ms();
    dropped_ = 0;
    const linger hard{1, 0};
    for (std::uint32_t i = 0; i < conns_.size(); ++i) {
      Conn& c = conns_[i];
      c.back_at = 0;
      if (c.fd < 0) continue;
      ::setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
      ++dropped_;
      ended(i, c.state == State::kOpen);
    }
  }

  void on_event(std::uint32_t index, std::uint32_t events) {
    Conn& c = conns_[index];
    if (c.fd < 0) return;
    if (c.state == State::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        fail(std::string("connect_") + std::strerror(err));
        ended(index, false);
        return;
      }
      if ((events & EPOLLOUT) == 0) return;
      set_state(c, State::kHandshake);
      add_timer(index, TimerKind::kHandshakeDeadline, now_ms() + kHandshakeTimeout.count());
      const FleetAgent& a = agents_[index];
      std::string req =
          "GET /ws/agent/" + a.id + " HTTP/1.1\r\nHost: " + host_ + ":" + std::to_string(port_) +
          "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: cmV4ZWMtZmxlZXQta2V5MQ==\r\n"
          "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rexec.v2, rexec.v1\r\n"
          "Authorization: Bearer " +
          a.token +
          "\r\nX-Agent-OS: linux\r\nX-Agent-Arch: amd64\r\n"
          "X-Agent-Shell: /bin/bash\r\nX-Agent-Version: 0.0.0-fleet\r\n\r\n";
      watch(EPOLL_CTL_MOD, c.fd, index, EPOLLIN);
      send(index, req);
      return;
    }
    if ((events & EPOLLOUT) != 0 && !c.tx.empty()) flush(index);
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) receive(index);
  }

  void receive(std::uint32_t index) {
    static std::array<char, 65536> buf;
    Conn& c = conns_[index];
    for (;;) {
      const ssize_t n = ::recv(c.fd, buf.data(), buf.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        const bool was_open = c.state == State::kOpen;
        fail(was_open ? "closed_open" : (n == 0 ? "closed_handshake" : "reset_handshake"));
        ended(index, was_open);
        return;
      }
      if (n < 0) return;
      c.rx.append(buf.data(), static_cast<std::size_t>(n));
      if (!parse(index)) return;
      if (static_cast<std::size_t>(n) < buf.size()) return;
    }
  }

  // Handles what c.rx holds; false when the connection ended.
  bool parse(std::uint32_t index) {
    Conn& c = conns_[index];
    if (c.state == State::kHandshake) {
      const auto end = c.rx.find("\r\n\r\n");
      if (end == std::string::npos) return true;
      if (c.rx.compare(0, 12, "HTTP/1.1 101") != 0) {
        fail("http_" + (c.rx.size() >= 12 ? c.rx.substr(9, 3) : std::string("garbled")));
        ended(index, false);
        return false;
      }
      c.rx.erase(0, end + 4);
      set_state(c, State::kOpen);
      c.opened_at = now_ms();
      if (drop_at_ != 0 && c.back_at == 0) c.back_at = c.opened_at;
      send(index, system_info_);
      send(index, stats_);
      ++stats_sent_;
      add_timer(index, TimerKind::kStats, c.opened_at + stats_interval_.count());
    }
    std::size_t at = 0;
    while (c.rx.size() - at >= 2) {
      const auto b0 = static_cast<std::uint8_t>(c.rx[at]);
      const auto b1 = static_cast<std::uint8_t>(c.rx[at + 1]);
      std::size_t len = b1 & 0x7fU;
      std::size_t head = 2;
      if (len == 126) {
        if (c.rx.size() - at < 4) break;
        len = (static_cast<std::size_t>(static_cast<std::uint8_t>(c.rx[at + 2])) << 8U) |
              static_cast<std::uint8_t>(c.rx[at + 3]);
        head = 4;
      } else if (len == 127) {
        if (c.rx.size() - at < 10) break;
        len = 0;
        for (std::size_t i = 0; i < 8; ++i) {
          len = (len << 8U) | static_cast<std::uint8_t>(c.rx[at + 2 + i]);
        }
        head = 10;
      }
      if (c.rx.size() - at < head + len) break;
      const std::string_view payload(c.rx.data() + at + head, len);
      const unsigned opcode = b0 & 0x0fU;
      at += head + len;
      if (opcode == 0x9) {  // ping: pong with its payload
        ++pings_;
        send(index, client_frame(0xA, payload));
      } else if (opcode == 0x8) {  // close: answer it and go
        ++server_closes_;
        send(index, client_frame(0x8, payload.substr(0, std::min<std::size_t>(payload.size(), 2))));
        fail("server_close");
        ended(index, true);
        return false;
      }
    }
    c.rx.erase(0, at);
    return true;
  }

  void send(std::uint32_t index, std::string_view bytes) {
    Conn& c = conns_[index];
    if (c.fd < 0) return;
    if (!c.tx.empty()) {
      c.tx.append(bytes);
      return;
    }
    const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    const std::size_t sent = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (sent == bytes.size()) return;
    c.tx.assign(bytes.substr(sent));
    watch(EPOLL_CTL_MOD, c.fd, index, EPOLLIN | EPOLLOUT);
  }

  void flush(std::uint32_t index) {
    Conn& c = conns_[index];
    const ssize_t n = ::send(c.fd, c.tx.data(), c.tx.size(), MSG_NOSIGNAL);
    if (n > 0) c.tx.erase(0, static_cast<std::size_t>(n));
    if (!c.tx.empty()) return;
    watch(EPOLL_CTL_MOD, c.fd, index, EPOLLIN);
  }

  std::string host_;
  int port_;
  Ms stats_interval_;
  std::vector<FleetAgent> agents_;
  std::vector<Conn> conns_;
  std::vector<sockaddr_in> sources_;
  sockaddr_in server_{};
  std::string system_info_;
  std::string stats_;
  int epoll_ = -1;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::string commands_;
  bool quit_ = false;
  bool ramping_ = false;
  std::size_t next_ramp_ = 0;
  int in_flight_ = 0;  // connections connecting or in their handshake
  std::int64_t drop_at_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t attempts_ = 0;
  std::uint64_t pings_ = 0;
  std::uint64_t stats_sent_ = 0;
  std::uint64_t server_closes_ = 0;
  nlohmann::json failures_ = nlohmann::json::object();
};

}  // namespace

int fleet_main(const std::string& file) {
  std::ifstream in(file);
  std::string host;
  int port = 0;
  int sources = 1;
  long long stats_ms = 5000;
  if (!(in >> host >> port >> sources >> stats_ms)) {
    std::fprintf(stderr, "fleet: cannot read %s\n", file.c_str());
    return 2;
  }
  std::vector<FleetAgent> agents;
  for (FleetAgent a; in >> a.id >> a.token;) agents.push_back(a);
  ::signal(SIGPIPE, SIG_IGN);  // NOLINT
  try {
    Fleet f(host, port, std::max(sources, 1), Ms(stats_ms), std::move(agents));
    f.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet: %s\n", e.what());
    return 1;
  }
  return 0;
}

FleetProcess::FleetProcess(const std::string& self, const std::string& dir, const std::string& host,
                           int port, const std::vector<FleetAgent>& agents, int sources,
                           std::chrono::milliseconds stats_interval) {
  const std::string file = dir + "/fleet-agents.txt";
  {
    std::ofstream out(file, std::ios::trunc);
    out << host << ' ' << port << ' ' << sources << ' ' << stats_interval.count() << '\n';
    for (const FleetAgent& a : agents) out << a.id << ' ' << a.token << '\n';
    if (!out) throw std::runtime_error("fleet: cannot write " + file);
  }
  std::array<int, 2> in{};
  std::array<int, 2> out{};
  if (::pipe2(in.data(), O_CLOEXEC) != 0 || ::pipe2(out.data(), O_CLOEXEC) != 0) {
    throw std::runtime_error("fleet: pipe");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  const std::string log = dir + "/fleet.log";
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = {self, "--fleet", file};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&pid_, self.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
  if (rc != 0) throw std::runtime_error("fleet: cannot start " + self);
}

FleetProcess::~FleetProcess() {
  if (to_child_ >= 0) ::close(to_child_);  // the child sees EOF and quits
  if (from_child_ >= 0) ::close(from_child_);
  if (pid_ > 0) {
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

nlohmann::json FleetProcess::command(const std::string& line, std::chrono::milliseconds timeout) {
  const std::string text = line + "\n";
  if (::write(to_child_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw std::runtime_error("fleet: the child is gone");
  }
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (const auto nl = pending_.find('\n'); nl != std::string::npos) {
      const std::string answer = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return nlohmann::json::parse(answer);
    }
    const auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error("fleet: no answer to " + line);
    pollfd p{from_child_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    std::array<char, 4096> buf{};
    const ssize_t n = ::read(from_child_, buf.data(), buf.size());
    if (n <= 0) throw std::runtime_error("fleet: the child is gone");
    pending_.append(buf.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace rx::bench
