// SPDX-License-Identifier: MIT
#include "terminal.h"

#include "rexec/common/check.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/url.h"
#include "rexec/net/ws_client.h"
#include "rexec/proto/message_codec.h"
#include "rexec/uvx/uv_handle.h"

#include <nlohmann/json.hpp>

#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <random>

namespace rx::client {

namespace {

std::string random_conn_id() {
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string id = "cli-";
  for (int i = 0; i < 12; ++i) id += kChars[rd() % (sizeof kChars - 1)];
  return id;
}

// Restores the terminal mode it saved, on destruction (every return path, exceptions too).
class RawMode {
 public:
  RawMode() {
    if (::isatty(STDIN_FILENO) == 0 || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }

  ~RawMode() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;
  RawMode(RawMode&&) = delete;
  RawMode& operator=(RawMode&&) = delete;

 private:
  termios saved_{};
  bool active_ = false;
};

void write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::pair<int, int>> window_size() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return std::nullopt;
  return std::make_pair(static_cast<int>(ws.ws_col), static_cast<int>(ws.ws_row));
}

// A session on one loop: the socket plus the stdin reader and SIGWINCH watcher.
class Session {
 public:
  Session(const Target& t, bool split) : target_(t), split_(split) {}

  int run() {
    REXEC_CHECK(uv_loop_init(&loop_) == 0);
    int rc = run_on_loop();
    uv_run(&loop_, UV_RUN_DEFAULT);
    REXEC_CHECK(uv_loop_close(&loop_) == 0);
    return rc;
  }

 private:
  int run_on_loop() {
    net::ContextOptions co;
    co.loop = &loop_;
    auto ctx = net::LwsContext::create(co);
    if (!ctx) {
      std::fprintf(stderr, "rexec: %s\n", ctx.error().message.c_str());
      return 1;
    }
    context_ = std::move(ctx).value();
    auto base = net::Url::parse(target_.server);
    if (!base) {
      std::fprintf(stderr, "rexec: bad server URL: %s\n", base.error().message.c_str());
      return 1;
    }
    std::string path = "/ws/agent/" + target_.agent_id + "/terminal?id=" + random_conn_id();
    if (split_) path += "&newSession=true";
    net::WsConnectOptions o;
    o.url = base->with("ws", path);
    o.subprotocols = "rexec.v2, rexec.v1";
    o.headers = {{"authorization", "Bearer " + target_.token}};
    o.max_message_bytes = 8U << 20U;
    net::WsClient::Handlers h;
    h.on_open = [this](std::string_view p) { on_open(p); };
    h.on_message = [this](std::string_view m, bool b) { on_message(m, b); };
    h.on_close = [this](const net::WsCloseInfo& i) { on_close(i); };
    ws_ = std::make_unique<net::WsClient>(*context_, std::move(h));
    if (auto st = ws_->connect(o); !st) {
      std::fprintf(stderr, "rexec: %s\n", st.error().message.c_str());
      return 1;
    }
    uv_run(&loop_, UV_RUN_DEFAULT);
    return exit_code_;
  }

  void on_open(std::string_view subprotocol) {
    v2_ = subprotocol == "rexec.v2";
    raw_.emplace();
    send_resize();
    uv_stream_t* in = nullptr;
    if (::isatty(STDIN_FILENO) != 0) {
      // uv_tty reopens the terminal, so O_NONBLOCK never leaks into the parent shell's tty.
      auto* tty = new uv_tty_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
      uv_tty_init(&loop_, tty, STDIN_FILENO, 1);
      stdin_tty_ = uvx::UvHandle<uv_tty_t>(tty);
      in = reinterpret_cast<uv_stream_t*>(tty);
    } else {
      auto* pipe = new uv_pipe_t();  // NOLINT(cppcoreguidelines-owning-memory)
      uv_pipe_init(&loop_, pipe, 0);
      uv_pipe_open(pipe, STDIN_FILENO);
      stdin_pipe_ = uvx::UvHandle<uv_pipe_t>(pipe);
      in = reinterpret_cast<uv_stream_t*>(pipe);
    }
    in->data = this;
    uv_read_start(
        in,
        [](uv_handle_t*, size_t, uv_buf_t* buf) {
          static char storage[16384];
          buf->base = storage;
          buf->len = sizeof storage;
        },
        [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
          auto* self = static_cast<Session*>(s->data);
          if (self == nullptr) return;
          if (n < 0) {
            self->finish(0);
            return;
          }
          self->send_input(std::string_view(buf->base, static_cast<std::size_t>(n)));
        });
    auto* winch = new uv_signal_t();  // NOLINT(cppcoreguidelines-owning-memory)
    uv_signal_init(&loop_, winch);
    winch_ = uvx::UvHandle<uv_signal_t>(winch);
    winch->data = this;
    uv_signal_start(
        winch,
        [](uv_signal_t* s, int) {
          if (auto* self = static_cast<Session*>(s->data)) self->send_resize();
        },
        SIGWINCH);
  }

  void send_input(std::string_view bytes) {
    if (bytes.empty()) return;
    if (v2_) {
      ws_->send_binary(bytes);
    } else {
      ws_->send_text(proto::encode(proto::UserMessage(proto::Input{std::string(bytes)})));
    }
  }

  void send_resize() {
    if (auto size = window_size()) {
      ws_->send_text(proto::encode(proto::UserMessage(proto::Resize{
          static_cast<std::uint16_t>(size->first), static_cast<std::uint16_t>(size->second)})));
    }
  }

  void on_message(std::string_view payload, bool binary) {
    if (binary) {
      write_all(STDOUT_FILENO, payload);
      return;
    }
    auto m = proto::decode_user_message(payload, proto::DecodeLimits{8U << 20U});
    if (!m) return;
    if (auto* out = std::get_if<proto::Output>(&*m)) {
      write_all(STDOUT_FILENO, out->data);
    } else if (auto* stopped = std::get_if<proto::ShellStopped>(&*m)) {
      finish(stopped->exit_code.value_or(128 + stopped->signal.value_or(0)));
    } else if (auto* err = std::get_if<proto::ShellError>(&*m)) {
      std::fprintf(stderr, "\r\nrexec: shell error: %s\r\n", err->error.c_str());
      finish(1);
    } else if (std::holds_alternative<proto::AgentDisconnected>(*m)) {
      std::fprintf(stderr, "\r\n[rexec: agent disconnected, waiting for it to return]\r\n");
    } else if (std::holds_alternative<proto::AgentConnected>(*m)) {
      std::fprintf(stderr, "\r\n[rexec: agent reconnected]\r\n");
    }
  }

  void on_close(const net::WsCloseInfo& info) {
    if (!info.was_open) {
      std::fprintf(stderr, "rexec: cannot open the terminal: %s%s\n", info.reason.c_str(),
                   info.http_status != 0
                       ? (" (HTTP " + std::to_string(info.http_status) + ")").c_str()
                       : "");
      exit_code_ = 1;
    } else if (!finished_) {
      raw_.reset();
      std::fprintf(stderr, "\r\nrexec: connection closed%s%s\n", info.reason.empty() ? "" : ": ",
                   info.reason.c_str());
      exit_code_ = info.close_code == 1000 ? 0 : 1;
    }
    finished_ = true;
    teardown();
  }

  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    exit_code_ = code;
    raw_.reset();
    if (ws_ && ws_->is_open()) {
      ws_->close(1000, "bye");
      return;  // on_close tears down
    }
    teardown();
  }

  void teardown() {
    raw_.reset();
    stdin_tty_.reset();
    stdin_pipe_.reset();
    winch_.reset();
    // Destroy the context from a fresh loop turn: we may be inside one of its callbacks.
    auto* idle = new uv_idle_t();  // NOLINT(cppcoreguidelines-owning-memory)
    uv_idle_init(&loop_, idle);
    idle->data = this;
    uv_idle_start(idle, [](uv_idle_t* h) {
      auto* self = static_cast<Session*>(h->data);
      self->ws_.reset();
      self->context_.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(h),
               [](uv_handle_t* x) { delete reinterpret_cast<uv_idle_t*>(x); });  // NOLINT
    });
  }

  Target target_;
  bool split_;
  uv_loop_t loop_{};
  std::unique_ptr<net::LwsContext> context_;
  std::unique_ptr<net::WsClient> ws_;
  uvx::UvHandle<uv_tty_t> stdin_tty_;
  uvx::UvHandle<uv_pipe_t> stdin_pipe_;
  uvx::UvHandle<uv_signal_t> winch_;
  std::optional<RawMode> raw_;
  bool v2_ = false;
  bool finished_ = false;
  int exit_code_ = 0;
};

}  // namespace

int run_terminal(const Target& target, bool split) { return Session(target, split).run(); }

}  // namespace rx::client
