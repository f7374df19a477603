// SPDX-License-Identifier: MIT
#include "rexec/server/exec_route.h"

#include "rexec/proto/message_codec.h"
#include "rexec/uvx/timer.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace rx::server {

namespace {

using nlohmann::json;

HttpResponse json_error(int status, const std::string& text) {
  return HttpResponse::json(status, json{{"error", text}}.dump());
}

// Reads the request body, then hands the parsed request to run(); a bad body is answered here.
class ExecBody : public HttpStreamHandler {
 public:
  explicit ExecBody(HttpStream& stream) : stream_(stream) {}

  void on_body(std::string_view bytes) override {
    if (too_large_ || body_.size() + bytes.size() > kMaxExecBodyBytes) {
      too_large_ = true;
      return;
    }
    body_.append(bytes);
  }

  void on_body_end() override {
    if (too_large_) return stream_.respond(json_error(413, "request body too large"));
    auto params = parse_exec_body(body_);
    if (!params) return stream_.respond(json_error(400, params.error().message));
    run(std::move(*params));
  }

 protected:
  virtual void run(ExecParams params) = 0;

  [[nodiscard]] HttpStream& stream() const { return stream_; }

  [[nodiscard]] const std::string& body() const { return body_; }

 private:
  HttpStream& stream_;
  std::string body_;
  bool too_large_ = false;
};

class LocalExec final : public ExecBody {
 public:
  LocalExec(Hub& hub, std::string agent_id, std::string user_id, HttpStream& stream)
      : ExecBody(stream),
        hub_(hub),
        agent_id_(std::move(agent_id)),
        user_id_(std::move(user_id)),
        deadline_(hub.loop()) {}

  ~LocalExec() override { cancel(); }

  LocalExec(const LocalExec&) = delete;
  LocalExec& operator=(const LocalExec&) = delete;
  LocalExec(LocalExec&&) = delete;
  LocalExec& operator=(LocalExec&&) = delete;

  void on_written(std::uint64_t /*total*/) override {}

  void on_closed() override { cancel(); }  // the client gave up: the command goes on without it

 private:
  void run(ExecParams p) override {
    const std::uint32_t timeout_s = p.timeout_s;
    id_ = hub_.start_exec(agent_id_, user_id_, std::move(p.command), timeout_s,
                          [this](Result<proto::ExecResult> r) { answer(std::move(r)); });
    if (id_ == 0) return stream().respond(json_error(404, "agent not online"));
    const auto wait = std::chrono::seconds(timeout_s) + kExecAnswerGrace;
    deadline_.start(wait, [this, wait] {
      spdlog::warn("exec unanswered agent={} after_s={}", agent_id_, wait.count());
      cancel();
      stream().respond(json_error(
          504, "the agent did not answer within " + std::to_string(wait.count()) + " s"));
    });
  }

  void answer(Result<proto::ExecResult> r) {
    id_ = 0;  // the hub is done with it
    deadline_.stop();
    if (!r) return stream().respond(json_error(502, r.error().message));
    // The exec_result's data, in the order of the agent and user sockets' message.
    const auto j =
        nlohmann::ordered_json::parse(proto::encode(proto::AgentMessage(*r)), nullptr, false);
    stream().respond(HttpResponse::json(200, j.is_object() ? j["data"].dump() : "{}"));
  }

  void cancel() {
    deadline_.stop();
    if (id_ != 0) hub_.cancel_exec(id_);
    id_ = 0;
  }

  Hub& hub_;
  std::string agent_id_;
  std::string user_id_;
  uvx::Timer deadline_;
  std::uint64_t id_ = 0;
};

class RelayedExec final : public ExecBody {
 public:
  RelayedExec(FileRelay& relay, std::string instance, std::string agent_id, std::string user_id,
              HttpStream& stream)
      : ExecBody(stream),
        relay_(relay),
        instance_(std::move(instance)),
        agent_id_(std::move(agent_id)),
        user_id_(std::move(user_id)) {}

  void on_written(std::uint64_t total) override {
    if (forward_) forward_->on_written(total);
  }

  void on_closed() override {
    if (forward_) forward_->on_closed();
  }

 private:
  void run(ExecParams p) override {
    // The agent's instance answers by then (its own deadline is a grace shorter).
    const FileRequest request{"exec",
                              agent_id_,
                              "",
                              0,
                              std::nullopt,
                              user_id_,
                              std::chrono::seconds(p.timeout_s) + 2 * kExecAnswerGrace};
    forward_ = relay_.forward(request, instance_, stream());
    forward_->on_body(body());
    forward_->on_body_end();
  }

  FileRelay& relay_;
  std::string instance_;
  std::string agent_id_;
  std::string user_id_;
  std::unique_ptr<HttpStreamHandler> forward_;
};

}  // namespace

Result<ExecParams> parse_exec_body(std::string_view body) {
  const json j = json::parse(body, nullptr, false);
  if (!j.is_object()) return Error(Errc::kInvalidArgument, "the body must be a JSON object");
  ExecParams p;
  const auto command = j.find("command");
  if (command == j.end() || !command->is_string() ||
      command->get_ref<const std::string&>().empty()) {
    return Error(Errc::kInvalidArgument, "command is required");
  }
  p.command = command->get<std::string>();
  if (const auto t = j.find("timeout_s"); t != j.end() && !t->is_null()) {
    if (!t->is_number_unsigned() || t->get<std::uint64_t>() < 1 ||
        t->get<std::uint64_t>() > kMaxExecTimeoutS) {
      return Error(Errc::kInvalidArgument,
                   "timeout_s must be a whole number of seconds from 1 to 3600");
    }
    p.timeout_s = t->get<std::uint32_t>();
  }
  return p;
}

std::unique_ptr<HttpStreamHandler> make_local_exec(Hub& hub, std::string agent_id,
                                                   std::string user_id, HttpStream& stream) {
  return std::make_unique<LocalExec>(hub, std::move(agent_id), std::move(user_id), stream);
}

std::unique_ptr<HttpStreamHandler> make_relayed_exec(FileRelay& relay, std::string instance,
                                                     std::string agent_id, std::string user_id,
                                                     HttpStream& stream) {
  return std::make_unique<RelayedExec>(relay, std::move(instance), std::move(agent_id),
                                       std::move(user_id), stream);
}

}  // namespace rx::server
