// SPDX-License-Identifier: MIT
#include "test_client.h"

#include <algorithm>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace rx::test {

Loop::Loop(const std::string& ca_file) {
  if (uv_loop_init(&loop_) != 0) throw std::runtime_error("uv_loop_init");
  net::ContextOptions options;
  options.loop = &loop_;
  options.ca_file = ca_file;
  auto ctx = net::LwsContext::create(options);
  if (!ctx) throw std::runtime_error(ctx.error().to_string());
  context_ = std::move(ctx).value();
}

Loop::~Loop() {
  context_.reset();
  for (int i = 0; i < 1000 && uv_run(&loop_, UV_RUN_NOWAIT) != 0; ++i) {
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  (void)uv_loop_close(&loop_);
}

bool Loop::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // A 10 ms repeating timer of this call's own bounds each uv_run(ONCE), so the deadline holds
  // even when run_until nests (a predicate that makes an HTTP call runs the loop itself).
  auto* tick = new uv_timer_t();
  uv_timer_init(&loop_, tick);
  uv_timer_start(
      tick, [](uv_timer_t*) {}, 10, 10);
  while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(tick),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  return done();
}

void Loop::run_for(std::chrono::milliseconds d) {
  (void)run_until([] { return false; }, d);
}

namespace {

// Starts `req` on `client`; false when it could not be started (`done` is not called then).
bool start_request(net::HttpClient& client, net::HttpRequest req, const std::string& token,
                   std::function<void(HttpResult)> done) {
  if (!token.empty()) req.headers.emplace_back("authorization", "Bearer " + token);
  auto st = client.request(std::move(req), [done = std::move(done)](Result<net::HttpResponse> r) {
    HttpResult result;
    if (r) {
      result.status = r->status;
      result.raw = r->body;
      result.body = nlohmann::json::parse(result.raw, nullptr, false);
      if (result.body.is_discarded()) result.body = nullptr;
    }
    done(std::move(result));
  });
  return st.has_value();
}

net::HttpRequest make_request(const std::string& method, const std::string& url,
                              const std::string& body) {
  net::HttpRequest req;
  req.method = method;
  auto parsed = net::Url::parse(url);
  if (!parsed) throw std::runtime_error("bad url " + url);
  req.url = *parsed;
  req.body = body;
  return req;
}

}  // namespace

HttpResult http(Loop& loop, const std::string& method, const std::string& url,
                const std::string& token, const std::string& body,
                const std::vector<std::pair<std::string, std::string>>& headers) {
  net::HttpClient client(loop.lws());
  net::HttpRequest req = make_request(method, url, body);
  req.headers = headers;
  bool done = false;
  HttpResult result;
  if (!start_request(client, std::move(req), token, [&](HttpResult r) {
        done = true;
        result = std::move(r);
      })) {
    return result;
  }
  loop.run_until([&] { return done; }, 10s);
  loop.run_for(5ms);  // callers poll in loops: keep them from spinning
  return result;
}

void http_start(net::HttpClient& client, const std::string& method, const std::string& url,
                const std::string& token, const std::string& body,
                std::chrono::milliseconds idle_timeout, std::function<void(HttpResult)> done) {
  net::HttpRequest req = make_request(method, url, body);
  req.idle_timeout = idle_timeout;
  if (!start_request(client, std::move(req), token, done)) done(HttpResult{});
}

nlohmann::json WsFrame::json() const {
  if (binary) return nullptr;
  auto j = nlohmann::json::parse(data, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

TestSocket::TestSocket(Loop& loop) : loop_(loop) {
  net::WsClient::Handlers h;
  h.on_open = [this](std::string_view p) {
    open_ = true;
    subprotocol_ = std::string(p);
  };
  h.on_message = [this](std::string_view data, bool binary) {
    if (sink_) {
      sink_(data, binary);
      return;
    }
    frames_.push_back(WsFrame{binary, std::string(data)});
    if (binary) {
      output_.append(data);
      return;
    }
    auto j = frames_.back().json();
    if (j.is_object() && j.value("type", "") == "output" && j.contains("data") &&
        j["data"].is_string()) {
      output_ += j["data"].get<std::string>();
    }
  };
  h.on_close = [this](const net::WsCloseInfo& info) {
    open_ = false;
    closed_ = true;
    close_info_ = info;
  };
  client_ = std::make_unique<net::WsClient>(loop.lws(), std::move(h));
}

bool TestSocket::open(const std::string& url, const std::string& bearer,
                      const std::string& subprotocols, const std::string& origin,
                      const std::vector<std::pair<std::string, std::string>>& headers) {
  net::WsConnectOptions o;
  auto parsed = net::Url::parse(url);
  if (!parsed) throw std::runtime_error("bad url " + url);
  o.url = *parsed;
  o.subprotocols = subprotocols;
  o.origin = origin;
  o.headers = headers;
  o.max_message_bytes = 8U << 20U;
  if (!bearer.empty()) o.headers.emplace_back("authorization", "Bearer " + bearer);
  closed_ = false;
  if (!client_->connect(o)) {
    closed_ = true;
    return false;
  }
  loop_.run_until([&] { return open_ || closed_; }, 10s);
  return open_;
}

std::optional<nlohmann::json> TestSocket::wait_json(
    const std::function<bool(const nlohmann::json&)>& pred, std::chrono::milliseconds timeout) {
  std::optional<nlohmann::json> found;
  std::size_t scanned = 0;
  loop_.run_until(
      [&] {
        for (; scanned < frames_.size(); ++scanned) {
          auto j = frames_[scanned].json();
          if (!j.is_null() && pred(j)) {
            found = j;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

std::optional<nlohmann::json> TestSocket::wait_type(const std::string& type,
                                                    std::chrono::milliseconds timeout) {
  return wait_json(
      [&](const nlohmann::json& j) { return j.is_object() && j.value("type", "") == type; },
      timeout);
}

bool TestSocket::wait_output(const std::string& needle, std::chrono::milliseconds timeout) {
  // Searches only what arrived since the last look (plus an overlap), so waiting on a large
  // output stays linear.
  std::size_t from = 0;
  return loop_.run_until(
      [&] {
        if (output_.find(needle, from) != std::string::npos) return true;
        from = output_.size() > needle.size() ? output_.size() - needle.size() : 0;
        return false;
      },
      timeout);
}

std::vector<nlohmann::json> TestSocket::messages(const std::string& type) const {
  std::vector<nlohmann::json> out;
  for (const auto& f : frames_) {
    if (f.binary) continue;
    if (auto j = f.json(); j.is_object() && j.value("type", "") == type) out.push_back(j);
  }
  return out;
}

std::uint64_t TestSocket::output_end_offset() const {
  std::uint64_t pos = 0;
  for (const auto& f : frames_) {
    if (f.binary) {
      pos += f.data.size();
    } else if (auto j = f.json(); j.is_object() && j.value("type", "") == "offset") {
      pos = j["data"].get<std::uint64_t>();
    }
  }
  return pos;
}

std::vector<std::string> lines_matching(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  const std::regex csi("\x1b\\[[0-9;?]*[A-Za-z]");
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line.erase(std::remove(line.begin(), line.end(), '\r'), line.end());
    line = std::regex_replace(line, csi, "");
    if (std::regex_match(line, re)) out.push_back(line);
  }
  return out;
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i <= to; ++i) v.push_back(prefix + std::to_string(i));
  return v;
}

bool TestSocket::wait_closed(std::chrono::milliseconds timeout) {
  return loop_.run_until([&] { return closed_; }, timeout);
}

}  // namespace rx::test
