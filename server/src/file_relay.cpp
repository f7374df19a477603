// SPDX-License-Identifier: MIT
// FileRelay: one HTTP file exchange split across two instances.
//
//   user's instance (Forward)                      agent's instance (RemoteStream)
//   client ─HTTP─> ForwardHandler ──file_start──>  FileService.{download,upload,list}
//                                 ──file_body───>  handler.on_body          (upload)
//                                 ──file_written─> handler.on_written       (download acks)
//                  stream.respond <──file_respond── stream.respond
//                  stream.write   <──file_data───── stream.write            (download)
//                  set_receiving  <──file_receiving set_receiving           (upload window)
//
// Bytes travel base64 in JSON, numbered (`seq`): a hole (a message lost while Redis was away)
// fails the transfer rather than corrupting it.
#include "rexec/server/file_relay.h"

#include "rexec/proto/base64.h"
#include "rexec/server/auth/tokens.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

namespace rx::server {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The agent's instance must answer this soon, and a transfer that moves nothing for longer is
// abandoned (its instance died, or Redis lost the messages).
constexpr std::chrono::seconds kAnswerTimeout(30);
constexpr std::chrono::seconds kStallTimeout(120);

// The hop through Redis has a window of its own for uploads: the user's instance stops reading
// the request body while more than this is published and not yet taken by the agent's instance.
// Redis never pushes back, and a subscriber that falls too far behind is disconnected
// (client-output-buffer-limit pubsub), which loses messages.
constexpr std::uint64_t kHopWindow = 2U << 20U;
constexpr std::uint64_t kTakenEvery = 256U << 10U;  // the agent's instance reports this often

std::string stream_id() { return "fs-" + random_hex(12); }

std::string str(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::uint64_t num(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

json response_json(const HttpResponse& r) {
  json headers = json::array();
  for (const auto& [k, v] : r.headers) headers.push_back({k, v});
  return {{"status", r.status},
          {"content_type", r.content_type},
          {"headers", std::move(headers)},
          {"body", r.body}};
}

HttpResponse response_of(const json& j) {
  HttpResponse r;
  r.status = j.value("status", 502);
  r.content_type = str(j, "content_type");
  r.body = str(j, "body");
  if (const auto it = j.find("headers"); it != j.end() && it->is_array()) {
    for (const auto& h : *it) {
      if (h.is_array() && h.size() == 2 && h[0].is_string() && h[1].is_string()) {
        r.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
      }
    }
  }
  return r;
}

HttpResponse json_error(int status, const std::string& error) {
  return HttpResponse::json(status, json{{"error", error}}.dump());
}

}  // namespace

// ---- the user's instance ----

struct FileRelay::Forward {
  std::string id;
  std::string target;            // the agent's instance
  HttpStream* stream = nullptr;  // null once the exchange is over
  bool answered = false;         // a response or head came back
  bool ended = false;
  std::uint64_t body_seq = 0;             // next file_body to send
  std::uint64_t data_seq = 0;             // next file_data expected
  bool has_body = false;                  // an upload or exec: its answer comes only after the body
  std::chrono::seconds answer_within{0};  // FileRequest::answer_within
  std::uint64_t published = 0;            // upload bytes sent to the agent's instance
  std::uint64_t taken = 0;                // ... and taken by it (file_taken)
  bool far_allows = true;  // the agent's instance has not asked to stop (file_receiving)

  // Reads the request body only while both the far side and the hop's window allow it.
  void apply_receiving() const {
    if (stream != nullptr) stream->set_receiving(far_allows && published - taken < kHopWindow);
  }

  Clock::time_point started = Clock::now();
  Clock::time_point last_heard = Clock::now();
};

class FileRelay::ForwardHandler final : public HttpStreamHandler {
 public:
  ForwardHandler(FileRelay& relay, std::shared_ptr<Forward> f) : relay_(relay), f_(std::move(f)) {}

  ~ForwardHandler() override { f_->stream = nullptr; }

  ForwardHandler(const ForwardHandler&) = delete;
  ForwardHandler& operator=(const ForwardHandler&) = delete;
  ForwardHandler(ForwardHandler&&) = delete;
  ForwardHandler& operator=(ForwardHandler&&) = delete;

  void on_body(std::string_view bytes) override {
    if (f_->ended) return;
    f_->last_heard = Clock::now();  // the upload is moving, the agent's instance reading it
    relay_.publish_(f_->target, {{"type", "file_body"},
                                 {"stream", f_->id},
                                 {"seq", f_->body_seq++},
                                 {"data", proto::base64_encode(bytes)}});
    f_->published += bytes.size();
    if (f_->published - f_->taken >= kHopWindow) f_->apply_receiving();
  }

  void on_body_end() override {
    if (!f_->ended) relay_.publish_(f_->target, {{"type", "file_body_end"}, {"stream", f_->id}});
  }

  void on_written(std::uint64_t total) override {
    if (!f_->ended) {
      relay_.publish_(f_->target, {{"type", "file_written"}, {"stream", f_->id}, {"total", total}});
    }
  }

  void on_closed() override {
    f_->stream = nullptr;
    if (f_->ended) return;
    f_->ended = true;
    relay_.publish_(f_->target, {{"type", "file_closed"}, {"stream", f_->id}});
  }

 private:
  FileRelay& relay_;
  std::shared_ptr<Forward> f_;
};

// ---- the agent's instance ----

class FileRelay::RemoteStream final : public HttpStream {
 public:
  RemoteStream(FileRelay& relay, std::string id, std::string origin)
      : relay_(relay), id_(std::move(id)), origin_(std::move(origin)) {}

  ~RemoteStream() override {
    handler.reset();  // it refers to this stream until it is gone
  }

  RemoteStream(const RemoteStream&) = delete;
  RemoteStream& operator=(const RemoteStream&) = delete;
  RemoteStream(RemoteStream&&) = delete;
  RemoteStream& operator=(RemoteStream&&) = delete;

  void respond(HttpResponse response) override {
    if (responded_) return;
    responded_ = true;
    json m = response_json(response);
    m["type"] = "file_respond";
    send(std::move(m));
    finish();
  }

  void respond_head(HttpResponse head, std::uint64_t length) override {
    if (responded_) return;
    responded_ = true;
    length_ = length;
    json m = response_json(head);
    m["type"] = "file_head";
    m["length"] = length;
    send(std::move(m));
    if (length == 0) finish();
  }

  void write(std::string bytes) override {
    if (done || bytes.empty()) return;
    sent_ += bytes.size();
    send({{"type", "file_data"}, {"seq", data_seq_++}, {"data", proto::base64_encode(bytes)}});
  }

  void abort() override {
    if (done) return;
    send({{"type", "file_abort"}});
    finish();
  }

  [[nodiscard]] std::size_t queued_bytes() const override {
    return static_cast<std::size_t>(sent_ - written_);
  }

  void set_receiving(bool on) override {
    if (receiving_ == on || done) return;
    receiving_ = on;
    send({{"type", "file_receiving"}, {"on", on}});
  }

  // Messages from the user's instance.
  void on_message(const std::string& type, const json& p) {
    last_heard = Clock::now();
    if (done || !handler) return;
    if (type == "file_body") {
      if (num(p, "seq") != body_seq_) {
        spdlog::warn("file relay: body message lost stream={}", id_);
        return fail_closed();
      }
      ++body_seq_;
      auto bytes = proto::base64_decode(str(p, "data"));
      if (!bytes) return fail_closed();
      handler->on_body(*bytes);
      taken_ += bytes->size();
      if (taken_ - reported_ >= kTakenEvery) {
        reported_ = taken_;
        send({{"type", "file_taken"}, {"total", taken_}});
      }
    } else if (type == "file_body_end") {
      handler->on_body_end();
    } else if (type == "file_written") {
      const std::uint64_t total = num(p, "total");
      if (total <= written_ || total > sent_) return;
      written_ = total;
      handler->on_written(total);
      if (length_ && written_ == *length_) finish();
    } else if (type == "file_closed") {
      fail_closed();
    }
  }

  std::unique_ptr<HttpStreamHandler> handler;
  bool done = false;
  Clock::time_point last_heard = Clock::now();

 private:
  void send(json m) {
    m["stream"] = id_;
    relay_.publish_(origin_, std::move(m));
  }

  // The client is gone (or its messages are): the handler hears it as a close.
  void fail_closed() {
    if (done) return;
    done = true;
    if (handler) handler->on_closed();
    relay_.reap_timer_.start(std::chrono::milliseconds(0), [r = &relay_] { r->reap(); });
  }

  void finish() {
    done = true;
    relay_.reap_timer_.start(std::chrono::milliseconds(0), [r = &relay_] { r->reap(); });
  }

  FileRelay& relay_;
  std::string id_;
  std::string origin_;
  bool responded_ = false;
  bool receiving_ = true;
  std::optional<std::uint64_t> length_;
  std::uint64_t sent_ = 0;
  std::uint64_t written_ = 0;
  std::uint64_t data_seq_ = 0;
  std::uint64_t body_seq_ = 0;
  std::uint64_t taken_ = 0;     // upload bytes handed to the FileService
  std::uint64_t reported_ = 0;  // ... and reported with file_taken
};

FileRelay::FileRelay(uv_loop_t* loop, PublishFn publish, StartFn start)
    : publish_(std::move(publish)),
      start_(std::move(start)),
      check_timer_(loop),
      reap_timer_(loop) {
  check_timer_.start(std::chrono::milliseconds(1000), std::chrono::milliseconds(1000),
                     [this] { check(); });
}

FileRelay::~FileRelay() {
  for (auto& [id, f] : forwards_) f->ended = true;
  remotes_.clear();
}

std::unique_ptr<HttpStreamHandler> FileRelay::forward(const FileRequest& request,
                                                      const std::string& instance,
                                                      HttpStream& stream) {
  auto f = std::make_shared<Forward>();
  f->id = stream_id();
  f->target = instance;
  f->stream = &stream;
  f->has_body = request.kind == "put" || request.kind == "exec";
  f->answer_within = request.answer_within;
  forwards_[f->id] = f;
  json m = {{"type", "file_start"},         {"stream", f->id},      {"kind", request.kind},
            {"agent_id", request.agent_id}, {"path", request.path}, {"size", request.size}};
  if (request.mode) m["mode"] = *request.mode;
  if (!request.user_id.empty()) m["user_id"] = request.user_id;
  spdlog::info("{} relayed agent={} kind={} to={}",
               request.kind == "exec" ? "exec" : "file transfer", request.agent_id, request.kind,
               instance);
  publish_(instance, std::move(m));
  return std::make_unique<ForwardHandler>(*this, f);
}

void FileRelay::on_message(const std::string& from, const json& p) {
  const std::string type = str(p, "type");
  const std::string id = str(p, "stream");
  if (id.empty()) return;
  if (const auto it = forwards_.find(id); it != forwards_.end()) {
    std::shared_ptr<Forward> keep = it->second;
    return on_forward_message(*keep, type, p);
  }
  on_remote_message(from, type, p);
}

void FileRelay::on_forward_message(Forward& f, const std::string& type, const json& p) {
  f.last_heard = Clock::now();
  if (f.ended) return;
  auto end = [&] {
    f.ended = true;
    forwards_.erase(f.id);
  };
  if (f.stream == nullptr) return end();
  if (type == "file_respond") {
    f.answered = true;
    f.stream->respond(response_of(p));
    end();
  } else if (type == "file_head") {
    f.answered = true;
    const std::uint64_t length = num(p, "length");
    f.stream->respond_head(response_of(p), length);
    if (length == 0) end();
  } else if (type == "file_data") {
    auto bytes = proto::base64_decode(str(p, "data"));
    if (num(p, "seq") != f.data_seq || !bytes) {
      spdlog::warn("file relay: data message lost stream={}", f.id);
      publish_(f.target, {{"type", "file_closed"}, {"stream", f.id}});
      f.stream->abort();
      return end();
    }
    ++f.data_seq;
    f.stream->write(std::move(*bytes));
  } else if (type == "file_receiving") {
    f.far_allows = p.value("on", true);
    f.apply_receiving();
  } else if (type == "file_taken") {
    f.taken = std::max(f.taken, std::min(num(p, "total"), f.published));
    f.apply_receiving();
  } else if (type == "file_abort") {
    f.stream->abort();
    end();
  }
}

void FileRelay::on_remote_message(const std::string& from, const std::string& type, const json& p) {
  const std::string id = str(p, "stream");
  if (type == "file_start") {
    if (remotes_.count(id) != 0) return;
    auto r = std::make_unique<RemoteStream>(*this, id, from);
    RemoteStream* raw = r.get();
    remotes_[id] = std::move(r);
    FileRequest req{str(p, "kind"), str(p, "agent_id"), str(p, "path"),         num(p, "size"),
                    std::nullopt,   str(p, "user_id"),  std::chrono::seconds(0)};
    if (const auto it = p.find("mode"); it != p.end() && it->is_number_unsigned()) {
      req.mode = it->get<std::uint32_t>() & 07777U;
    }
    raw->handler = start_(req, *raw);
    return;
  }
  const auto it = remotes_.find(id);
  if (it != remotes_.end()) it->second->on_message(type, p);
}

void FileRelay::check() {
  const auto now = Clock::now();
  std::vector<std::shared_ptr<Forward>> late;
  for (const auto& [id, f] : forwards_) {
    if (f->ended || f->stream == nullptr) {
      late.push_back(f);
      continue;
    }
    const auto quiet = now - f->last_heard;
    // A command's answer may take as long as the command; nothing moves meanwhile.
    const bool awaited = !f->answered && f->answer_within.count() > 0;
    if (awaited
            ? quiet > f->answer_within
            : (!f->answered && !f->has_body && quiet > kAnswerTimeout) || quiet > kStallTimeout) {
      late.push_back(f);
    }
  }
  for (const auto& f : late) {
    if (!f->ended && f->stream != nullptr) {
      spdlog::warn("file relay: the agent's instance stopped answering stream={} instance={}",
                   f->id, f->target);
      publish_(f->target, {{"type", "file_closed"}, {"stream", f->id}});
      if (!f->answered) {
        f->stream->respond(json_error(504, "the agent's instance did not answer"));
      } else {
        f->stream->abort();
      }
    }
    f->ended = true;
    forwards_.erase(f->id);
  }
  // A remote exchange whose user's instance went silent: its FileService times the transfer
  // out (and answers into the void); here only the bookkeeping is bounded.
  for (auto& [id, r] : remotes_) {
    if (!r->done && now - r->last_heard > kStallTimeout * 2) r->done = true;
  }
  reap();
}

void FileRelay::reap() {
  for (auto it = remotes_.begin(); it != remotes_.end();) {
    it = it->second->done ? remotes_.erase(it) : std::next(it);
  }
}

}  // namespace rx::server
