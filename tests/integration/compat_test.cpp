// SPDX-License-Identifier: MIT
// The deployed Rexec's public clients against our server (docs/protocol.md "Compatibility"). A
// fake agent here speaks v1 as the public Go agent does, including the behaviour the server has
// to accommodate: it starts a shell asynchronously and, until its shell_started, drops a resize
// or input for that session or applies it to `main`; it deletes itself with its own token; its
// exec_result has no exit_code. The routes the public CLI reads (profile, containers, validate)
// are checked on a real server.
#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <map>

#include "fixture.h"

using nlohmann::json;
using rx::test::System;
using rx::test::TestSocket;
using namespace std::chrono_literals;

namespace {

std::string base64_decode(const std::string& in) {
  std::string out(in.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  if (n < 0) return "<bad base64>";
  std::size_t pad = 0;
  for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// The public Go agent (PipeOpsHQ/rexec, cmd/rexec-agent), as far as the server can tell.
class GoAgent {
 public:
  struct Shell {
    std::vector<std::string> sizes;  // "COLSxROWS", in the order applied
    std::string input;
  };

  // Registers a new agent with the user's token, as `rexec-agent register` does.
  GoAgent(System& sys, const std::string& user_token, const std::string& name)
      : ws(sys.loop()), sys_(sys) {
    auto reg = rx::test::http(
        sys.loop(), "POST", sys.http_url("/api/agents/register"), user_token,
        json{{"name", name}, {"os", "linux"}, {"arch", "amd64"}, {"shell", "/bin/bash"}}.dump());
    REQUIRE(reg.status == 201);
    id = reg.body.value("id", "");
    token = reg.body.value("token", "");
  }

  // The same agent again after a restart: no shells.
  GoAgent(System& sys, const GoAgent& before)
      : id(before.id), token(before.token), ws(sys.loop()), sys_(sys) {}

  // Dials as the Go agent does: its own token, v1 only.
  bool connect() {
    if (!ws.open(sys_.ws_url("/ws/agent/" + id), token, "rexec.v1")) return false;
    send("system_info", {{"hostname", "go-host"},
                         {"num_cpu", 2},
                         {"memory", {{"total", 4294967296}, {"available", 1}, {"free", 1}}},
                         {"disk", {{"total", 21474836480}, {"available", 1}, {"free", 1}}},
                         {"region", "eu-west"},
                         {"os", "linux"},
                         {"arch", "amd64"}});
    return true;
  }

  [[nodiscard]] std::string input_of(const std::string& sid) const {
    const auto it = shells.find(sid);
    return it == shells.end() ? "" : it->second.input;
  }

  [[nodiscard]] std::vector<std::string> sizes_of(const std::string& sid) const {
    const auto it = shells.find(sid);
    return it == shells.end() ? std::vector<std::string>{} : it->second.sizes;
  }

  void send(const std::string& type, const json& data) {
    ws.send_json({{"type", type}, {"data", data}});
  }

  // Handles what arrived since the last call, and starts the shells whose time has come.
  void step() {
    const auto& frames = ws.frames();
    for (; seen_ < frames.size(); ++seen_) handle(frames[seen_].json());
    const auto now = std::chrono::steady_clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second > now) {
        ++it;
        continue;
      }
      shells[it->first];
      log.push_back("started " + it->first);
      send("shell_started", {{"session_id", it->first}});
      it = pending_.erase(it);
    }
  }

  // Runs the loop, stepping, until `done`.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    return sys_.loop().run_until(
        [&] {
          step();
          return done();
        },
        timeout);
  }

  std::string id;
  std::string token;
  TestSocket ws;
  std::map<std::string, Shell> shells;
  std::vector<std::string> log;        // "started main", "resize main 132x43", "input main 4"
  std::vector<std::string> dropped;    // what found no shell: "resize split-a", "input split-a"
  std::vector<std::string> misrouted;  // what went to main instead: "input split-a"
  std::vector<std::string> execs;      // commands received

 private:
  // Where the Go agent applies a message for `sid`: its shell, else main's, else nowhere.
  Shell* route(const std::string& sid, const std::string& what) {
    if (auto it = shells.find(sid); it != shells.end()) return &it->second;
    if (auto main = shells.find("main"); main != shells.end()) {
      misrouted.push_back(what + " " + sid);
      return &main->second;
    }
    dropped.push_back(what + " " + sid);
    return nullptr;
  }

  void handle(const json& m) {
    if (!m.is_object()) return;
    const std::string type = m.value("type", "");
    const json data = m.contains("data") ? m["data"] : json(nullptr);
    if (type == "shell_start") {
      // A goroutine: shell_starting at once, shell_started once the shell runs (at once when
      // it runs already). The main session is always "main".
      std::string sid = data.value("session_id", "main");
      if (!data.value("new_session", false)) sid = "main";
      send("shell_starting", {{"session_id", sid}});
      if (shells.count(sid) != 0) {
        send("shell_started", {{"session_id", sid}});
      } else if (pending_.count(sid) == 0) {
        pending_[sid] = std::chrono::steady_clock::now() + start_delay_;
      }
    } else if (type == "shell_resize") {
      const std::string sid = data.value("session_id", "");
      const std::string size =
          std::to_string(data.value("cols", 0)) + "x" + std::to_string(data.value("rows", 0));
      if (Shell* s = route(sid, "resize")) {
        s->sizes.push_back(size);
        log.push_back("resize " + sid + " " + size);
      }
    } else if (type == "shell_input") {
      const std::string sid = data.value("session_id", "");
      const std::string bytes = base64_decode(data.value("data", ""));
      if (Shell* s = route(sid, "input")) {
        s->input += bytes;
        log.push_back("input " + sid + " " + std::to_string(bytes.size()));
      }
    } else if (type == "shell_stop_session") {
      const std::string sid = data.value("session_id", "");
      if (shells.erase(sid) != 0) send("shell_stopped", {{"session_id", sid}});
    } else if (type == "ping") {
      send("pong", nullptr);
    } else if (type == "exec") {
      execs.push_back(data.value("command", ""));
    }
  }

  System& sys_;
  // How long the Go agent takes from shell_start to a running shell (a login shell's start-up).
  std::chrono::milliseconds start_delay_ = 500ms;
  std::size_t seen_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> pending_;
};

// A server, a user, and a Go agent of hers, online.
struct Setup {
  System sys;
  std::string token;
  GoAgent go;

  Setup() : token(sys.add_user("alice")), go(sys, token, "go-1") {
    REQUIRE(go.connect());
    REQUIRE(sys.wait_online(token, go.id));
  }
};

std::string terminal_url(System& sys, const std::string& agent_id, const std::string& conn,
                         bool split = false) {
  return sys.ws_url("/ws/agent/" + agent_id + "/terminal?id=" + conn +
                    (split ? "&newSession=true" : ""));
}

void input(TestSocket& s, const std::string& text) {
  s.send_json({{"type", "input"}, {"data", text}});
}

void resize(TestSocket& s, int cols, int rows) {
  s.send_json({{"type", "resize"}, {"cols", cols}, {"rows", rows}});
}

// Where the first entry of `log` that starts with `prefix` is (log.size() if none).
std::size_t position(const std::vector<std::string>& log, const std::string& prefix) {
  return static_cast<std::size_t>(
      std::find_if(log.begin(), log.end(),
                   [&](const std::string& e) { return e.rfind(prefix, 0) == 0; }) -
      log.begin());
}

}  // namespace

TEST_CASE_METHOD(Setup, "v1 agent: a session's resize and input wait for its shell_started",
                 "[integration][compat]") {
  // A viewer opens main and, as a browser does, sends its size and types at once: all of it
  // reaches the agent before the agent's shell exists.
  TestSocket viewer(sys.loop());
  REQUIRE(viewer.open(terminal_url(sys, go.id, "v1"), token, "rexec.v1"));
  resize(viewer, 90, 20);
  resize(viewer, 132, 43);
  input(viewer, "echo ");
  input(viewer, "one\n");
  REQUIRE(go.run_until([&] { return go.input_of("main") == "echo one\n"; }));
  CHECK(go.dropped.empty());
  CHECK(go.misrouted.empty());
  // The latest size, once, after the shell started, and before the input.
  CHECK(go.sizes_of("main") == std::vector<std::string>{"132x43"});
  CHECK(position(go.log, "started main") < position(go.log, "resize main"));
  CHECK(position(go.log, "resize main") < position(go.log, "input main"));
  CHECK(position(go.log, "input main") < go.log.size());
  CHECK(viewer.wait_type("shell_started"));

  // Once started, nothing waits.
  input(viewer, "two\n");
  resize(viewer, 100, 30);
  REQUIRE(go.run_until([&] { return go.sizes_of("main").size() == 2; }));
  CHECK(go.input_of("main") == "echo one\ntwo\n");
  CHECK(go.sizes_of("main").back() == "100x30");

  // A split while main runs: the Go agent would give its early resize and input to main.
  TestSocket split(sys.loop());
  REQUIRE(split.open(terminal_url(sys, go.id, "sp", true), token, "rexec.v1"));
  resize(split, 80, 25);
  input(split, "in split\n");
  REQUIRE(go.run_until([&] { return go.input_of("split-sp") == "in split\n"; }));
  CHECK(go.misrouted.empty());
  CHECK(go.sizes_of("split-sp") == std::vector<std::string>{"80x25"});
  CHECK(go.input_of("main") == "echo one\ntwo\n");

  // A second viewer of the running main is not held up.
  TestSocket second(sys.loop());
  REQUIRE(second.open(terminal_url(sys, go.id, "v2"), token, "rexec.v1"));
  input(second, "three\n");
  REQUIRE(go.run_until([&] { return go.input_of("main") == "echo one\ntwo\nthree\n"; }));
  CHECK(go.dropped.empty());
  CHECK(go.misrouted.empty());
}

TEST_CASE_METHOD(Setup,
                 "v1 agent: after a reconnect the held size is sent again once the shell runs",
                 "[integration][compat]") {
  TestSocket viewer(sys.loop());
  REQUIRE(viewer.open(terminal_url(sys, go.id, "v1"), token, "rexec.v1"));
  resize(viewer, 120, 40);
  REQUIRE(go.run_until([&] { return go.sizes_of("main").size() == 1; }));

  // The agent restarts (a new process: no shells) while the viewer stays.
  go.ws.close();
  REQUIRE(viewer.wait_type("agent_disconnected"));
  GoAgent again(sys, go);
  REQUIRE(again.connect());
  input(viewer, "after\n");
  REQUIRE(again.run_until([&] { return again.input_of("main") == "after\n"; }));
  CHECK(again.sizes_of("main") == std::vector<std::string>{"120x40"});
  CHECK(again.dropped.empty());
  CHECK(again.misrouted.empty());
}

TEST_CASE_METHOD(Setup, "v1 agent: unregister deletes exactly its own agent with its own token",
                 "[integration][compat][security]") {
  GoAgent& one = go;
  GoAgent two(sys, token, "go-2");
  auto& loop = sys.loop();

  // Not another agent of the same user, and nothing else.
  auto other = rx::test::http(loop, "DELETE", sys.http_url("/api/agents/" + two.id), one.token);
  CHECK(other.status == 403);
  CHECK(other.body == json{{"error", "token scope does not allow this"}});
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents/" + two.id), token).status == 200);
  CHECK(rx::test::http(loop, "PATCH", sys.http_url("/api/agents/" + one.id), one.token,
                       R"({"name":"x"})")
            .status == 403);

  // `rexec-agent unregister`: DELETE /api/agents/<own id> with the agent's token.
  auto self = rx::test::http(loop, "DELETE", sys.http_url("/api/agents/" + one.id), one.token);
  CHECK(self.status == 200);
  CHECK(self.body == json{{"message", "agent deleted"}});
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/agents/" + one.id), token).status == 404);
  CHECK(one.ws.wait_closed());  // its socket goes with it
  // Its token went too; the other agent stays.
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), one.token).status == 401);
  auto list = rx::test::http(loop, "GET", sys.http_url("/api/agents"), token);
  REQUIRE(list.body.is_array());
  REQUIRE(list.body.size() == 1);
  CHECK(list.body[0].value("id", "") == two.id);
}

TEST_CASE_METHOD(Setup,
                 "v1 agent: exec results without exit_code, out of order, reach their requests",
                 "[integration][compat]") {
  auto& loop = sys.loop();

  // Two commands at once, over HTTP (as `rexec exec` does).
  rx::net::HttpClient client(loop.lws());
  std::map<std::string, rx::test::HttpResult> answers;
  for (const std::string command : {"sleep 1; echo a", "echo b; exit 3"}) {
    rx::test::http_start(client, "POST", sys.http_url("/api/agents/" + go.id + "/exec"), token,
                         json{{"command", command}}.dump(), 20s,
                         [&answers, command](rx::test::HttpResult r) { answers[command] = r; });
  }
  REQUIRE(go.run_until([&] { return go.execs.size() == 2; }));
  // The Go agent's result shape; the second command finishes first.
  go.send("exec_result", {{"command", "echo b; exit 3"},
                          {"output", "b\n"},
                          {"success", false},
                          {"error", "exit status 3"}});
  go.send("exec_result", {{"command", "sleep 1; echo a"}, {"output", "a\n"}, {"success", true}});
  REQUIRE(loop.run_until([&] { return answers.size() == 2; }, 10s));
  CHECK(answers["sleep 1; echo a"].status == 200);
  CHECK(answers["sleep 1; echo a"].raw ==
        R"({"command":"sleep 1; echo a","output":"a\n","success":true,"exit_code":0})");
  CHECK(answers["echo b; exit 3"].raw ==
        R"({"command":"echo b; exit 3","output":"b\n","success":false,"exit_code":3,)"
        R"("error":"exit status 3"})");
}

TEST_CASE("the public CLI's routes: profile, containers, validate", "[integration][compat][pg]") {
  System sys;
  const std::string token = sys.add_user("alice", "free", false, "alice@example.com");
  auto& loop = sys.loop();

  auto validate = rx::test::http(loop, "GET", sys.http_url("/api/tokens/validate"), token);
  REQUIRE(validate.status == 200);
  CHECK(validate.body["email"] == "alice@example.com");
  CHECK(validate.body["username"] == "alice");

  // No agents yet: an empty list, never null (null breaks the public CLI).
  auto empty = rx::test::http(loop, "GET", sys.http_url("/api/containers"), token);
  CHECK(empty.status == 200);
  CHECK(empty.raw == R"({"containers":[],"count":0,"limit":5})");

  auto profile = rx::test::http(loop, "GET", sys.http_url("/api/profile"), token);
  REQUIRE(profile.status == 200);
  const json& user = profile.body["user"];
  CHECK(user["username"] == "alice");
  CHECK(user["email"] == "alice@example.com");
  CHECK(user["tier"] == "free");
  CHECK(user["is_admin"] == false);
  CHECK(user["id"] == validate.body["user_id"]);
  CHECK(profile.body["limits"]["max_agents"] == 5);
  CHECK(profile.body["stats"]["agents"] == 0);

  // One agent online (the Go one, with its system_info and a stats sample), one never seen.
  GoAgent go(sys, token, "go-1");
  GoAgent idle(sys, token, "idle");
  REQUIRE(go.connect());
  REQUIRE(sys.wait_online(token, go.id));
  go.send("stats", {{"cpu_percent", 12.5},
                    {"memory", 1024},
                    {"memory_limit", 4096},
                    {"disk_usage", 1},
                    {"disk_limit", 2},
                    {"load1", 0.5},
                    {"load5", 0.25},
                    {"load15", 0.125},
                    {"uptime_s", 60},
                    {"sessions", 0}});
  // The entry of `agent` in a containers answer (null when missing).
  const auto entry = [](const json& answer, const std::string& agent) {
    for (const json& c : answer["containers"]) {
      if (c["id"] == "agent:" + agent) return c;
    }
    return json(nullptr);
  };
  json running;
  REQUIRE(loop.run_until(
      [&] {
        auto r = rx::test::http(loop, "GET", sys.http_url("/api/containers"), token);
        if (r.status != 200 || r.body["count"] != 2) return false;
        running = entry(r.body, go.id);
        return running.contains("stats") && running["stats"].is_object();
      },
      10s));
  CHECK(running["id"] == "agent:" + go.id);
  CHECK(running["session_type"] == "agent");
  CHECK(running["status"] == "running");
  CHECK(running["image"] == "linux/amd64");
  CHECK(running["name"] == "go-1");
  CHECK(running["hostname"] == "go-host");
  CHECK(running["region"] == "eu-west");
  CHECK(running["resources"] ==
        json{{"memory_mb", 4096}, {"cpu_shares", 2048}, {"disk_mb", 20480}});
  CHECK(running["stats"]["cpu_percent"] == 12.5);
  auto all = rx::test::http(loop, "GET", sys.http_url("/api/containers"), token);
  const json never = entry(all.body, idle.id);
  CHECK(never["status"] == "offline");
  CHECK(never["last_used_at"].is_null());
  CHECK_FALSE(never.contains("hostname"));
  CHECK_FALSE(never.contains("stats"));
  CHECK(rx::test::http(loop, "GET", sys.http_url("/api/profile"), token)
            .body["stats"]["agents_online"] == 1);

  // The public CLI connects to `agent:<uuid>` at /ws/agent/<uuid>/terminal?token=...
  TestSocket cli(loop);
  REQUIRE(cli.open(sys.ws_url("/ws/agent/" + go.id + "/terminal?token=" + token), "", "rexec.v1"));
  resize(cli, 150, 50);
  REQUIRE(go.run_until([&] { return go.sizes_of("main").size() == 1; }));
  CHECK(go.sizes_of("main")[0] == "150x50");

  // Gone: offline, and only what is stored.
  go.ws.close();
  REQUIRE(loop.run_until(
      [&] {
        auto r = rx::test::http(loop, "GET", sys.http_url("/api/containers"), token);
        return r.status == 200 && entry(r.body, go.id)["status"] == "offline";
      },
      10s));
  const json gone =
      entry(rx::test::http(loop, "GET", sys.http_url("/api/containers"), token).body, go.id);
  CHECK_FALSE(gone.contains("hostname"));
  CHECK(gone["last_used_at"].is_string());
  CHECK(gone["resources"]["memory_mb"] == 4096);  // from the stored system_info
}
