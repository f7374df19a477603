// SPDX-License-Identifier: MIT
// The agent's run loop: one libuv loop owning the lws context, the server link, the shells,
// exec runners and timers. lws and uv callbacks are trampolines into Agent methods.
#include "rexec/agent/agent.h"

#include "rexec/agent/backoff.h"
#include "rexec/agent/output_ring.h"
#include "rexec/common/check.h"
#include "rexec/common/version.h"
#include "rexec/net/http_client.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/ws_client.h"
#include "rexec/proto/binary_frame.h"
#include "rexec/proto/message_codec.h"
#include "rexec/pty/pty_process.h"
#include "rexec/sysinfo/sysinfo.h"
#include "rexec/uvx/child_reaper.h"
#include "rexec/uvx/pty_session.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "exec_runner.h"
#include "file_transfers.h"
#include "keeper.h"
#include "session_cgroups.h"
#include "status_socket.h"

namespace rx::agent {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Connections of the agent's lws context: the link, and an HTTP request or two while it
// reconnects. PTYs and the keeper's socket are libuv's, not lws's.
constexpr unsigned int kMaxConnections = 16;

// Payload bytes of an output frame that waits in the link's queue and gathers output (one PTY
// read's worth: uvx::PtySessionOptions::read_buffer_bytes), far below the 1 MiB frame limit.
constexpr std::size_t kOutputFrameBytes = std::size_t{64} << 10U;

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): loop thread only
  return v != nullptr ? std::optional<std::string>(v) : std::nullopt;
}

// One shell and the last 256 KiB of its output, numbered by offset (PROTOCOL §4.3).
struct Session {
  explicit Session(OutputRing r) : ring(std::move(r)) {}

  std::string id;
  std::unique_ptr<uvx::PtySession> pty;
  OutputRing ring;
  bool kept = false;      // the shell keeper's child, not ours (handover)
  bool orphaned = false;  // kept, and the keeper is gone: nobody reaps it but init
  std::string cgroup;     // its cgroup directory; empty: isolated by process group only
  bool synced = false;    // this link has been told the offset of our next output byte
  bool stopping = false;
  bool flow_paused = false;  // the server said every viewer is behind (shell_flow, v2)
};

// A download's next chunk goes on the link only while less than this is queued there: terminal
// output then waits behind at most about one chunk of file data (docs/performance.md, "Files").
constexpr std::size_t kFileRoom = 64U * 1024U;

// A closed session's cgroup: SIGHUP, then cgroup.kill after this many 100 ms ticks; given up
// (with a warning) after kSweepLastTick.
constexpr int kSweepGraceTicks = 10;
constexpr int kSweepLastTick = kSweepGraceTicks + 100;

// Replays go out in pieces this size (base64 makes them a third larger on the wire).
constexpr std::size_t kReplayChunk = 64U * 1024U;

// statvfs off the loop thread (a hung mount must not block the loop).
struct DiskWork {
  uv_work_t req{};
  std::string path;
  Result<sysinfo::DiskInfo> result = Error(Errc::kInternal, "not run");
  std::function<void(Result<sysinfo::DiskInfo>)> done;
};

}  // namespace

class Agent {
 public:
  explicit Agent(const RunOptions& options)
      : options_(options),
        backoff_(options.backoff_base, options.backoff_cap),
        reaper_(&loop()),
        reconnect_(&loop()),
        stats_timer_(&loop()),
        ping_timer_(&loop()),
        idle_timer_(&loop()),
        shutdown_timer_(&loop()),
        sweep_timer_(&loop()),
        cleanup_timer_(&loop()) {}

  static uv_loop_t& loop() {
    static uv_loop_t instance;
    return instance;
  }

  int run();

 private:
  // Link life cycle.
  void dial();
  void on_open(std::string_view subprotocol);
  void on_close(const net::WsCloseInfo& info);
  void on_link_down();
  void schedule_reconnect();
  void permanent_failure(int status);

  // Messages.
  void on_message(std::string_view payload, bool binary);
  void handle(const proto::AgentMessage& m);
  void send(const proto::AgentMessage& m);
  void send_output(Session& s, std::string_view bytes);
  void replay(Session& s, std::uint64_t from);

  // Sessions and exec.
  void start_session(const proto::ShellStart& m);
  Result<std::unique_ptr<Session>> spawn_shell(const std::string& id,
                                               std::optional<pty::PtySize> size);
  Result<std::unique_ptr<Session>> adopt_shell(KeptShell kept);
  void end_shell(Session& s);
  void open_keeper(bool start);
  void open_cgroups(const std::string& root);
  void sweep_cgroup(std::string path);
  void apply_reading(Session& s);  // reads its PTY unless the link or its viewers are behind
  void stop_session(const std::string& id);
  void on_session_closed(const std::string& id, uvx::ExitStatus st);
  void set_reading(bool on);
  void run_exec(const proto::Exec& m);
  void send_file_data(std::string_view id, std::uint64_t seq, std::string_view bytes);

  // Reports.
  void send_system_info();
  void send_stats();
  void read_disk(std::function<void(Result<sysinfo::DiskInfo>)> done);

  // Status (`rexec-agent status`).
  nlohmann::json status() const;
  void note_error(std::string what);

  // Shutdown.
  void begin_shutdown(int exit_code);
  void maybe_finish_shutdown();

  RunOptions options_;
  Backoff backoff_;
  uvx::ChildReaper reaper_;
  std::unique_ptr<net::LwsContext> context_;
  std::unique_ptr<net::WsClient> link_;
  std::unique_ptr<net::HttpClient> http_;
  uvx::Timer reconnect_;
  uvx::Timer stats_timer_;
  uvx::Timer ping_timer_;
  uvx::Timer idle_timer_;
  uvx::Timer shutdown_timer_;
  std::vector<uvx::UvHandle<uv_signal_t>> signals_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::uint64_t, std::unique_ptr<ExecRunner>> execs_;
  std::vector<std::unique_ptr<ExecRunner>> finished_execs_;
  std::unique_ptr<FileTransfers> files_;
  std::unique_ptr<KeeperLink> keeper_;  // with handover on; shells are its children
  std::unique_ptr<StatusSocket> status_;
  std::optional<SessionCgroups> cgroups_;
  std::vector<std::pair<std::string, int>> sweeping_;  // closed sessions' cgroups, 100 ms ticks
  uvx::Timer sweep_timer_;
  uvx::Timer cleanup_timer_;
  std::uint64_t next_exec_ = 0;
  sysinfo::CpuSampler cpu_;
  std::string shell_;
  std::string ws_url_;
  bool v2_ = false;
  bool reading_paused_ = false;
  bool stopping_ = false;
  int exit_code_ = 0;
  int pending_disk_ = 0;
  std::uint64_t dropped_frames_ = 0;
  Clock::time_point connected_at_{};
  Clock::time_point last_rx_{};
  // For `status`: wall-clock times (seconds since the epoch), the last error and its time.
  std::int64_t started_wall_ = 0;
  std::int64_t connected_wall_ = 0;
  std::string last_error_;
  std::int64_t last_error_wall_ = 0;
  std::size_t taken_over_ = 0;  // shells taken over from the keeper at start
};

namespace {

std::int64_t wall_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int Agent::run() {
  auto server = normalized_server(options_.config.server);
  if (!server) {
    spdlog::error("{}", server.error().message);
    return 2;
  }
  if (options_.config.agent_id.empty() || options_.config.token.empty()) {
    spdlog::error("agent is not registered: run `rexec-agent register` first");
    return 2;
  }
  auto shell = pty::choose_shell(options_.config.shell);
  if (!shell) {
    spdlog::error("{}", shell.error().message);
    return 2;
  }
  shell_ = *shell;
  ws_url_ =
      net::Url::parse(*server)->with("ws", "/ws/agent/" + options_.config.agent_id).to_string();

  net::ContextOptions co;
  co.loop = &loop();
  co.client_tls = ws_url_.rfind("wss://", 0) == 0;  // an http:// server: no TLS code runs
  co.ca_file = options_.config.ca_file;
  co.max_connections = kMaxConnections;
  auto ctx = net::LwsContext::create(co);
  if (!ctx) {
    spdlog::error("cannot start networking: {}", ctx.error().message);
    return 1;
  }
  context_ = std::move(ctx).value();
  http_ = std::make_unique<net::HttpClient>(*context_);

  for (int sig : {SIGTERM, SIGINT}) {
    auto* h = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
    uv_signal_init(&loop(), h);
    h->data = this;
    uv_signal_start(
        h,
        [](uv_signal_t* s, int signum) {
          auto* self = static_cast<Agent*>(s->data);
          if (self == nullptr) return;
          spdlog::info("signal received, shutting down signal={}", signum);
          self->begin_shutdown(0);
        },
        sig);
    signals_.emplace_back(h);
  }
  ::signal(SIGPIPE, SIG_IGN);  // NOLINT: writes to a closed socket must return EPIPE instead
  ::signal(SIGXFSZ,
           SIG_IGN);  // NOLINT: an upload past `ulimit -f` must fail with EFBIG, not kill us
  files_ = std::make_unique<FileTransfers>(
      &loop(),
      FileLink{[this](const proto::AgentMessage& m) { send(m); },
               [this](std::string_view id, std::uint64_t seq, std::string_view bytes) {
                 send_file_data(id, seq, bytes);
               },
               [this] { return link_ && link_->is_open() && link_->queued_bytes() < kFileRoom; }});

  spdlog::info("agent starting id={} server={} shell={} version={}", options_.config.agent_id,
               *server, shell_, REXEC_VERSION);
  started_wall_ = wall_seconds();
  auto sock = StatusSocket::open(&loop(), options_.config.agent_id, [this] { return status(); });
  if (sock) {
    status_ = std::move(sock).value();
  } else {
    spdlog::warn("no status socket: {}", sock.error().message);
  }
  open_cgroups(options_.cgroup_root);
  if (options_.handover.count() > 0) {
    open_keeper(false);  // a keeper left by the agent before us, if any: it has our shells
    if (keeper_) {
      for (auto& kept : keeper_->take_kept()) {
        const std::string id = kept.id;
        const pid_t pid = kept.pid;
        auto session = adopt_shell(std::move(kept));
        if (!session) {
          spdlog::warn("kept shell not taken over sid={} error={}", id, session.error().message);
          keeper_->release(id);
          continue;
        }
        spdlog::info("session taken over sid={} pid={} offset={}", id, pid,
                     (*session)->ring.end_offset());
        apply_reading(**session);  // output goes on into the ring until the link is up
        sessions_[id] = std::move(session).value();
        ++taken_over_;
      }
    }
  }
  dial();
  idle_timer_.start(milliseconds(1000), milliseconds(1000), [this] {
    if (link_ && link_->is_open() && Clock::now() - last_rx_ > options_.idle_timeout) {
      spdlog::warn("server silent, reconnecting idle_ms={}", options_.idle_timeout.count());
      note_error("the server went silent");
      link_.reset();  // abrupt: a dead link will not complete a close handshake
      on_link_down();
      schedule_reconnect();
    }
  });
  uv_run(&loop(), UV_RUN_DEFAULT);
  return exit_code_;
}

void Agent::dial() {
  if (stopping_) return;
  net::WsClient::Handlers h;
  h.on_open = [this](std::string_view p) { on_open(p); };
  h.on_message = [this](std::string_view m, bool b) { on_message(m, b); };
  h.on_drain = [this] { set_reading(true); };
  h.on_room = [this] { files_->pump(); };
  h.on_pong = [this] { last_rx_ = Clock::now(); };
  h.on_close = [this](const net::WsCloseInfo& info) { on_close(info); };
  link_ = std::make_unique<net::WsClient>(*context_, std::move(h));
  link_->set_low_water(options_.link_low_water);
  link_->set_room_mark(kFileRoom);
  net::WsConnectOptions o;
  o.url = *net::Url::parse(ws_url_);
  o.subprotocols = options_.v1_only ? "rexec.v1" : "rexec.v2, rexec.v1";
  o.max_message_bytes = options_.max_frame_bytes;
  const auto kernel = sysinfo::read_kernel();
  o.headers = {
      {"authorization", "Bearer " + options_.config.token},    {"x-agent-os", "linux"},
      {"x-agent-arch", sysinfo::go_arch(kernel.machine)},      {"x-agent-shell", shell_},
      {"x-agent-distro", sysinfo::read_os_release().distro()}, {"x-agent-version", REXEC_VERSION}};
  spdlog::debug("connecting url={}", ws_url_);
  if (auto st = link_->connect(o); !st) {
    spdlog::warn("connect failed: {}", st.error().message);
    note_error("connect failed: " + st.error().message);
    link_.reset();
    schedule_reconnect();
    return;
  }
  // The handshake must finish in time (PROTOCOL §3.1).
  reconnect_.start(options_.handshake_timeout, [this] {
    if (link_ && !link_->is_open()) {
      spdlog::warn("handshake timed out");
      note_error("handshake timed out");
      link_.reset();
      schedule_reconnect();
    }
  });
}

void Agent::on_open(std::string_view subprotocol) {
  reconnect_.stop();
  v2_ = subprotocol == "rexec.v2";
  connected_at_ = last_rx_ = Clock::now();
  connected_wall_ = wall_seconds();
  for (auto& [id, s] : sessions_) {
    s->synced = false;
    s->flow_paused = false;  // a new link starts with nobody behind
  }
  spdlog::info("connected to server protocol={}", v2_ ? "v2" : "v1");
  send_system_info();  // then the first stats, in that order (PROTOCOL §3.2)
  stats_timer_.start(options_.stats_interval, options_.stats_interval, [this] { send_stats(); });
  ping_timer_.start(options_.ping_interval, options_.ping_interval, [this] {
    if (link_) link_->send_ping();
  });
  set_reading(true);
}

void Agent::on_close(const net::WsCloseInfo& info) {
  link_.reset();  // WsClient allows destruction from on_close, its last call
  if (info.was_open) {
    const auto lasted = std::chrono::duration_cast<milliseconds>(Clock::now() - connected_at_);
    spdlog::info("disconnected from server code={} lasted_ms={}", info.close_code, lasted.count());
    if (!stopping_) {
      note_error("disconnected from the server (close code " + std::to_string(info.close_code) +
                 ")");
    }
    backoff_.on_connection_ended(lasted);
    on_link_down();
    schedule_reconnect();
    return;
  }
  if (info.http_status == 401 || info.http_status == 403 || info.http_status == 404) {
    permanent_failure(info.http_status);
    return;
  }
  const std::string why =
      info.reason +
      (info.http_status != 0 ? " (HTTP " + std::to_string(info.http_status) + ")" : "");
  spdlog::warn("cannot connect to server: {}", why);
  note_error("cannot connect to the server: " + why);
  schedule_reconnect();
}

void Agent::on_link_down() {
  stats_timer_.stop();
  ping_timer_.stop();
  // Shells keep running and their output goes on into the rings: the server asks for what its
  // viewers missed when we are back (shell_start with resume_offset). Memory stays bounded by
  // the rings; output beyond a ring's size while the link is down is reported as a gap.
  for (auto& [id, s] : sessions_) s->flow_paused = false;
  set_reading(true);
  files_->cancel_all();  // the server failed them when it lost us; uploads leave nothing behind
}

void Agent::schedule_reconnect() {
  if (stopping_) {
    maybe_finish_shutdown();
    return;
  }
  const milliseconds delay = backoff_.next_delay();
  spdlog::info("reconnecting in_ms={}", delay.count());
  reconnect_.start(delay, [this] { dial(); });
}

void Agent::permanent_failure(int status) {
  // The handshake refusal carries the server's JSON error, which lws does not expose; the same
  // URL over plain HTTP answers with the same checks, so read the text from there.
  net::HttpRequest req;
  req.url = net::Url::parse(ws_url_)->with("http", net::Url::parse(ws_url_)->path);
  req.headers = {{"authorization", "Bearer " + options_.config.token}};
  auto report = [this, status](const std::string& text) {
    spdlog::error("server refused this agent (HTTP {}): {}", status,
                  text.empty() ? "no reason given" : text);
    note_error("the server refused this agent (HTTP " + std::to_string(status) +
               "): " + (text.empty() ? "no reason given" : text));
    begin_shutdown(kExitPermanent);
  };
  auto st = http_->request(req, [report](Result<net::HttpResponse> r) {
    std::string text;
    if (r) {
      auto j = nlohmann::json::parse(r->body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_string()) {
        text = j["error"].get<std::string>();
      }
    }
    report(text);
  });
  if (!st) report("");
}

void Agent::on_message(std::string_view payload, bool binary) {
  last_rx_ = Clock::now();
  if (binary) {
    auto frame = proto::decode_frame(payload);
    if (frame && frame->kind == proto::FrameKind::kFileData) {
      if (auto chunk = proto::decode_file_payload(frame->payload)) {
        files_->data(frame->id, chunk->seq, chunk->data);
        return;
      }
    }
    if (!frame || frame->kind != proto::FrameKind::kShellInput) {
      ++dropped_frames_;
      spdlog::debug("binary frame dropped dropped_total={}", dropped_frames_);
      return;
    }
    const auto it = sessions_.find(std::string(frame->id));
    if (it == sessions_.end()) return;
    if (auto st = it->second->pty->write(std::string(frame->payload)); !st) {
      spdlog::warn("input dropped sid={} bytes={} reason={}", it->first, frame->payload.size(),
                   st.error().message);
    }
    return;
  }
  proto::DecodeLimits limits;
  limits.max_frame_bytes = options_.max_frame_bytes;
  auto m = proto::decode_agent_message(payload, limits);
  if (!m) {
    ++dropped_frames_;
    if (m.error().code == Errc::kUnknownType) {
      spdlog::debug("message ignored: {}", m.error().message);
    } else {
      spdlog::warn("message dropped error={} dropped_total={}", errc_name(m.error().code),
                   dropped_frames_);
    }
    return;
  }
  handle(*m);
}

void Agent::handle(const proto::AgentMessage& message) {
  std::visit(
      [this](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::ShellStart>) {
          start_session(m);
        } else if constexpr (std::is_same_v<T, proto::ShellInput>) {
          const auto it = sessions_.find(m.session_id);
          if (it == sessions_.end()) return;
          if (auto st = it->second->pty->write(m.data); !st) {
            spdlog::warn("input dropped sid={} bytes={} reason={}", m.session_id, m.data.size(),
                         st.error().message);
          }
        } else if constexpr (std::is_same_v<T, proto::ShellFlow>) {
          const auto it = sessions_.find(m.session_id);
          if (it == sessions_.end()) return;
          it->second->flow_paused = m.paused;
          apply_reading(*it->second);
        } else if constexpr (std::is_same_v<T, proto::ShellResize>) {
          const auto it = sessions_.find(m.session_id);
          if (it != sessions_.end()) (void)it->second->pty->resize({m.cols, m.rows});
        } else if constexpr (std::is_same_v<T, proto::ShellStopSession>) {
          stop_session(m.session_id);
        } else if constexpr (std::is_same_v<T, proto::ShellStop>) {
          std::vector<std::string> ids;
          for (const auto& [id, s] : sessions_) ids.push_back(id);
          for (const auto& id : ids) stop_session(id);
        } else if constexpr (std::is_same_v<T, proto::Exec>) {
          run_exec(m);
        } else if constexpr (std::is_same_v<T, proto::Ping>) {
          send(proto::Pong{});
        } else if constexpr (std::is_same_v<T, proto::FileGet>) {
          files_->get(m);
        } else if constexpr (std::is_same_v<T, proto::FilePut>) {
          files_->put(m);
        } else if constexpr (std::is_same_v<T, proto::FileList>) {
          files_->list(m);
        } else if constexpr (std::is_same_v<T, proto::FileData>) {
          files_->data(m.transfer_id, m.seq, m.data);
        } else if constexpr (std::is_same_v<T, proto::FileEnd>) {
          files_->end(m);
        } else if constexpr (std::is_same_v<T, proto::FileAck>) {
          files_->ack(m);
        } else if constexpr (std::is_same_v<T, proto::FileError>) {
          files_->cancel(m);
        } else {
          spdlog::debug("message ignored type={}", proto::type_name(proto::AgentMessage(m)));
        }
      },
      message);
}

void Agent::send(const proto::AgentMessage& m) {
  if (link_ && link_->is_open()) link_->send_text(proto::encode(m));
}

void Agent::send_output(Session& s, std::string_view bytes) {
  const std::uint64_t offset = s.ring.end_offset();
  s.ring.append(bytes);
  if (!link_ || !link_->is_open()) return;
  if (v2_ && s.synced) {
    std::array<char, proto::kFrameFixedHeaderBytes + proto::kFrameMaxIdBytes> head{};
    const std::size_t header = proto::frame_header_size(s.id);
    proto::write_frame_header(proto::FrameKind::kShellOutput, s.id, head.data());
    // Behind a slow link, output joins this session's frame that waits last in the queue, so
    // the link carries few full frames rather than one small frame per PTY read. The next frame
    // gets that room only while frames wait: one that leaves at once is only as big as its bytes.
    if (!link_->append_to_last({head.data(), header}, bytes)) {
      const std::size_t room =
          link_->queued_bytes() > 0 ? std::max(bytes.size(), kOutputFrameBytes) : bytes.size();
      net::WsMessage msg = net::make_message(header + bytes.size(), true, header + room);
      char* out = msg.buffer.data() + LWS_PRE;
      std::memcpy(out, head.data(), header);
      std::memcpy(out + header, bytes.data(), bytes.size());
      link_->send(std::move(msg));
    }
  } else {
    // v1, and the first output of each session on a v2 link: JSON, which carries the offset;
    // binary frames after it are contiguous with it.
    link_->send_text(proto::encode_shell_output(s.id, bytes, offset));
    s.synced = true;
  }
  if (link_->queued_bytes() > options_.link_high_water) set_reading(false);
}

void Agent::send_file_data(std::string_view id, std::uint64_t seq, std::string_view bytes) {
  if (!link_ || !link_->is_open()) return;
  if (!v2_) {
    link_->send_text(proto::encode(proto::FileData{std::string(id), seq, std::string(bytes)}));
    return;
  }
  const std::size_t header = proto::file_frame_header_size(id);
  net::WsMessage msg = net::make_message(header + bytes.size(), true);
  char* out = msg.buffer.data() + LWS_PRE;
  proto::write_file_frame_header(id, seq, out);
  std::memcpy(out + header, bytes.data(), bytes.size());
  link_->send(std::move(msg));
}

void Agent::set_reading(bool on) {
  // While the link is up, its queue decides; while it is down, output goes to the rings.
  if (on && link_ && link_->is_open() && link_->queued_bytes() > options_.link_low_water) return;
  reading_paused_ = !on;
  for (auto& [id, s] : sessions_) apply_reading(*s);
}

void Agent::apply_reading(Session& s) {
  // A stopping session drains to EOF whatever the link says.
  if (s.stopping || (!reading_paused_ && !s.flow_paused)) {
    s.pty->start_reading();
  } else {
    s.pty->pause_reading();
  }
}

void Agent::start_session(const proto::ShellStart& m) {
  const std::string id = m.new_session ? m.session_id : "main";
  send(proto::ShellStarting{id});
  if (const auto it = sessions_.find(id); it != sessions_.end() && !it->second->stopping) {
    Session& s = *it->second;
    if (m.cols && m.rows) (void)s.pty->resize({*m.cols, *m.rows});
    if (m.resume_offset) replay(s, *m.resume_offset);
    send(proto::ShellStarted{id});
    return;
  }
  if (sessions_.size() >= options_.max_sessions) {  // stopping shells still hold a process
    spdlog::warn("session refused sid={} limit={}", id, options_.max_sessions);
    send(proto::ShellError{id, "session limit reached (" + std::to_string(options_.max_sessions) +
                                   " shells are open on this agent)"});
    return;
  }
  std::optional<pty::PtySize> size;
  if (m.cols && m.rows) size = pty::PtySize{*m.cols, *m.rows};
  auto session = spawn_shell(id, size);
  if (!session) {
    spdlog::warn("session failed sid={} error={}", id, session.error().message);
    note_error("session " + id + " failed: " + session.error().message);
    send(proto::ShellError{id, session.error().message});
    return;
  }
  Session& s = **session;
  if (!reading_paused_) s.pty->start_reading();
  spdlog::info("session opened sid={} pid={}{}", id, s.pty->pid(), s.kept ? " kept=true" : "");
  sessions_[id] = std::move(session).value();
  send(proto::ShellStarted{id, true});
}

void Agent::open_keeper(bool start) {
  KeeperLink::Handlers h;
  h.on_exit = [this](const std::string& id, uvx::ExitStatus st) {
    const auto it = sessions_.find(id);
    if (it != sessions_.end() && it->second->kept) it->second->pty->child_exited(st);
  };
  h.on_lost = [this] {
    // Its shells are orphans now: their exits cannot be reported, so EOF on each terminal ends
    // its session. New shells go to a new keeper (or are our own children, if none starts).
    for (auto& [id, s] : sessions_) {
      if (!s->kept) continue;
      s->pty->end_at_eof();
      s->orphaned = true;
    }
    note_error("lost the shell keeper");
  };
  auto k = KeeperLink::open(&loop(), reaper_, options_.config.agent_id, options_.handover, start,
                            std::move(h));
  if (!k && k.error().code == Errc::kUnavailable) return;  // nobody kept shells for us
  if (!k) {
    spdlog::warn("shell handover unavailable, shells end with this agent: {}", k.error().message);
    note_error("shell handover unavailable: " + k.error().message);
    keeper_.reset();
    return;
  }
  keeper_ = std::move(k).value();
  // A keeper in a systemd scope holds the session cgroups too, so that a restart of the service
  // (which ends everything in the service's cgroup) leaves them alone.
  const std::string& root = keeper_->cgroup_root();
  if (!root.empty() && options_.session_cgroups && options_.cgroup_root.empty() &&
      (!cgroups_ || cgroups_->root() != root)) {
    open_cgroups(root);
  }
}

Result<std::unique_ptr<Session>> Agent::spawn_shell(const std::string& id,
                                                    std::optional<pty::PtySize> size) {
  const auto on_output = [this](Session* raw) {
    return [this, raw](std::string_view bytes) { send_output(*raw, bytes); };
  };
  const auto on_closed = [this, id](uvx::ExitStatus st) { on_session_closed(id, st); };
  // The keeper first: it decides where the session's cgroup goes.
  if (options_.handover.count() > 0 && (!keeper_ || keeper_->lost())) open_keeper(true);
  std::optional<SessionCgroups::Made> cgroup;
  if (cgroups_) {
    auto made = cgroups_->create(id);
    if (!made) {
      // With limits asked for, a shell without them is refused; else it runs in its process
      // group only, as on a machine without cgroups.
      if (!options_.session_memory_max.empty() || !options_.session_pids_max.empty() ||
          !options_.session_cpu_max.empty()) {
        return Error(made.error().code,
                     "cannot create the session's cgroup: " + made.error().message);
      }
      spdlog::warn("session without a cgroup sid={} error={}", id, made.error().message);
    } else {
      cgroup = std::move(made).value();
    }
  }
  // The cgroup goes when the spawn fails.
  const auto failed = [this, &cgroup](Error e) -> Error {
    if (cgroup) sweep_cgroup(cgroup->path);
    return e;
  };
  if (keeper_ && !keeper_->lost()) {
    auto kept = cgroup ? keeper_->spawn(id, shell_, size, cgroup->path, cgroup->procs.get())
                       : keeper_->spawn(id, shell_, size, "", -1);
    if (!kept) return failed(kept.error());
    if (cgroup) kept->cgroup = cgroup->path;  // the keeper says it only when handing shells over
    return adopt_shell(std::move(kept).value());
  }
  pty::SpawnOptions so;
  so.shell = shell_;
  if (size) so.size = *size;
  if (cgroup) so.cgroup_procs_fd = cgroup->procs.get();
  auto proc = pty::spawn_pty(so);
  if (!proc) return failed(proc.error());
  auto session = std::make_unique<Session>(OutputRing());
  session->id = id;
  if (cgroup) session->cgroup = cgroup->path;
  auto pty = uvx::PtySession::start(&loop(), reaper_, std::move(proc).value(),
                                    {on_output(session.get()), on_closed});
  if (!pty) return pty.error();
  session->pty = std::move(pty).value();
  return session;
}

Result<std::unique_ptr<Session>> Agent::adopt_shell(KeptShell kept) {
  auto session = std::make_unique<Session>(std::move(*kept.ring));
  session->id = kept.id;
  session->kept = true;
  session->cgroup = kept.cgroup;
  Session* raw = session.get();
  auto pty = uvx::PtySession::adopt(
      &loop(), kept.pid, std::move(kept.master),
      {[this, raw](std::string_view bytes) { send_output(*raw, bytes); },
       [this, id = kept.id](uvx::ExitStatus st) { on_session_closed(id, st); }});
  if (!pty) return pty.error();
  session->pty = std::move(pty).value();
  if (kept.exited) session->pty->child_exited(*kept.exited);

  return session;
}

void Agent::open_cgroups(const std::string& root) {
  if (!options_.session_cgroups) {
    spdlog::info("session cgroups off; sessions are isolated by process group");
    return;
  }
  CgroupLimits limits{options_.session_memory_max, options_.session_pids_max,
                      options_.session_cpu_max};
  auto c = SessionCgroups::open(root, limits);
  if (!c && limits.any()) {
    // The limits cannot be applied here; cgroup.kill on close still can.
    spdlog::warn("session limits not applied: {}", c.error().message);
    note_error("session limits not applied: " + c.error().message);
    c = SessionCgroups::open(root, {});
  }
  if (!c) {
    spdlog::info("sessions are isolated by process group: {}", c.error().message);
    return;
  }
  spdlog::info("session cgroups under {}{}", c->root(), limits.any() && c ? " with limits" : "");
  cgroups_ = std::move(c).value();
}

void Agent::sweep_cgroup(std::string path) {
  // First SIGHUP (and SIGCONT) to everything left, as a hang-up would, so a program can run its
  // clean-up (a lock file it holds, say); what is still there after kSweepGraceTicks gets
  // cgroup.kill. The cgroup is removed once empty, which takes a moment after a kill: retry every
  // 100 ms for up to 10 s.
  if (remove_cgroup(path)) return;  // nothing left in it
  signal_cgroup(path, SIGHUP);
  signal_cgroup(path, SIGCONT);
  sweeping_.emplace_back(std::move(path), 0);
  if (sweeping_.size() > 1) return;  // the timer runs already
  sweep_timer_.start(milliseconds(100), milliseconds(100), [this] {
    std::erase_if(sweeping_, [](auto& entry) {
      auto& [p, ticks] = entry;
      if (++ticks >= kSweepGraceTicks) (void)kill_cgroup(p);
      if (remove_cgroup(p)) return true;
      if (ticks < kSweepLastTick) return false;
      spdlog::warn("cgroup not removed, processes remain path={}", p);
      return true;
    });
    if (sweeping_.empty()) sweep_timer_.stop();
  });
}

void Agent::end_shell(Session& s) {
  s.stopping = true;
  if (s.orphaned) {
    // No keeper to ask. The shell is still ours to end: EOF on its terminal, which would close
    // this session, has not come, so its pid has not been reaped and reused.
    (void)::kill(-s.pty->pid(), SIGHUP);
    (void)::kill(-s.pty->pid(), SIGCONT);
  } else if (s.kept && keeper_) {
    keeper_->terminate(s.id, options_.stop_grace);
  } else {
    s.pty->terminate(options_.stop_grace);
  }
  s.pty->start_reading();  // drain to EOF even if the link is paused
}

void Agent::replay(Session& s, std::uint64_t from) {
  OutputRing::Slice slice = s.ring.read_from(from);
  if (slice.from != from) {
    spdlog::info("replay gap sid={} asked={} oldest={}", s.id, from, slice.from);
  }
  std::string_view rest = slice.bytes;
  std::uint64_t offset = slice.from;
  do {  // at least one message, so the server learns the offset even when nothing is missing
    const std::string_view piece = rest.substr(0, kReplayChunk);
    send(proto::ShellReplay{s.id, offset, std::string(piece)});
    offset += piece.size();
    rest.remove_prefix(piece.size());
  } while (!rest.empty());
  s.synced = true;  // live output goes on from the replay's end
}

void Agent::stop_session(const std::string& id) {
  const auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second->stopping) return;
  end_shell(*it->second);
}

void Agent::on_session_closed(const std::string& id, uvx::ExitStatus st) {
  proto::ShellStopped stopped{id, std::nullopt, std::nullopt};
  if (st.term_signal != 0) {
    stopped.signal = st.term_signal;
  } else {
    stopped.exit_code = st.exit_code;
  }
  const auto it = sessions_.find(id);
  const std::uint64_t bytes = it != sessions_.end() ? it->second->ring.end_offset() : 0;
  spdlog::info("session closed sid={} exit={} signal={} bytes_out={}", id, st.exit_code,
               st.term_signal, bytes);
  send(stopped);
  if (it != sessions_.end()) {
    // Whatever the shell left running (a nohup'ed job, a daemon) ends with the session.
    if (!it->second->cgroup.empty()) sweep_cgroup(it->second->cgroup);
    if (it->second->kept && !it->second->orphaned && keeper_) keeper_->release(id);
    sessions_.erase(it);  // destroys the PtySession from its callback
  }
  if (stopping_) maybe_finish_shutdown();
}

void Agent::run_exec(const proto::Exec& m) {
  const std::uint64_t key = next_exec_++;
  const auto timeout = std::chrono::seconds(m.timeout_s.value_or(60));
  auto runner = std::make_unique<ExecRunner>(
      &loop(), shell_, m.command, timeout, options_.exec_output_limit,
      [this, key, exec_id = m.exec_id](proto::ExecResult r) {
        spdlog::info("exec finished exit={} bytes_out={}", r.exit_code, r.output.size());
        r.exec_id = exec_id;  // lets the server match results of concurrent commands
        send(r);
        // The runner is on the stack below this callback: free it on the next loop turn.
        const auto it = execs_.find(key);
        if (it == execs_.end()) return;
        finished_execs_.push_back(std::move(it->second));
        execs_.erase(it);
        cleanup_timer_.start(milliseconds(0), [this] { finished_execs_.clear(); });
      });
  ExecRunner* raw = runner.get();
  execs_[key] = std::move(runner);
  spdlog::info("exec started bytes={}", m.command.size());
  raw->start();
}

void Agent::read_disk(std::function<void(Result<sysinfo::DiskInfo>)> done) {
  auto* work = new DiskWork();  // NOLINT(cppcoreguidelines-owning-memory): freed in after_work
  work->path = options_.disk_path;
  work->done = std::move(done);
  work->req.data = work;
  ++pending_disk_;
  uv_queue_work(
      &loop(), &work->req,
      [](uv_work_t* r) {
        auto* w = static_cast<DiskWork*>(r->data);
        w->result = sysinfo::read_disk(w->path);
      },
      [](uv_work_t* r, int) {
        std::unique_ptr<DiskWork> w(static_cast<DiskWork*>(r->data));
        w->done(std::move(w->result));
      });
}

void Agent::send_system_info() {
  read_disk([this](Result<sysinfo::DiskInfo> disk) {
    --pending_disk_;
    if (stopping_) {
      maybe_finish_shutdown();
      return;
    }
    proto::SystemInfo info;
    const auto kernel = sysinfo::read_kernel();
    info.hostname = sysinfo::read_hostname();
    info.num_cpu = sysinfo::read_num_cpu();
    if (auto mem = sysinfo::read_meminfo()) info.memory = {mem->total, mem->available, mem->free};
    if (disk) info.disk = {disk->total, disk->available, disk->free};
    info.region = sysinfo::region_from(options_.config.region, env);
    info.os = "linux";
    info.arch = sysinfo::go_arch(kernel.machine);
    info.distro = sysinfo::read_os_release().distro();
    info.kernel = kernel.release;
    info.agent_version = REXEC_VERSION;
    info.shell = shell_;
    send(info);
    send_stats();
  });
}

void Agent::send_stats() {
  read_disk([this](Result<sysinfo::DiskInfo> disk) {
    --pending_disk_;
    if (stopping_) {
      maybe_finish_shutdown();
      return;
    }
    proto::Stats s;
    if (auto cpu = sysinfo::read_cpu_times()) s.cpu_percent = cpu_.sample(*cpu);
    if (auto mem = sysinfo::read_meminfo()) {
      s.memory = mem->total - mem->available;
      s.memory_limit = sysinfo::read_memory_limit().value_or(mem->total);
    }
    if (disk) {
      s.disk_usage = disk->total - disk->free;
      s.disk_limit = disk->total;
    }
    if (auto l = sysinfo::read_loadavg()) {
      s.load1 = l->load1;
      s.load5 = l->load5;
      s.load15 = l->load15;
    }
    if (auto u = sysinfo::read_uptime()) s.uptime_s = static_cast<std::uint64_t>(*u);
    s.sessions = static_cast<std::uint32_t>(sessions_.size());
    // Ours: only on v2 links, so a v1 server gets v1's stats exactly.
    if (v2_) s.isolation = cgroups_ ? "cgroup" : "process_group";
    for (const auto& [id, session] : sessions_) {
      if (!v2_) break;
      if (session->cgroup.empty()) continue;
      if (auto u = read_cgroup_usage(session->cgroup)) {
        s.session_usage.push_back({id, u->cpu_usec, u->memory, u->pids});
      }
    }
    // Between bursts of output (nothing queued before this message): hand the heap's free pages
    // back (see run_agent's mallopt).
    const bool idle = link_ && link_->queued_bytes() == 0;
    send(s);
    if (idle) (void)malloc_trim(0);
  });
}

void Agent::note_error(std::string what) {
  last_error_ = std::move(what);
  last_error_wall_ = wall_seconds();
}

nlohmann::json Agent::status() const {
  const bool up = link_ && link_->is_open();
  nlohmann::json sessions = nlohmann::json::array();
  for (const auto& [id, s] : sessions_) {
    sessions.push_back({{"id", id}, {"pid", s->pty->pid()}, {"kept", s->kept}});
  }
  nlohmann::json j{{"pid", ::getpid()},
                   {"version", REXEC_VERSION},
                   {"agent_id", options_.config.agent_id},
                   {"server", options_.config.server},
                   {"started_at", started_wall_},
                   {"state", stopping_ ? "stopping" : (up ? "connected" : "connecting")},
                   {"sessions", sessions},
                   {"session_cgroups", cgroups_ ? cgroups_->root() : ""}};
  if (up) {
    j["connected_since"] = connected_wall_;
    j["protocol"] = v2_ ? "v2" : "v1";
  }
  if (!last_error_.empty()) j["last_error"] = {{"message", last_error_}, {"at", last_error_wall_}};
  nlohmann::json h{{"seconds", options_.handover.count() / 1000}, {"taken_over", taken_over_}};
  if (options_.handover.count() == 0) {
    h["keeper"] = "off";
  } else if (!keeper_) {
    h["keeper"] = "none";  // started with the first shell
  } else if (keeper_->lost()) {
    h["keeper"] = "lost";
  } else {
    h["keeper"] = "attached";
    h["keeper_pid"] = keeper_->keeper_pid();
  }
  j["handover"] = h;
  return j;
}

void Agent::begin_shutdown(int exit_code) {
  if (stopping_) return;
  stopping_ = true;
  exit_code_ = exit_code;
  reconnect_.stop();
  stats_timer_.stop();
  ping_timer_.stop();
  idle_timer_.stop();
  if (keeper_ && !keeper_->lost()) {
    // Handover: the shells stay with the keeper, their output in the PTYs and the rings; the
    // next agent takes them over. Ours are only descriptors (an adopted session never signals).
    spdlog::info("leaving shells={} to the shell keeper for handover_ms={}", sessions_.size(),
                 options_.handover.count());
    std::erase_if(sessions_,
                  [](const auto& kv) { return kv.second->kept && !kv.second->orphaned; });
    keeper_.reset();
  }
  for (auto& [id, s] : sessions_) end_shell(*s);
  execs_.clear();
  files_->cancel_all();
  // Bound the whole shutdown: SIGKILL happens at stop_grace; allow one more second to reap.
  shutdown_timer_.start(options_.stop_grace + milliseconds(1000), [this] {
    spdlog::warn("shutdown timed out, closing with sessions_left={}", sessions_.size());
    sessions_.clear();
    pending_disk_ = 0;
    maybe_finish_shutdown();
  });
  maybe_finish_shutdown();
}

void Agent::maybe_finish_shutdown() {
  if (!stopping_ || !sessions_.empty() || pending_disk_ > 0) return;
  if (link_ && link_->is_open()) {
    link_->close(1001, "agent shutting down");
    return;  // on_close → schedule_reconnect → here again
  }
  shutdown_timer_.stop();
  reconnect_.stop();
  for (auto& [path, ticks] : sweeping_) {
    (void)kill_cgroup(path);  // no time left for a grace
    if (!remove_cgroup(path)) spdlog::warn("cgroup not removed at exit path={}", path);
  }
  sweeping_.clear();
  sweep_timer_.stop();
  link_.reset();
  http_.reset();
  status_.reset();
  context_.reset();  // lws closes its handles asynchronously on our loop
  for (auto& s : signals_) s.reset();
  signals_.clear();
  spdlog::info("agent stopped");
}

int run_agent(const RunOptions& options) {
  // glibc malloc, set for an agent that idles small and streams without churn:
  // - one arena: libuv's pool threads (disk stats, file transfers) would otherwise each get an
  //   arena of their own, with pages of their own;
  // - fixed thresholds: a 64 KiB output frame comes from the heap, and the freed top of the heap
  //   stays until the link is idle (send_stats trims it then). With glibc's defaults a terminal
  //   flood gave back and took again the heap's top on nearly every frame (brk, page faults,
  //   TLB flushes: 15 % of the agent's CPU, perf).
  (void)mallopt(M_ARENA_MAX, 1);
  (void)mallopt(M_MMAP_THRESHOLD, 1 << 20);
  (void)mallopt(M_TRIM_THRESHOLD, 2 << 20);
  REXEC_CHECK(uv_loop_init(&Agent::loop()) == 0);
  int rc = 0;
  {
    Agent agent(options);
    rc = agent.run();
  }
  // The Agent's destructor closed its remaining handles: run their close callbacks, then the
  // loop must be empty (STYLE.md shutdown order).
  uv_run(&Agent::loop(), UV_RUN_DEFAULT);
  REXEC_CHECK(uv_loop_close(&Agent::loop()) == 0);
  return rc;
}

}  // namespace rx::agent
