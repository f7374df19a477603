// SPDX-License-Identifier: MIT
// rexec-rolling-driver: the viewers of tests/deploy/nginx_rolling_test.sh. Through one public URL
// (nginx), one viewer per agent opens the agent's main terminal and has its shell print numbered
// lines at a steady rate; a viewer whose socket drops dials again with `&offset=<bytes shown>`
// (docs/protocol.md, "Offsets, replay and gaps"). At the end it prints one JSON line: whether
// every viewer got every line exactly once and in order, and how long output took to come back.
#include "rexec/net/lws_context.h"
#include "rexec/net/url.h"
#include "rexec/net/ws_client.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kUsage =
    "usage: rexec-rolling-driver --url https://HOST:PORT --ca-file PEM --token-file FILE\n"
    "                            --agents FILE --stop-file PATH --ready-file PATH\n"
    "                            [--interval-ms 50] [--max-seconds 900]\n"
    "  --token-file holds the user's API token; --agents one agent id a line, each of which\n"
    "  gets one viewer on its main terminal.\n"
    "  The shells stop printing when PATH (--stop-file) exists; the driver then waits for\n"
    "  every viewer's last line and prints its figures as one JSON line.\n";

struct Options {
  std::string url;
  std::string ca_file;
  std::string token;  // read from --token-file, so that it is not on a command line
  std::string agents_file;
  std::string stop_file;
  std::string ready_file;
  int interval_ms = 50;
  int max_seconds = 900;
};

// A silence between two lines longer than this is an interruption (20 lines at the default
// rate): reported with its length, whatever caused it.
constexpr milliseconds kStall{1000};
// Once the stop file exists, how long the viewers get to receive their shell's last line.
constexpr milliseconds kFinishWait{30000};
// Reconnect delays: at once, then doubling from 100 ms up to 1 s (a browser tab retries sooner
// than an agent; 1 s keeps a refused viewer from spinning).
constexpr milliseconds kRetryFirst{100};
constexpr milliseconds kRetryCap{1000};

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// One line on stderr, after the wall-clock time (to read beside the servers' logs).
__attribute__((format(printf, 1, 2))) void note(const char* format, ...) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  const auto ms = std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::fprintf(stderr, "%02d:%02d:%02d.%03lld ", tm.tm_hour, tm.tm_min, tm.tm_sec,
               static_cast<long long>(ms));
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

// One viewer: its socket, the bytes it has shown, and the check of its lines.
class Viewer {
 public:
  Viewer(rx::net::LwsContext& context, uv_loop_t* loop, const Options& options, int index,
         std::string agent_id)
      : context_(context),
        options_(options),
        agent_id_(std::move(agent_id)),
        conn_id_("roll" + std::to_string(index)),
        retry_(loop) {}

  void dial() {
    rx::net::WsConnectOptions o;
    auto base = rx::net::Url::parse(options_.url);
    if (!base) throw std::runtime_error("bad --url " + options_.url);
    std::string path = "/ws/agent/" + agent_id_ + "/terminal?id=" + conn_id_;
    if (has_position_) path += "&offset=" + std::to_string(pos_);
    o.url = base->with("ws", path);
    o.subprotocols = "rexec.v2";
    o.headers.emplace_back("authorization", "Bearer " + options_.token);
    o.max_message_bytes = 8U << 20U;
    rx::net::WsClient::Handlers h;
    h.on_message = [this](std::string_view payload, bool binary) { on_message(payload, binary); };
    h.on_close = [this](const rx::net::WsCloseInfo& info) { on_close(info); };
    ws_ = std::make_unique<rx::net::WsClient>(context_, std::move(h));
    if (!ws_->connect(o)) schedule_dial();
  }

  // The driver is finishing: the socket closes and is not dialled again.
  void stop() {
    stopping_ = true;
    retry_.stop();
    if (ws_ && ws_->is_open()) ws_->close(1000, "done");
  }

  [[nodiscard]] bool streaming() const { return next_ >= 1; }

  [[nodiscard]] bool finished() const { return end_ >= 0; }

  [[nodiscard]] bool closed() const { return !ws_ || ws_->is_idle(); }

  std::int64_t lines = 0;           // numbered lines received in order
  std::int64_t duplicates = 0;      // numbered lines received again
  std::int64_t missing = 0;         // numbered lines never received
  std::int64_t gaps = 0;            // gap messages
  std::int64_t offset_jumps = 0;    // offset messages that did not continue the bytes shown
  std::int64_t shell_restarts = 0;  // shell_stopped: the shell under the terminal died
  std::int64_t drops = 0;           // the socket closed under the viewer
  std::vector<double> resume_ms;    // per drop: socket lost until the first output after it
  std::vector<double> stall_ms;     // silences between two lines longer than kStall

 private:
  void on_message(std::string_view payload, bool binary) {
    if (binary) {
      if (payload.empty()) return;
      if (resuming_) {
        resume_ms.push_back(ms_between(lost_at_, Clock::now()));
        note("viewer %s: resumed after %.0f ms", conn_id_.c_str(), resume_ms.back());
        resuming_ = false;
        attempts_ = 0;
      }
      pos_ += payload.size();
      has_position_ = true;
      feed(payload);
      return;
    }
    const auto j = nlohmann::json::parse(payload, nullptr, false);
    if (!j.is_object()) return;
    const std::string type = j.value("type", "");
    if (type == "shell_started" && !command_sent_) {
      command_sent_ = true;
      send_command();
    } else if (type == "offset" && j["data"].is_number_unsigned()) {
      const auto at = j["data"].get<std::uint64_t>();
      if (has_position_ && at != pos_) ++offset_jumps;
      pos_ = at;
      has_position_ = true;
    } else if (type == "gap") {
      ++gaps;
    } else if (type == "shell_stopped") {
      ++shell_restarts;
    } else if (type == "error") {
      note("viewer %s: error %s", conn_id_.c_str(), j.dump().c_str());
    }
  }

  void on_close(const rx::net::WsCloseInfo& info) {
    if (stopping_) return;
    if (info.was_open) ++drops;
    if (!resuming_ && command_sent_) {
      resuming_ = true;
      lost_at_ = Clock::now();
    }
    note("viewer %s: closed open=%d http=%d code=%d reason=%s", conn_id_.c_str(),
         info.was_open ? 1 : 0, info.http_status, info.close_code, info.reason.c_str());
    schedule_dial();
  }

  void schedule_dial() {
    milliseconds delay{0};
    if (attempts_ > 0) delay = std::min(kRetryCap, kRetryFirst * (1 << std::min(attempts_ - 1, 4)));
    ++attempts_;
    retry_.start(delay, [this] {
      if (!stopping_) dial();
    });
  }

  // The shell prints "L <n>" every interval until the stop file exists, then "E <count>". The
  // loop runs in a bash of its own whatever the login shell is, sleeps without a fork (`read -t`
  // on a pipe nobody writes), and is bounded in count as well as by the stop file.
  void send_command() {
    const std::int64_t max_lines =
        static_cast<std::int64_t>(options_.max_seconds) * 1000 / options_.interval_ms;
    const std::string interval = std::to_string(options_.interval_ms / 1000) + "." +
                                 std::to_string(1000 + options_.interval_ms % 1000).substr(1);
    const std::string script = "exec 9<> <(:); i=0; while [ ! -e " + options_.stop_file +
                               " ] && [ $i -lt " + std::to_string(max_lines) +
                               " ]; do echo \"L $i\"; i=$((i+1)); read -t " + interval +
                               " -u 9; done; echo \"E $i\"";
    const std::string line = "bash --norc --noprofile -c '" + script + "'\n";
    ws_->send_text(nlohmann::json({{"type", "input"}, {"data", line}}).dump());
  }

  // Splits the byte stream into lines and checks the numbered ones.
  void feed(std::string_view bytes) {
    for (const char c : bytes) {
      if (c == '\r') continue;
      if (c != '\n') {
        if (partial_.size() < 256) partial_.push_back(c);
        continue;
      }
      on_line(partial_);
      partial_.clear();
    }
  }

  // `text` without CSI sequences: bash switches bracketed paste off (ESC [ ? 2004 l) right
  // before a command's first output, on the same line.
  static std::string without_csi(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\x1b' && i + 1 < text.size() && text[i + 1] == '[') {
        i += 2;
        while (i < text.size() &&
               !((text[i] >= 'A' && text[i] <= 'Z') || (text[i] >= 'a' && text[i] <= 'z'))) {
          ++i;
        }
        continue;
      }
      out.push_back(text[i]);
    }
    return out;
  }

  void on_line(const std::string& raw) {
    const std::string line = without_csi(raw);
    if (line.size() < 3 || line[1] != ' ' || (line[0] != 'L' && line[0] != 'E')) return;
    if (line.find_first_not_of("0123456789", 2) != std::string::npos) return;
    const std::int64_t n = std::stoll(line.substr(2));
    if (line[0] == 'E') {
      if (n > next_) {
        missing += n - next_;
        note("viewer %s: lines %lld to %lld missing before the end", conn_id_.c_str(),
             static_cast<long long>(next_), static_cast<long long>(n - 1));
      }
      end_ = n;
      return;
    }
    const auto now = Clock::now();
    if (n < next_) {
      ++duplicates;
      note("viewer %s: line %lld again", conn_id_.c_str(), static_cast<long long>(n));
      return;
    }
    if (n > next_) {
      missing += n - next_;
      note("viewer %s: lines %lld to %lld missing", conn_id_.c_str(), static_cast<long long>(next_),
           static_cast<long long>(n - 1));
    }
    if (next_ > 0 && now - last_line_at_ > kStall) {
      stall_ms.push_back(ms_between(last_line_at_, now));
      note("viewer %s: %.0f ms without a line before line %lld", conn_id_.c_str(), stall_ms.back(),
           static_cast<long long>(n));
    }
    next_ = n + 1;
    last_line_at_ = now;
    ++lines;
  }

  rx::net::LwsContext& context_;
  const Options& options_;
  std::string agent_id_;
  std::string conn_id_;
  rx::uvx::Timer retry_;
  std::unique_ptr<rx::net::WsClient> ws_;
  std::uint64_t pos_ = 0;  // terminal bytes shown: the next dial's &offset=
  bool has_position_ = false;
  bool command_sent_ = false;
  bool stopping_ = false;
  bool resuming_ = false;
  Clock::time_point lost_at_;
  int attempts_ = 0;
  std::string partial_;
  std::int64_t next_ = 0;  // the line number expected next
  std::int64_t end_ = -1;  // the count in the shell's "E" line, once received
  Clock::time_point last_line_at_;
};

nlohmann::json percentiles(std::vector<double> v) {
  if (v.empty()) return {{"count", 0}, {"p50", 0}, {"p99", 0}, {"max", 0}};
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p % of the values at or below it.
  const auto rank = [&v](double p) {
    const auto k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return std::round(v[std::max<std::size_t>(k, 1) - 1]);
  };
  return {{"count", v.size()}, {"p50", rank(50)}, {"p99", rank(99)}, {"max", std::round(v.back())}};
}

bool exists(const std::string& path) {
  uv_fs_t req;
  const int rc = uv_fs_stat(nullptr, &req, path.c_str(), nullptr);
  uv_fs_req_cleanup(&req);
  return rc == 0;
}

int run(const Options& o) {
  std::vector<std::string> agents;
  std::ifstream in(o.agents_file);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) agents.push_back(line);
  }
  if (agents.empty()) throw std::runtime_error("no agent ids in " + o.agents_file);

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) throw std::runtime_error("uv_loop_init");
  int rc = 0;
  {
    rx::net::ContextOptions co;
    co.loop = &loop;
    co.ca_file = o.ca_file;
    auto context = rx::net::LwsContext::create(co);
    if (!context) throw std::runtime_error(context.error().to_string());
    std::vector<std::unique_ptr<Viewer>> viewers;
    for (std::size_t i = 0; i < agents.size(); ++i) {
      viewers.push_back(
          std::make_unique<Viewer>(**context, &loop, o, static_cast<int>(i), agents[i]));
    }
    // The viewers dial 20 ms apart, not all in the same instant.
    rx::uvx::Timer start(&loop);
    std::size_t dialled = 0;
    start.start(milliseconds(0), milliseconds(20), [&] {
      if (dialled < viewers.size()) viewers[dialled++]->dial();
      if (dialled == viewers.size()) start.stop();
    });

    const auto began = Clock::now();
    const auto give_up_at = began + std::chrono::seconds(o.max_seconds);
    bool ready = false;
    std::optional<Clock::time_point> finish_by;  // set once the stop file exists
    std::optional<Clock::time_point> closed_by;  // set once the viewers are told to stop
    rx::uvx::Timer tick(&loop);
    tick.start(milliseconds(100), milliseconds(100), [&] {
      const auto all = [&](auto pred) {
        return std::all_of(viewers.begin(), viewers.end(), [&](auto& v) { return pred(*v); });
      };
      const auto now = Clock::now();
      if (!ready && all([](const Viewer& v) { return v.streaming(); })) {
        ready = true;
        std::ofstream(o.ready_file) << "ready\n";
        note("driver: %zu viewers streaming after %.0f ms", viewers.size(), ms_between(began, now));
      }
      if (!finish_by && exists(o.stop_file)) finish_by = now + kFinishWait;
      const bool finished = all([](const Viewer& v) { return v.finished(); });
      if (!closed_by && ((finish_by && (finished || now > *finish_by)) || now > give_up_at)) {
        closed_by = now + std::chrono::seconds(5);
        for (auto& v : viewers) v->stop();
      }
      if (closed_by && (all([](const Viewer& v) { return v.closed(); }) || now > *closed_by)) {
        tick.stop();
        uv_stop(&loop);
      }
    });
    uv_run(&loop, UV_RUN_DEFAULT);

    nlohmann::json out;
    std::int64_t lines = 0;
    std::int64_t duplicates = 0;
    std::int64_t missing = 0;
    std::int64_t gaps = 0;
    std::int64_t jumps = 0;
    std::int64_t restarts = 0;
    std::int64_t drops = 0;
    std::int64_t unfinished = 0;
    std::vector<double> resumes;
    std::vector<double> stalls;
    for (const auto& v : viewers) {
      lines += v->lines;
      duplicates += v->duplicates;
      missing += v->missing;
      gaps += v->gaps;
      jumps += v->offset_jumps;
      restarts += v->shell_restarts;
      drops += v->drops;
      if (!v->finished()) ++unfinished;
      resumes.insert(resumes.end(), v->resume_ms.begin(), v->resume_ms.end());
      stalls.insert(stalls.end(), v->stall_ms.begin(), v->stall_ms.end());
    }
    out["viewers"] = viewers.size();
    out["ready"] = ready;
    out["lines"] = lines;
    out["duplicates"] = duplicates;
    out["missing"] = missing;
    out["gaps"] = gaps;
    out["offset_jumps"] = jumps;
    out["shell_restarts"] = restarts;
    out["unfinished"] = unfinished;
    out["drops"] = drops;
    out["resume_ms"] = percentiles(resumes);
    out["stall_ms"] = percentiles(stalls);
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);

    viewers.clear();
    start.stop();
    context->reset();
  }
  for (int i = 0; i < 1000 && uv_run(&loop, UV_RUN_NOWAIT) != 0; ++i) {
  }
  if (uv_loop_close(&loop) != 0) rc = 1;
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  // A handful of options, parsed by hand as in rexec-bench.
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || i + 1 >= argc) {
        std::fputs(kUsage, arg == "--help" ? stdout : stderr);
        return arg == "--help" ? 0 : 2;
      }
      const std::string value = argv[++i];
      if (arg == "--url") {
        o.url = value;
      } else if (arg == "--ca-file") {
        o.ca_file = value;
      } else if (arg == "--token-file") {
        std::ifstream f(value);
        std::getline(f, o.token);
      } else if (arg == "--agents") {
        o.agents_file = value;
      } else if (arg == "--stop-file") {
        o.stop_file = value;
      } else if (arg == "--ready-file") {
        o.ready_file = value;
      } else if (arg == "--interval-ms") {
        o.interval_ms = std::stoi(value);
      } else if (arg == "--max-seconds") {
        o.max_seconds = std::stoi(value);
      } else {
        std::fputs(kUsage, stderr);
        return 2;
      }
    }
  } catch (const std::exception&) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (o.url.empty() || o.token.empty() || o.agents_file.empty() || o.stop_file.empty() ||
      o.ready_file.empty() || o.interval_ms < 1 || o.max_seconds < 1) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    note("rexec-rolling-driver: %s", e.what());
    return 1;
  }
}
