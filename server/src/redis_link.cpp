// SPDX-License-Identifier: MIT
#include "rexec/server/redis_link.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace rx::server {

Result<RedisAddress> parse_redis_url(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) return Error(Errc::kConfig, "--redis must start with redis://");
  std::string rest = url.substr(scheme.size());
  RedisAddress a;
  if (const auto at = rest.rfind('@'); at != std::string::npos) {
    std::string auth = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = auth.find(':');
    a.password = colon == std::string::npos ? auth : auth.substr(colon + 1);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      auto [p, ec] = std::from_chars(db.data(), db.data() + db.size(), a.db);
      if (ec != std::errc() || p != db.data() + db.size() || a.db < 0) {
        return Error(Errc::kConfig, "--redis: bad database number " + db);
      }
    }
  }
  if (const auto colon = rest.rfind(':'); colon != std::string::npos && rest.back() != ']') {
    const std::string port = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
    if (ec != std::errc() || p != port.data() + port.size() || a.port <= 0 || a.port > 65535) {
      return Error(Errc::kConfig, "--redis: bad port " + port);
    }
  }
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']')
    rest = rest.substr(1, rest.size() - 2);
  if (rest.empty()) return Error(Errc::kConfig, "--redis: no host");
  a.host = rest;
  return a;
}

namespace {

// A reply as text: strings and status as is, integers in decimal, nil as nullopt.
std::optional<std::string> reply_text(const redisReply* r) {
  if (r == nullptr) return std::nullopt;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    default:
      return std::nullopt;
  }
}

constexpr const char* kProbePrefix = "rexec-link-probe:";

struct Pending {
  std::shared_ptr<bool> alive;
  RedisLink* link;
  std::function<void(std::optional<std::string>)> done;
};

void send_argv(redisAsyncContext* ac, redisCallbackFn* cb, void* priv,
               const std::vector<std::string>& argv) {
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  for (const auto& s : argv) {
    ptrs.push_back(s.data());
    lens.push_back(s.size());
  }
  redisAsyncCommandArgv(ac, cb, priv, static_cast<int>(argv.size()), ptrs.data(), lens.data());
}

// AUTH and SELECT, queued first on a new connection.
void handshake(redisAsyncContext* ac, const RedisAddress& a) {
  if (!a.password.empty()) send_argv(ac, nullptr, nullptr, {"AUTH", a.password});
  if (a.db != 0) send_argv(ac, nullptr, nullptr, {"SELECT", std::to_string(a.db)});
}

}  // namespace

RedisLink::RedisLink(uv_loop_t* loop, RedisAddress address, std::vector<std::string> channels,
                     MessageFn on_message, std::function<void()> on_ready)
    : loop_(loop),
      address_(std::move(address)),
      channels_(std::move(channels)),
      on_message_(std::move(on_message)),
      on_ready_(std::move(on_ready)),
      cmd_retry_(loop),
      sub_retry_(loop),
      watchdog_(loop),
      probe_(kProbePrefix + std::to_string(reinterpret_cast<std::uintptr_t>(this)) + ":" +
             std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())) {
  connect_cmd();
  connect_sub();
  watchdog_.start(kWatchdog, kWatchdog, [this] { watch(); });
}

// hiredis's libuv adapter drops a poll error (libuv reports a reset socket as one, and stops
// the poll): the connection then hangs without a disconnect callback. So both connections are
// watched: a PING on the commands connection, and a probe published to our own subscription.
// One that delivers nothing at all for kDeadTicks ticks is dropped and reconnected. Anything it
// delivers counts, not only the answer to the check: on a busy connection (a file relayed
// through Redis, on a slow machine) that answer may wait behind seconds of others.
void RedisLink::watch() {
  if (cmd_ != nullptr && cmd_up_) {
    cmd_quiet_ticks_ = cmd_heard_ || !ping_out_ ? 0 : cmd_quiet_ticks_ + 1;
    cmd_heard_ = false;
    if (cmd_quiet_ticks_ >= kDeadTicks) {
      spdlog::warn("redis commands connection silent; reconnecting");
      drop(false);
    } else if (!ping_out_) {
      ping_out_ = true;
      command({"PING"}, [this](std::optional<std::string>) { ping_out_ = false; });
    }
  }
  if (sub_ != nullptr && sub_up_ && cmd_up_) {
    sub_quiet_ticks_ = sub_heard_ ? 0 : sub_quiet_ticks_ + 1;
    sub_heard_ = false;
    if (sub_quiet_ticks_ > kDeadTicks) {
      spdlog::warn("redis subscription silent; reconnecting");
      drop(true);
    } else {
      publish(channels_.front(), probe_);
    }
  }
}

void RedisLink::drop(bool sub) {
  redisAsyncContext*& ac = sub ? sub_ : cmd_;
  ac->data = nullptr;  // its callbacks, run while freeing, see a context nobody owns
  redisAsyncFree(ac);
  ac = nullptr;
  (sub ? sub_up_ : cmd_up_) = false;
  if (sub) {
    sub_quiet_ticks_ = 0;
  } else {
    ping_out_ = false;
    cmd_quiet_ticks_ = 0;
  }
  schedule(sub);
}

RedisLink::~RedisLink() { stop(); }

void RedisLink::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  cmd_retry_.stop();
  sub_retry_.stop();
  watchdog_.stop();
  for (redisAsyncContext** ac : {&cmd_, &sub_}) {
    if (*ac != nullptr) {
      (*ac)->data = nullptr;  // its callbacks see a context nobody owns
      redisAsyncFree(*ac);
      *ac = nullptr;
    }
  }
  if (sync_ != nullptr) redisFree(sync_);
  sync_ = nullptr;
  cmd_up_ = sub_up_ = false;
}

redisAsyncContext* RedisLink::open_async() {
  redisAsyncContext* ac = redisAsyncConnect(address_.host.c_str(), address_.port);
  if (ac == nullptr) return nullptr;
  if (ac->err != 0) {
    spdlog::warn("redis connect failed host={}:{} error={}", address_.host, address_.port,
                 ac->errstr);
    redisAsyncFree(ac);
    return nullptr;
  }
  ac->data = this;
  redisLibuvAttach(ac, loop_);
  handshake(ac, address_);
  return ac;
}

void RedisLink::connect_cmd() {
  cmd_ = open_async();
  if (cmd_ == nullptr) {
    schedule(false);
    return;
  }
  redisAsyncSetConnectCallback(cmd_, on_cmd_connect);
  redisAsyncSetDisconnectCallback(cmd_, on_cmd_disconnect);
}

void RedisLink::connect_sub() {
  sub_ = open_async();
  if (sub_ == nullptr) {
    schedule(true);
    return;
  }
  redisAsyncSetConnectCallback(sub_, on_sub_connect);
  redisAsyncSetDisconnectCallback(sub_, on_sub_disconnect);
  std::vector<std::string> argv = {"SUBSCRIBE"};
  argv.insert(argv.end(), channels_.begin(), channels_.end());
  send_argv(sub_, on_sub_reply, nullptr, argv);
}

// Reconnects after a delay that doubles up to 5 s, and starts again at 100 ms once connected.
void RedisLink::schedule(bool sub) {
  if (stopped_) return;
  ++errors_;
  auto& backoff = sub ? sub_backoff_ : cmd_backoff_;
  (sub ? sub_retry_ : cmd_retry_).start(backoff, [this, sub] {
    if (sub) {
      connect_sub();
    } else {
      connect_cmd();
    }
  });
  backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
}

void RedisLink::on_cmd_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisLink*>(ac->data);
  if (self == nullptr) return;
  if (status != REDIS_OK) {  // hiredis frees the context after this callback
    self->cmd_ = nullptr;
    self->schedule(false);
    return;
  }
  self->cmd_up_ = true;
  self->cmd_backoff_ = std::chrono::milliseconds(100);
  spdlog::info("redis connected host={}:{}", self->address_.host, self->address_.port);
  if (self->is_ready() && self->on_ready_) self->on_ready_();
}

void RedisLink::on_cmd_disconnect(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisLink*>(ac->data);
  if (self == nullptr) return;
  if (self->cmd_up_) spdlog::warn("redis connection lost; reconnecting");
  self->cmd_ = nullptr;
  self->cmd_up_ = false;
  self->schedule(false);
}

void RedisLink::on_sub_connect(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisLink*>(ac->data);
  if (self == nullptr) return;
  if (status != REDIS_OK) {
    self->sub_ = nullptr;
    self->schedule(true);
  }
  // Ready once the SUBSCRIBE is confirmed (on_sub_reply).
}

void RedisLink::on_sub_disconnect(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisLink*>(ac->data);
  if (self == nullptr) return;
  self->sub_ = nullptr;
  self->sub_up_ = false;
  self->schedule(true);
}

void RedisLink::on_sub_reply(redisAsyncContext* ac, void* reply, void* /*privdata*/) {
  auto* self = static_cast<RedisLink*>(ac->data);
  const auto* r = static_cast<const redisReply*>(reply);
  if (self == nullptr || r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const auto kind = reply_text(r->element[0]).value_or("");
  if (kind == "subscribe") {
    // One confirmation per channel: ready after the last.
    const auto count = reply_text(r->element[2]).value_or("0");
    if (count == std::to_string(self->channels_.size()) && !self->sub_up_) {
      self->sub_up_ = true;
      self->sub_heard_ = true;
      self->sub_backoff_ = std::chrono::milliseconds(100);
      if (self->is_ready() && self->on_ready_) self->on_ready_();
    }
    return;
  }
  if (kind != "message") return;
  auto channel = reply_text(r->element[1]);
  const redisReply* body = r->element[2];
  if (!channel || body == nullptr || body->type != REDIS_REPLY_STRING) return;
  self->sub_heard_ = true;
  // A view of hiredis's reply: terminal bytes are not copied once more on their way.
  const std::string_view payload(body->str, body->len);
  if (payload.rfind(kProbePrefix, 0) == 0) return;  // any instance's probe: not for the caller
  if (self->on_message_) self->on_message_(*channel, payload);
}

void RedisLink::on_command_reply(redisAsyncContext* /*ac*/, void* reply, void* privdata) {
  std::unique_ptr<Pending> p(static_cast<Pending*>(privdata));
  if (!*p->alive) return;
  const auto* r = static_cast<const redisReply*>(reply);
  if (r != nullptr) p->link->cmd_heard_ = true;
  if (r == nullptr || r->type == REDIS_REPLY_ERROR) ++p->link->errors_;
  if (p->done) p->done(r != nullptr && r->type != REDIS_REPLY_ERROR ? reply_text(r) : std::nullopt);
}

bool RedisLink::cmd_ready() {
  if (cmd_ != nullptr && cmd_up_) return true;
  ++errors_;
  return false;
}

void RedisLink::publish(std::string_view channel, std::string_view payload) {
  if (!cmd_ready()) return;
  std::array<const char*, 3> argv = {"PUBLISH", channel.data(), payload.data()};
  const std::array<std::size_t, 3> lens = {7, channel.size(), payload.size()};
  auto* pending = new Pending{alive_, this, {}};  // NOLINT: freed in the callback
  redisAsyncCommandArgv(cmd_, on_command_reply, pending, static_cast<int>(argv.size()), argv.data(),
                        lens.data());
}

void RedisLink::command(const std::vector<std::string>& argv,
                        std::function<void(std::optional<std::string>)> done) {
  if (!cmd_ready()) {
    if (done) done(std::nullopt);
    return;
  }
  auto* pending = new Pending{alive_, this, std::move(done)};  // NOLINT: freed in the callback
  send_argv(cmd_, on_command_reply, pending, argv);
}

Result<redisContext*> RedisLink::blocking() {
  if (sync_ != nullptr && sync_->err == 0) return sync_;
  if (sync_ != nullptr) {
    redisFree(sync_);
    sync_ = nullptr;
  }
  // A dead Redis is asked again at most once a second, not once per request.
  const auto now = std::chrono::steady_clock::now();
  if (now < sync_retry_after_) return Error(Errc::kUnavailable, "redis unavailable");
  sync_retry_after_ = now + std::chrono::seconds(1);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(kLookupTimeout).count();
  const timeval tv{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
  redisContext* c = redisConnectWithTimeout(address_.host.c_str(), address_.port, tv);
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    ++errors_;
    return Error(Errc::kUnavailable, "redis unavailable: " + why);
  }
  redisSetTimeout(c, tv);
  for (const auto& argv : std::vector<std::vector<std::string>>{
           address_.password.empty() ? std::vector<std::string>{}
                                     : std::vector<std::string>{"AUTH", address_.password},
           address_.db == 0 ? std::vector<std::string>{}
                            : std::vector<std::string>{"SELECT", std::to_string(address_.db)}}) {
    if (argv.empty()) continue;
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    for (const auto& s : argv) {
      ptrs.push_back(s.data());
      lens.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
    const bool ok = r != nullptr && r->type != REDIS_REPLY_ERROR;
    if (r != nullptr) freeReplyObject(r);
    if (!ok) {
      redisFree(c);
      ++errors_;
      return Error(Errc::kUnavailable, "redis refused AUTH or SELECT");
    }
  }
  sync_retry_after_ = {};
  sync_ = c;
  return sync_;
}

Result<std::vector<std::optional<std::string>>> RedisLink::mget(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> out;
  if (keys.empty()) return out;
  std::vector<const char*> ptrs = {"MGET"};
  std::vector<std::size_t> lens = {4};
  for (const auto& k : keys) {
    ptrs.push_back(k.data());
    lens.push_back(k.size());
  }
  auto r = run_blocking(std::move(ptrs), lens);
  if (!r) return std::move(r).error();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != keys.size()) {
    ++errors_;
    return Error(Errc::kUnavailable, "redis MGET: unexpected reply");
  }
  for (std::size_t i = 0; i < reply->elements; ++i) out.push_back(reply_text(reply->element[i]));
  return out;
}

// One command on the blocking connection. A connection that Redis closed (it restarted) is
// found out by the command that fails on it: that one is sent once more on a new connection.
Result<std::unique_ptr<redisReply, void (*)(void*)>> RedisLink::run_blocking(
    std::vector<const char*> argv, const std::vector<std::size_t>& lens) {
  for (int attempt = 0;; ++attempt) {
    auto c = blocking();
    if (!c) return std::move(c).error();
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(*c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (r != nullptr) {
      if (r->type == REDIS_REPLY_ERROR) {
        const std::string why(r->str, r->len);
        freeReplyObject(r);
        ++errors_;
        return Error(Errc::kUnavailable, "redis: " + why);
      }
      return std::unique_ptr<redisReply, void (*)(void*)>(r, freeReplyObject);
    }
    const std::string why = (*c)->errstr;
    redisFree(sync_);
    sync_ = nullptr;
    if (attempt == 0) continue;
    ++errors_;
    return Error(Errc::kUnavailable, "redis: " + why);
  }
}

Result<std::vector<std::pair<std::string, std::string>>> RedisLink::hgetall(
    const std::string& key) {
  auto r = run_blocking({"HGETALL", key.c_str()}, {7, key.size()});
  if (!r) return std::move(r).error();
  const redisReply* reply = r->get();
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
    ++errors_;
    return Error(Errc::kUnavailable, "redis HGETALL: unexpected reply");
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (std::size_t i = 0; i + 1 < reply->elements; i += 2) {
    out.emplace_back(reply_text(reply->element[i]).value_or(""),
                     reply_text(reply->element[i + 1]).value_or(""));
  }
  return out;
}

Result<std::optional<std::string>> RedisLink::get(const std::string& key) {
  auto r = mget({key});
  if (!r) return std::move(r).error();
  return r->front();
}

Status RedisLink::ping() {
  auto r = run_blocking({"PING"}, {4});
  if (!r) return std::move(r).error();
  return {};
}

}  // namespace rx::server
