// SPDX-License-Identifier: MIT
// A synchronous test client: its own libuv loop and lws context, driven by run_until(). Tests
// speak the wire format with nlohmann::json directly rather than through rx::proto, so a codec
// bug cannot hide itself on both ends.
#pragma once

#include "rexec/net/http_client.h"
#include "rexec/net/lws_context.h"
#include "rexec/net/ws_client.h"

#include <nlohmann/json.hpp>
#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rx::test {

using namespace std::chrono_literals;

class Loop {
 public:
  // Client connections trust `ca_file` (empty: the system's CAs).
  explicit Loop(const std::string& ca_file = "");
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;
  Loop(Loop&&) = delete;
  Loop& operator=(Loop&&) = delete;

  // Runs the loop until `done()` is true or `timeout` passes; returns done().
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Runs the loop for `d`.
  void run_for(std::chrono::milliseconds d);

  uv_loop_t* uv() { return &loop_; }

  net::LwsContext& lws() { return *context_; }

 private:
  uv_loop_t loop_{};
  std::unique_ptr<net::LwsContext> context_;
};

struct HttpResult {
  int status = 0;  // 0: no response (connection failed)
  std::string raw;
  nlohmann::json body;  // parsed when raw is JSON, else null
};

// One HTTP request, run to completion on `loop` (at most 10 s).
HttpResult http(Loop& loop, const std::string& method, const std::string& url,
                const std::string& token = "", const std::string& body = "",
                const std::vector<std::pair<std::string, std::string>>& headers = {});

// Starts one HTTP request on `client`, which its loop runs while the caller waits for something
// else; `done` gets what http() would return. `idle_timeout` as net::HttpRequest's (zero: its
// fixed phases, 5 s for the answer to start). Requests still running when `client` is destroyed
// are abandoned.
void http_start(net::HttpClient& client, const std::string& method, const std::string& url,
                const std::string& token, const std::string& body,
                std::chrono::milliseconds idle_timeout, std::function<void(HttpResult)> done);

struct WsFrame {
  bool binary = false;
  std::string data;
  [[nodiscard]] nlohmann::json json() const;  // null when not JSON
};

// A WebSocket that records everything it receives.
class TestSocket {
 public:
  explicit TestSocket(Loop& loop);

  // Connects and waits (≤ 10 s) for open or failure. Returns true when open.
  bool open(const std::string& url, const std::string& bearer = "",
            const std::string& subprotocols = "rexec.v1", const std::string& origin = "",
            const std::vector<std::pair<std::string, std::string>>& headers = {});

  void send_json(const nlohmann::json& j) { client_->send_text(j.dump()); }

  void send_text(const std::string& s) { client_->send_text(s); }

  void send_binary(const std::string& bytes) { client_->send_binary(bytes); }

  void close(int code = 1000) { client_->close(code, "bye"); }

  // Waits until a received text frame satisfies `pred` (searching from `from`), returns it.
  std::optional<nlohmann::json> wait_json(const std::function<bool(const nlohmann::json&)>& pred,
                                          std::chrono::milliseconds timeout = 10s);
  std::optional<nlohmann::json> wait_type(const std::string& type,
                                          std::chrono::milliseconds timeout = 10s);

  // All terminal output received so far (v1 "output" text or v2 binary frames), concatenated.
  [[nodiscard]] const std::string& output() const { return output_; }

  // Waits until output() contains `needle`.
  bool wait_output(const std::string& needle, std::chrono::milliseconds timeout = 10s);
  bool wait_closed(std::chrono::milliseconds timeout = 10s);

  // Every received JSON message of `type`, in order.
  [[nodiscard]] std::vector<nlohmann::json> messages(const std::string& type) const;
  // The offset just past the last output byte received (v2: the last "offset" message plus the
  // binary bytes after it).
  [[nodiscard]] std::uint64_t output_end_offset() const;

  // From now on every message goes to `sink` and is not kept (benchmarks: no memory grows).
  void set_sink(std::function<void(std::string_view payload, bool binary)> sink) {
    sink_ = std::move(sink);
  }

  [[nodiscard]] bool is_open() const { return open_; }

  [[nodiscard]] bool closed() const { return closed_; }

  [[nodiscard]] const net::WsCloseInfo& close_info() const { return close_info_; }

  [[nodiscard]] const std::string& subprotocol() const { return subprotocol_; }

  [[nodiscard]] const std::vector<WsFrame>& frames() const { return frames_; }

 private:
  Loop& loop_;
  std::unique_ptr<net::WsClient> client_;
  bool open_ = false;
  bool closed_ = false;
  std::string subprotocol_;
  net::WsCloseInfo close_info_;
  std::vector<WsFrame> frames_;
  std::string output_;
  std::function<void(std::string_view, bool)> sink_;
};

// Lines of `text` that match `pattern` whole, once carriage returns and terminal control
// sequences (bash's bracketed-paste switch before a command's output) are removed.
std::vector<std::string> lines_matching(const std::string& text, const std::string& pattern);

// {"<prefix><from>", ..., "<prefix><to>"}
std::vector<std::string> numbered(const std::string& prefix, int from, int to);

}  // namespace rx::test
