// SPDX-License-Identifier: MIT
// RedisLink: the server's connections to Redis (hiredis). Two asynchronous ones on the loop
// (its libuv adapter): one for commands and PUBLISH, one SUBSCRIBEd to the cluster channels.
// Both reconnect by themselves, with backoff, and say when they are back (on_ready), so the
// caller can restore what a restarted Redis lost. A third, blocking connection with a short
// timeout answers the lookups a request must wait for (where is this agent?): lws decides a
// WebSocket upgrade inside its callback, so that answer cannot come later.
#pragma once

#include "rexec/common/result.h"
#include "rexec/uvx/timer.h"

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisAsyncContext;
struct redisContext;
struct redisReply;

namespace rx::server {

struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // AUTH when not empty
  int db = 0;            // SELECT when not 0
};

// redis://[:password@]host[:port][/db]. Errors: kConfig naming what is wrong (never the
// password).
Result<RedisAddress> parse_redis_url(const std::string& url);

class RedisLink {
 public:
  // A message of a subscribed channel. `payload` (any bytes) is valid only during the call.
  using MessageFn = std::function<void(const std::string& channel, std::string_view payload)>;

  // Loop thread only; the loop must outlive the link. Connects at once, and again whenever a
  // connection drops.
  RedisLink(uv_loop_t* loop, RedisAddress address, std::vector<std::string> channels,
            MessageFn on_message, std::function<void()> on_ready);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;
  RedisLink(RedisLink&&) = delete;
  RedisLink& operator=(RedisLink&&) = delete;

  // A command on the asynchronous connection; dropped (and counted) while it is down. `done`,
  // if given, gets the reply as a string (an integer as its decimal, nil as nullopt), or
  // nullopt on an error.
  void command(const std::vector<std::string>& argv,
               std::function<void(std::optional<std::string>)> done = {});

  // PUBLISH on the asynchronous connection, binary-safe: `payload` may hold any bytes. Neither
  // is copied before hiredis formats the command. Dropped (and counted) while the link is down.
  void publish(std::string_view channel, std::string_view payload);

  // Blocking, at most `timeout`: GET and MGET (nil: nullopt). Errors: kUnavailable.
  Result<std::optional<std::string>> get(const std::string& key);
  Result<std::vector<std::optional<std::string>>> mget(const std::vector<std::string>& keys);
  Result<std::vector<std::pair<std::string, std::string>>> hgetall(const std::string& key);
  // PING on the blocking connection: OK when Redis answers (GET /readyz).
  Status ping();

  // Both asynchronous connections are up and the subscription is active.
  [[nodiscard]] bool is_ready() const { return cmd_up_ && sub_up_; }

  // Commands or lookups that failed, and reconnections (GET /metrics).
  [[nodiscard]] std::uint64_t error_count() const { return errors_; }

  // Closes every connection now; nothing is called back afterwards.
  void stop();

  static constexpr std::chrono::milliseconds kLookupTimeout{500};
  static constexpr std::chrono::milliseconds kWatchdog{1000};
  // Watchdog ticks in a row in which a connection with a check outstanding delivered nothing,
  // after which it is dropped: about 3 s on the commands connection, 4 s on the subscription.
  static constexpr int kDeadTicks = 3;

 private:
  void connect_cmd();
  void connect_sub();
  void schedule(bool sub);
  void watch();
  void drop(bool sub);
  redisAsyncContext* open_async();
  Result<redisContext*> blocking();
  Result<std::unique_ptr<redisReply, void (*)(void*)>> run_blocking(
      std::vector<const char*> argv, const std::vector<std::size_t>& lens);

  static void on_cmd_connect(const redisAsyncContext* ac, int status);
  static void on_cmd_disconnect(const redisAsyncContext* ac, int status);
  static void on_sub_connect(const redisAsyncContext* ac, int status);
  static void on_sub_disconnect(const redisAsyncContext* ac, int status);
  static void on_sub_reply(redisAsyncContext* ac, void* reply, void* privdata);
  // The reply to command() or publish(): counts an error, and passes the reply on.
  static void on_command_reply(redisAsyncContext* ac, void* reply, void* privdata);
  // Whether command() and publish() can send now; one that cannot is counted as an error.
  bool cmd_ready();

  uv_loop_t* loop_;
  RedisAddress address_;
  std::vector<std::string> channels_;
  MessageFn on_message_;
  std::function<void()> on_ready_;
  redisAsyncContext* cmd_ = nullptr;
  redisAsyncContext* sub_ = nullptr;
  redisContext* sync_ = nullptr;
  bool cmd_up_ = false;
  bool sub_up_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point sync_retry_after_{};
  uvx::Timer cmd_retry_;
  uvx::Timer sub_retry_;
  uvx::Timer watchdog_;
  std::string probe_;  // published to our own subscription to see that it is alive
  // Whether each connection delivered anything since the last tick: any message on the
  // subscription (our probe waits behind the others), any reply on the commands connection
  // (our PING waits behind those). Silence is counted in ticks, not read off the clock: a loop
  // held up for seconds (a loaded machine) has not read its sockets meanwhile either, and must
  // not take its own stall for a dead connection.
  bool sub_heard_ = false;
  bool cmd_heard_ = false;
  int sub_quiet_ticks_ = 0;
  int cmd_quiet_ticks_ = 0;
  bool ping_out_ = false;  // a PING not answered yet
  std::chrono::milliseconds cmd_backoff_{100};
  std::chrono::milliseconds sub_backoff_{100};
  std::uint64_t errors_ = 0;
  // Set to false by the destructor: callbacks that hiredis runs while freeing see it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rx::server
