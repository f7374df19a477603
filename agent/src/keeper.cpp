// SPDX-License-Identifier: MIT
// The shell keeper (its process, and the agent's end of its socket). See keeper.h for the wire and
// docs/architecture.md, "Shell handover", for why a keeper rather than a handover between two
// agent processes.
#include "keeper.h"

#include "rexec/common/check.h"
#include "rexec/common/file.h"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>
#include <thread>

#include "session_cgroups.h"

extern char** environ;  // NOLINT: POSIX

namespace rx::agent {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxPacketBytes = 64U * 1024U;
constexpr std::size_t kMaxFds = 4;
constexpr int kWireVersion = 1;
constexpr milliseconds kRequestTimeout{5000};
// A keeper just started gets longer to answer: through systemd-run, on a loaded machine under
// emulation, it once took more than 5 s (tests/vm). Milliseconds on an ordinary host.
constexpr milliseconds kStartTimeout{20000};
constexpr milliseconds kFirstAgentWait{10000};  // a keeper nobody attaches to gives up
constexpr milliseconds kKillAfter{5000};        // SIGHUP → SIGKILL when the keeper ends shells

sockaddr_un address_of(const std::string& agent_id, socklen_t& len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = keeper_address(agent_id);
  const std::size_t n = std::min(path.size(), sizeof(a.sun_path));
  std::memcpy(a.sun_path, path.data(), n);
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  return a;
}

}  // namespace

Result<pid_t> check_peer_uid(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Error::from_errno("getsockopt(SO_PEERCRED)", errno);
  }
  if (cred.uid != ::geteuid()) {
    return Error(Errc::kPermission,
                 "socket peer runs as uid " + std::to_string(cred.uid) + ", not as us");
  }
  return cred.pid;
}

namespace {

Status send_packet(int fd, const nlohmann::json& body, const std::vector<int>& fds = {}) {
  REXEC_CHECK(fds.size() <= kMaxFds);
  std::string text = body.dump();
  iovec iov{text.data(), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (c == nullptr) return Error(Errc::kInternal, "keeper socket: no room for descriptors");
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const auto deadline = Clock::now() + kRequestTimeout;
  for (;;) {
    if (::sendmsg(fd, &msg, MSG_NOSIGNAL) >= 0) return {};
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Error::from_errno("sendmsg", errno);
    pollfd p{fd, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) {
      return Error(Errc::kTimeout, "keeper socket: send timed out");
    }
  }
}

// One packet, if one is waiting. Errors: kClosed at EOF; kProtocol for a packet that is too big,
// carries too many descriptors or is not a JSON object; kSystem from recvmsg.
Result<std::optional<KeeperPacket>> recv_packet(int fd) {
  thread_local std::string buffer(kMaxPacketBytes, '\0');
  iovec iov{buffer.data(), buffer.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control{};
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n = 0;
  do {
    n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return std::optional<KeeperPacket>();
  if (n < 0) return Error::from_errno("recvmsg", errno);
  if (n == 0) return Error(Errc::kClosed, "keeper socket closed");
  KeeperPacket p;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      p.fds.emplace_back(got);  // owned at once, so every error below closes them
    }
  }
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return Error(Errc::kBadValue, "keeper socket: oversized packet");
  }
  p.body = nlohmann::json::parse(buffer.data(), buffer.data() + n, nullptr, false);
  if (!p.body.is_object() || !p.body.contains("op") || !p.body["op"].is_string()) {
    return Error(Errc::kBadValue, "keeper socket: packet is not a JSON object with an op");
  }
  return std::optional<KeeperPacket>(std::move(p));
}

std::string op_of(const KeeperPacket& p) { return p.body["op"].get<std::string>(); }

// An integer member, or `fallback` when it is missing or not an integer that fits.
template <class T>
T int_field(const nlohmann::json& j, const char* key, T fallback) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return fallback;
  const auto v = it->get<std::int64_t>();
  if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return fallback;
  return static_cast<T>(v);
}

std::string text_field(const nlohmann::json& j, const char* key, const std::string& fallback) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

uvx::ExitStatus status_of(const nlohmann::json& j) {
  return {int_field(j, "exit_code", -1), int_field(j, "signal", 0)};
}

nlohmann::json exit_fields(nlohmann::json j, uvx::ExitStatus st) {
  j["exit_code"] = st.exit_code;
  j["signal"] = st.term_signal;
  return j;
}

// Where systemd runs us: our service and its slice, read from /proc/self/cgroup
// ("0::/system.slice/rexec-agent.service/agent"), when systemd started us (INVOCATION_ID).
struct SystemdService {
  std::string service;  // "rexec-agent.service"
  std::string slice;    // "system.slice"
};

// Only the system manager's services, run as root: systemd-run --scope asks that manager.
std::optional<SystemdService> systemd_service() {
  // NOLINTNEXTLINE(concurrency-mt-unsafe): start-up, before any thread
  if (::geteuid() != 0 || std::getenv("INVOCATION_ID") == nullptr) return std::nullopt;
  auto text = read_file("/proc/self/cgroup");
  if (!text) return std::nullopt;
  for (const std::string_view line : split(*text, '\n')) {
    if (line.substr(0, 4) != "0::/" || line.find("/user@") != std::string_view::npos) continue;
    const auto path = split(line.substr(4), '/');
    for (std::size_t i = path.size(); i-- > 0;) {
      if (!path[i].ends_with(".service")) continue;
      return SystemdService{std::string(path[i]), i > 0 && path[i - 1].ends_with(".slice")
                                                      ? std::string(path[i - 1])
                                                      : std::string("-.slice")};
    }
  }
  return std::nullopt;
}

std::string find_systemd_run() {
  for (const char* p : {"/usr/bin/systemd-run", "/bin/systemd-run"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// Our executable, for systemd-run to start: its path, or /proc/<pid>/exe once an upgrade replaced
// the file (the old inode stays reachable there while we run).
std::string own_executable() {
  std::array<char, 4096> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  const std::string path(buf.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
  if (path.empty() || path.ends_with(" (deleted)")) {
    return "/proc/" + std::to_string(::getpid()) + "/exe";
  }
  return path;
}

// Starts `rexec-agent keeper`: a child in a session of its own; under a systemd service (`scope`
// set) through systemd-run, which makes it a transient scope unit bound to the service
// (docs/architecture.md, "Shell handover": "systemd").
Result<pid_t> spawn_keeper(const std::string& agent_id, const std::string& scope,
                           const std::optional<SystemdService>& service) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // stdout and stderr stay: the keeper logs where the agent logs. Nothing else is inherited: a
  // copy of the agent's server socket would keep that connection open after the agent is gone.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigset_t none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  // Its own session: the agent's terminal, process group and service stop signals are not its.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<std::string> args;
  std::string path = "/proc/self/exe";
  if (!scope.empty() && service) {
    path = find_systemd_run();
    const std::string& svc = service->service;
    // The unit's ExecStopPost stops the scope when the service stops for good (install.sh).
    // SendSIGHUP: interactive shells ignore SIGTERM. TimeoutStopSec: SIGKILL for what is left.
    args = {path,
            "--scope",
            "--quiet",
            "--collect",
            "--unit=" + scope,
            "--slice=" + service->slice,
            "--description=rexec-agent shells, kept across restarts of " + svc,
            "-p",
            "Delegate=yes",
            "-p",
            "SendSIGHUP=yes",
            "-p",
            "TimeoutStopSec=3",
            "--",
            own_executable()};
  } else {
    args = {"rexec-agent"};
  }
  for (const char* a : {"keeper", "--agent-id"}) args.emplace_back(a);
  args.push_back(agent_id);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::from_errno("posix_spawn(keeper)", rc);
  return pid;
}

// Connects to the keeper's socket; ECONNREFUSED/ENOENT mean nobody listens there yet.
Result<UniqueFd> connect_keeper(const std::string& agent_id) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket", errno);
  socklen_t len = 0;
  const sockaddr_un a = address_of(agent_id, len);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) {
    return Error::from_errno("connect", errno);
  }
  if (auto st = check_peer_uid(fd.get()); !st) return st.error();
  return fd;
}

}  // namespace

std::string keeper_address(const std::string& agent_id) {
  return std::string(1, '\0') + "rexec-agent-keeper/" + agent_id;
}

// ---- the agent's end ----------------------------------------------------------------------

KeeperLink::KeeperLink(uv_loop_t* loop, uvx::ChildReaper& reaper, UniqueFd fd, Handlers handlers)
    : reaper_(reaper), fd_(std::move(fd)), handlers_(std::move(handlers)), deliver_(loop) {}

// A watched child keeps the loop alive; the keeper is meant to outlive us, so stop watching it.
KeeperLink::~KeeperLink() {
  if (started_ > 0) reaper_.unwatch(started_);
}

Result<std::unique_ptr<KeeperLink>> KeeperLink::open(uv_loop_t* loop, uvx::ChildReaper& reaper,
                                                     const std::string& agent_id,
                                                     milliseconds grace, bool start,
                                                     Handlers handlers) {
  auto fd = connect_keeper(agent_id);
  pid_t started = -1;
  if (!fd && !start && fd.error().code != Errc::kPermission) {
    return Error(Errc::kUnavailable, "no shell keeper runs for this agent");
  }
  if (!fd && fd.error().code != Errc::kPermission) {
    // Under systemd: the keeper and the shells in a scope unit of their own; where systemd-run
    // is missing or fails (a scope of that name left by a killed keeper), as our child.
    const auto service = systemd_service();
    std::string scope;
    if (service && !find_systemd_run().empty()) {
      scope = service->service.substr(0, service->service.size() - 8) + "-shells.scope";
    }
    auto pid = spawn_keeper(agent_id, scope, service);
    if (!pid) return pid.error();
    started = *pid;
    const auto deadline = Clock::now() + kStartTimeout;
    while (!fd && fd.error().code != Errc::kPermission && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(10));  // start-up only, before any terminal
      fd = connect_keeper(agent_id);
      int st = 0;
      if (!fd && !scope.empty() && ::waitpid(started, &st, WNOHANG) == started) {
        spdlog::warn(
            "systemd-run could not start the shell keeper in {}; starting it as our "
            "child (shells then end when the service restarts)",
            scope);
        scope.clear();
        pid = spawn_keeper(agent_id, scope, service);
        if (!pid) return pid.error();
        started = *pid;
      }
    }
    spdlog::info("shell keeper started pid={}{}{}", started, scope.empty() ? "" : " scope=", scope);
    reaper.watch(started, [pid = started](uvx::ExitStatus st) {
      spdlog::info("shell keeper exited pid={} exit={} signal={}", pid, st.exit_code,
                   st.term_signal);
    });
  }
  if (!fd) {
    if (started > 0) reaper.unwatch(started);
    return Error(fd.error().code, "cannot reach the shell keeper: " + fd.error().message);
  }
  std::unique_ptr<KeeperLink> link(
      new KeeperLink(loop, reaper, std::move(fd).value(), std::move(handlers)));
  link->started_ = started;
  auto* poll = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  if (const int rc = uv_poll_init(loop, poll, link->fd_.get()); rc != 0) {
    delete poll;  // NOLINT(cppcoreguidelines-owning-memory): never initialised
    return Error::from_uv("uv_poll_init", rc);
  }
  link->poll_ = uvx::UvHandle<uv_poll_t>(poll);
  poll->data = link.get();
  auto ready =
      link->request({{"op", "hello"}, {"v", kWireVersion}, {"grace_ms", grace.count()}}, {"ready"});
  if (!ready) return ready.error();
  link->cgroup_root_ = text_field(ready->body, "cgroup_root", "");
  if (auto peer = check_peer_uid(link->fd_.get())) link->keeper_pid_ = *peer;
  uv_poll_start(poll, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<KeeperLink*>(h->data)->on_readable(); });
  return link;
}

Result<KeeperPacket> KeeperLink::request(const nlohmann::json& body,
                                         std::initializer_list<std::string_view> answers,
                                         const std::vector<int>& fds) {
  if (lost_) return Error(Errc::kClosed, "the shell keeper is gone");
  if (auto st = send_packet(fd_.get(), body, fds); !st) return st.error();
  const auto deadline = Clock::now() + kRequestTimeout;
  for (;;) {
    auto p = recv_packet(fd_.get());
    if (!p) return p.error();
    if (!p->has_value()) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) == 0) {
        return Error(Errc::kTimeout, "the shell keeper did not answer");
      }
      continue;
    }
    KeeperPacket& got = **p;
    const std::string op = op_of(got);
    if (std::find(answers.begin(), answers.end(), op) != answers.end()) return std::move(got);
    if (op == "busy") return Error(Errc::kLimit, text_field(got.body, "error", "keeper busy"));
    if (op == "shell") {  // the kept shells, before "ready"
      auto kept = kept_from(got);
      if (!kept) return kept.error();
      kept_.push_back(std::move(kept).value());
      continue;
    }
    pending_.push_back(std::move(got));  // a report: delivered after this request
    deliver_.start(milliseconds(0), [this] {
      while (!pending_.empty() && !lost_) {
        KeeperPacket next = std::move(pending_.front());
        pending_.pop_front();
        dispatch(next);
      }
    });
  }
}

Result<KeptShell> KeeperLink::kept_from(KeeperPacket& p) {
  const auto& j = p.body;
  const pid_t pid = int_field(j, "pid", pid_t{-1});
  if (!j.contains("id") || !j["id"].is_string() || pid <= 0 || p.fds.size() != 2) {
    return Error(Errc::kBadValue, "keeper: malformed shell description");
  }
  KeptShell k;
  k.id = j["id"].get<std::string>();
  k.pid = pid;
  k.master = std::move(p.fds[0]);
  auto ring = OutputRing::attach(std::move(p.fds[1]));
  if (!ring) return ring.error();
  k.ring = std::move(ring).value();
  if (j.contains("exited") && j["exited"] == true) k.exited = status_of(j);
  k.cgroup = text_field(j, "cgroup", "");
  return k;
}

Result<KeptShell> KeeperLink::spawn(const std::string& id, const std::string& shell,
                                    std::optional<pty::PtySize> size, const std::string& cgroup,
                                    int cgroup_procs) {
  nlohmann::json j{{"op", "spawn"}, {"id", id}, {"shell", shell}};
  if (size) {
    j["cols"] = size->cols;
    j["rows"] = size->rows;
  }
  std::vector<int> fds;
  if (!cgroup.empty()) {
    j["cgroup"] = cgroup;
    fds.push_back(cgroup_procs);
  }
  auto answer = request(j, {"spawned", "spawn_failed"}, fds);
  if (!answer) {
    lose(answer.error().message);
    return Error(Errc::kClosed, "the shell keeper did not answer: " + answer.error().message);
  }
  if (op_of(*answer) == "spawn_failed") {
    return Error(Errc::kSystem, text_field(answer->body, "error", "spawn failed"));
  }
  return kept_from(*answer);
}

void KeeperLink::terminate(const std::string& id, milliseconds grace) {
  if (lost_) return;
  if (auto st =
          send_packet(fd_.get(), {{"op", "terminate"}, {"id", id}, {"grace_ms", grace.count()}});
      !st) {
    lose(st.error().message);
  }
}

void KeeperLink::release(const std::string& id) {
  if (lost_) return;
  if (auto st = send_packet(fd_.get(), {{"op", "release"}, {"id", id}}); !st) {
    lose(st.error().message);
  }
}

void KeeperLink::on_readable() {
  for (;;) {
    auto p = recv_packet(fd_.get());
    if (!p) {
      lose(p.error().message);
      return;
    }
    if (!p->has_value()) return;
    dispatch(**p);
    if (lost_) return;
  }
}

void KeeperLink::dispatch(KeeperPacket& p) {
  const std::string id = text_field(p.body, "id", "");
  if (op_of(p) == "exited" && !id.empty() && handlers_.on_exit) {
    handlers_.on_exit(id, status_of(p.body));
  }
}

void KeeperLink::lose(const std::string& why) {
  if (lost_) return;
  lost_ = true;
  spdlog::error("lost the shell keeper: {}", why);
  poll_.reset();
  deliver_.stop();
  if (handlers_.on_lost) handlers_.on_lost();
}

// ---- the keeper process --------------------------------------------------------------------

namespace {

class Keeper {
 public:
  Keeper(uv_loop_t* loop, std::string agent_id)
      : loop_(loop), agent_id_(std::move(agent_id)), reaper_(loop), orphan_(loop) {}

  int run();

 private:
  struct Shell {
    pid_t pid = -1;
    UniqueFd master;
    UniqueFd slave;  // ours, closed at the exit: the agent then reads the master to EIO
    OutputRing ring;
    std::string cgroup;  // the session's cgroup (the agent made it), or empty
    bool exited = false;
    uvx::ExitStatus status;
    std::unique_ptr<uvx::Timer> kill;
  };

  void on_accept();
  void on_agent_readable();
  void handle(KeeperPacket& p);
  void spawn(KeeperPacket& p);
  void end_shell(Shell& s, milliseconds grace);
  void on_exit(const std::string& id, pid_t pid, uvx::ExitStatus st);
  void detach(const std::string& why);
  void give_up();
  void maybe_exit();
  void send_to_agent(const nlohmann::json& j, const std::vector<int>& fds = {});

  uv_loop_t* loop_;
  std::string agent_id_;
  uvx::ChildReaper reaper_;
  UniqueFd listen_;
  uvx::UvHandle<uv_poll_t> listen_poll_;
  UniqueFd agent_;
  uvx::UvHandle<uv_poll_t> agent_poll_;
  uvx::Timer orphan_;
  std::vector<uvx::UvHandle<uv_signal_t>> signals_;
  std::map<std::string, std::unique_ptr<Shell>> shells_;
  std::string cgroup_root_;  // in a systemd scope: the scope's cgroup, where sessions go
  milliseconds grace_{0};
  bool gave_up_ = false;
  bool done_ = false;
};

int Keeper::run() {
  // Started by systemd-run in a scope of its own: the scope's cgroup is the root of the session
  // cgroups. A cgroup whose children have controllers (limits) may hold no process itself, so
  // the keeper moves into a leaf, "<scope>/keeper".
  if (auto own = own_cgroup(); own && own->ends_with(".scope")) {
    if (auto st = join_cgroup(*own + "/keeper"); st) {
      cgroup_root_ = *own;
    } else {
      spdlog::warn("keeper: sessions stay out of the scope's cgroup: {}", st.error().message);
    }
  }
  listen_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_) {
    spdlog::error("keeper: socket: {}", std::strerror(errno));
    return 1;
  }
  socklen_t len = 0;
  const sockaddr_un a = address_of(agent_id_, len);
  if (::bind(listen_.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0 ||
      ::listen(listen_.get(), 4) != 0) {
    // EADDRINUSE: a keeper for this agent runs already; the agent attaches to that one.
    spdlog::error("keeper: cannot listen: {}", std::strerror(errno));
    return 1;
  }
  auto* lp = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_poll_init(loop_, lp, listen_.get()) == 0);
  listen_poll_ = uvx::UvHandle<uv_poll_t>(lp);
  lp->data = this;
  uv_poll_start(lp, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<Keeper*>(h->data)->on_accept(); });
  for (int sig : {SIGTERM, SIGINT}) {
    auto* h = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
    uv_signal_init(loop_, h);
    h->data = this;
    uv_signal_start(
        h,
        [](uv_signal_t* s, int signum) {
          spdlog::info("keeper: signal received, ending shells signal={}", signum);
          static_cast<Keeper*>(s->data)->give_up();
        },
        sig);
    signals_.emplace_back(h);
  }
  ::signal(SIGPIPE, SIG_IGN);  // NOLINT: a write to a gone agent returns EPIPE
  ::signal(SIGHUP, SIG_IGN);   // NOLINT: no terminal is ours
  orphan_.start(kFirstAgentWait, [this] { give_up(); });
  spdlog::info("keeper started pid={}", ::getpid());
  uv_run(loop_, UV_RUN_DEFAULT);
  return 0;
}

void Keeper::on_accept() {
  UniqueFd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd) return;
  if (auto st = check_peer_uid(fd.get()); !st) {
    spdlog::warn("keeper: connection refused: {}", st.error().message);
    return;
  }
  if (agent_) {
    // One agent at a time; a second one (two `run`s with one config) is told why and closed.
    (void)send_packet(fd.get(), {{"op", "busy"}, {"error", "another agent is attached"}});
    return;
  }
  agent_ = std::move(fd);
  auto* p = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  REXEC_CHECK(uv_poll_init(loop_, p, agent_.get()) == 0);
  agent_poll_ = uvx::UvHandle<uv_poll_t>(p);
  p->data = this;
  uv_poll_start(p, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<Keeper*>(h->data)->on_agent_readable(); });
  orphan_.stop();
  gave_up_ = false;
  spdlog::info("keeper: agent attached shells={}", shells_.size());
}

void Keeper::on_agent_readable() {
  while (agent_) {
    auto p = recv_packet(agent_.get());
    if (!p) {
      detach(p.error().message);
      return;
    }
    if (!p->has_value()) return;
    handle(**p);
  }
}

void Keeper::send_to_agent(const nlohmann::json& j, const std::vector<int>& fds) {
  if (!agent_) return;
  if (auto st = send_packet(agent_.get(), j, fds); !st) detach(st.error().message);
}

void Keeper::handle(KeeperPacket& p) {
  const std::string op = op_of(p);
  const auto& j = p.body;
  const std::string id = text_field(j, "id", "");
  if (op == "hello") {
    grace_ = milliseconds(std::max<std::int64_t>(0, int_field(j, "grace_ms", std::int64_t{0})));
    for (auto& [sid, s] : shells_) {
      nlohmann::json d{{"op", "shell"},
                       {"id", sid},
                       {"pid", s->pid},
                       {"exited", s->exited},
                       {"cgroup", s->cgroup}};
      send_to_agent(exit_fields(d, s->status), {s->master.get(), s->ring.fd()});
    }
    nlohmann::json ready{{"op", "ready"}, {"v", kWireVersion}};
    if (!cgroup_root_.empty()) ready["cgroup_root"] = cgroup_root_;
    send_to_agent(ready);
  } else if (op == "spawn") {
    spawn(p);
  } else if (op == "terminate") {
    if (auto it = shells_.find(id); it != shells_.end()) {
      end_shell(*it->second, milliseconds(std::max<std::int64_t>(
                                 0, int_field(j, "grace_ms", std::int64_t{5000}))));
    }
  } else if (op == "release") {
    if (auto it = shells_.find(id); it != shells_.end()) {
      if (!it->second->exited) (void)::kill(-it->second->pid, SIGKILL);
      // The agent kills and removes the session's cgroup itself.
      shells_.erase(it);  // closes our master: the terminal hangs up for anything left on it
    }
  } else {
    spdlog::debug("keeper: unknown op ignored op={}", op);
  }
}

void Keeper::spawn(KeeperPacket& p) {
  const nlohmann::json& j = p.body;
  const std::string id = text_field(j, "id", "");
  auto fail = [&](const std::string& why) {
    send_to_agent({{"op", "spawn_failed"}, {"id", id}, {"error", why}});
  };
  if (id.empty() || shells_.contains(id)) {
    fail(id.empty() ? "no session id" : "session " + id + " is already kept");
    return;
  }
  pty::SpawnOptions so;
  so.shell = text_field(j, "shell", "");
  const pty::PtySize size{int_field(j, "cols", std::uint16_t{0}),
                          int_field(j, "rows", std::uint16_t{0})};
  if (pty::is_valid_size(size)) so.size = size;
  const std::string cgroup = text_field(j, "cgroup", "");
  if (!cgroup.empty()) {
    if (p.fds.size() != 1) {
      fail("spawn: a cgroup without its cgroup.procs descriptor");
      return;
    }
    so.cgroup_procs_fd = p.fds[0].get();
  }
  auto ring = OutputRing::create_shared();
  if (!ring) {
    fail(ring.error().message);
    return;
  }
  auto proc = pty::spawn_pty(so);
  if (!proc) {
    fail(proc.error().message);
    return;
  }
  auto s = std::make_unique<Shell>(Shell{proc->pid(),
                                         UniqueFd(proc->release_master()),
                                         proc->take_slave(),
                                         std::move(ring).value(),
                                         cgroup,
                                         false,
                                         {},
                                         std::make_unique<uvx::Timer>(loop_)});
  const pid_t pid = s->pid;
  reaper_.watch(pid, [this, id, pid](uvx::ExitStatus st) { on_exit(id, pid, st); });
  send_to_agent({{"op", "spawned"}, {"id", id}, {"pid", pid}}, {s->master.get(), s->ring.fd()});
  shells_[id] = std::move(s);
  spdlog::info("keeper: shell started sid={} pid={}", id, pid);
}

void Keeper::end_shell(Shell& s, milliseconds grace) {
  if (s.exited) return;
  (void)::kill(-s.pid, SIGHUP);
  (void)::kill(-s.pid, SIGCONT);
  Shell* raw = &s;
  s.kill->start(grace, [raw] {
    if (!raw->exited) (void)::kill(-raw->pid, SIGKILL);
    if (!raw->cgroup.empty()) (void)kill_cgroup(raw->cgroup);
  });
}

void Keeper::on_exit(const std::string& id, pid_t pid, uvx::ExitStatus st) {
  const auto it = shells_.find(id);
  if (it == shells_.end() || it->second->pid != pid) return;  // released already
  Shell& s = *it->second;
  s.exited = true;
  s.status = st;
  s.kill->stop();
  s.slave.reset();
  spdlog::info("keeper: shell exited sid={} pid={} exit={} signal={}", id, pid, st.exit_code,
               st.term_signal);
  send_to_agent(exit_fields({{"op", "exited"}, {"id", id}}, st));
  maybe_exit();
}

void Keeper::detach(const std::string& why) {
  agent_poll_.reset();
  agent_.reset();
  spdlog::info("keeper: agent detached ({}); keeping shells={} for grace_ms={}", why,
               shells_.size(), grace_.count());
  orphan_.start(grace_, [this] { give_up(); });
  maybe_exit();
}

void Keeper::give_up() {
  if (!gave_up_) spdlog::info("keeper: no agent took over; ending shells={}", shells_.size());
  gave_up_ = true;
  orphan_.stop();
  agent_poll_.reset();  // an attached agent sees the keeper go
  agent_.reset();
  for (auto& [id, s] : shells_) end_shell(*s, kKillAfter);
  maybe_exit();
}

void Keeper::maybe_exit() {
  if (done_ || agent_) return;
  bool all_exited = true;
  for (const auto& [id, s] : shells_) all_exited = all_exited && s->exited;
  if (!shells_.empty() && !(gave_up_ && all_exited)) return;
  done_ = true;
  spdlog::info("keeper stopped");
  orphan_.stop();
  // Shells it ended itself (no agent came back): what they left running goes with them. The
  // cgroups empty within milliseconds of cgroup.kill; give them a second before leaving them.
  for (const auto& [id, s] : shells_) {
    if (s->cgroup.empty()) continue;
    (void)kill_cgroup(s->cgroup);
    for (int i = 0; i < 100 && !remove_cgroup(s->cgroup); ++i) {
      std::this_thread::sleep_for(milliseconds(10));  // exiting: nothing else to serve
    }
  }
  shells_.clear();
  listen_poll_.reset();
  listen_.reset();
  for (auto& s : signals_) s.reset();
  signals_.clear();
}

}  // namespace

int run_keeper(const std::string& agent_id) {
  uv_loop_t loop;
  REXEC_CHECK(uv_loop_init(&loop) == 0);
  int rc = 0;
  {
    Keeper keeper(&loop, agent_id);
    rc = keeper.run();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  (void)uv_loop_close(&loop);
  return rc;
}

}  // namespace rx::agent
