// SPDX-License-Identifier: MIT
// Every message of both families round-trips; golden JSON pins the exact wire shapes of PROTOCOL
// §3, §4 and §8; encoding never throws on text that is not UTF-8.
#include "rexec/proto/message_codec.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "test_messages.h"

using namespace rx::proto;
using nlohmann::json;
using rx::Errc;
using rx::proto::test::all_agent_messages;
using rx::proto::test::all_user_messages;

TEST_CASE("every agent-socket message round-trips", "[proto]") {
  for (const AgentMessage& m : all_agent_messages()) {
    const std::string text = encode(m);
    INFO(text);
    auto back = decode_agent_message(text);
    REQUIRE(back);
    CHECK(*back == m);
    CHECK(encode(*back) == text);  // encode → decode → encode is stable
    CHECK(json::parse(text)["type"] == type_name(m));
    // The per-struct overload writes the same bytes as the variant form.
    CHECK(std::visit([](const auto& x) { return encode(x); }, m) == text);
  }
}

TEST_CASE("every user-socket message round-trips", "[proto]") {
  for (const UserMessage& m : all_user_messages()) {
    const std::string text = encode(m);
    INFO(text);
    auto back = decode_user_message(text);
    REQUIRE(back);
    CHECK(*back == m);
    CHECK(encode(*back) == text);
    CHECK(json::parse(text)["type"] == type_name(m));
    CHECK(std::visit([](const auto& x) { return encode(x); }, m) == text);
  }
}

TEST_CASE("golden: agent socket messages", "[proto]") {
  CHECK(encode(ShellOutput{"main", "hi", std::nullopt}) ==
        R"({"type":"shell_output","data":{"session_id":"main","data":"aGk="}})");
  CHECK(encode(ShellOutput{"main", "hi", 5}) ==
        R"({"type":"shell_output","data":{"session_id":"main","data":"aGk=","offset":5}})");
  CHECK(encode(ShellInput{"main", "ls\n"}) ==
        R"({"type":"shell_input","data":{"session_id":"main","data":"bHMK"}})");
  CHECK(encode(ShellStart{"split-abc", true, 120, 40, 4096}) ==
        R"({"type":"shell_start","data":{"session_id":"split-abc","new_session":true,)"
        R"("cols":120,"rows":40,"resume_offset":4096}})");
  CHECK(encode(ShellStart{"main", false, std::nullopt, std::nullopt, std::nullopt}) ==
        R"({"type":"shell_start","data":{"session_id":"main","new_session":false}})");
  CHECK(encode(ShellResize{"main", 80, 24}) ==
        R"({"type":"shell_resize","data":{"session_id":"main","cols":80,"rows":24}})");
  CHECK(encode(ShellStop{}) == R"({"type":"shell_stop"})");
  CHECK(encode(ShellFlow{"main", true}) ==
        R"({"type":"shell_flow","data":{"session_id":"main","paused":true}})");
  CHECK(encode(Ping{}) == R"({"type":"ping"})");
  CHECK(encode(Pong{}) == R"({"type":"pong","data":null})");
  CHECK(encode(ShellStopped{"main", 0, std::nullopt}) ==
        R"({"type":"shell_stopped","data":{"session_id":"main","exit_code":0}})");
  CHECK(encode(ExecResult{"x", "out\n\"q\"", false, -1, std::string("timed out"), std::nullopt}) ==
        R"({"type":"exec_result","data":{"command":"x","output":"out\n\"q\"","success":false,)"
        R"("exit_code":-1,"error":"timed out"}})");
  CHECK(encode(rx::proto::test::sample_stats()) ==
        R"({"type":"stats","data":{"cpu_percent":12.5,"memory":1073741824,)"
        R"("memory_limit":2147483648,"disk_usage":3221225472,"disk_limit":4294967296,)"
        R"("load1":0.5,"load5":0.25,"load15":0.125,"uptime_s":3600,"sessions":2}})");
  CHECK(encode(rx::proto::test::sample_system_info()) ==
        R"({"type":"system_info","data":{"hostname":"box","num_cpu":8,)"
        R"("memory":{"total":17179869184,"available":8589934592,"free":4294967296},)"
        R"("disk":{"total":107374182400,"available":53687091200,"free":59055800320},)"
        R"j("region":"eu","os":"linux","arch":"amd64","distro":"Debian GNU/Linux 12 (bookworm)",)j"
        R"("kernel":"6.1.0","agent_version":"0.1.0","shell":"/bin/bash"}})");
}

TEST_CASE("stats: isolation and per-session usage, ours, only when set", "[proto]") {
  Stats s = rx::proto::test::sample_stats();
  s.isolation = "cgroup";
  s.session_usage = {{"main", 1500, 4096, 2}, {"split-a", 7, std::nullopt, 1}};
  const std::string text = encode(s);
  CHECK(text.find(R"("sessions":2,"isolation":"cgroup","session_usage":[)"
                  R"({"session_id":"main","cpu_usec":1500,"memory":4096,"pids":2},)"
                  R"({"session_id":"split-a","cpu_usec":7,"pids":1}]})") != std::string::npos);
  auto back = rx::proto::decode_agent_message(text);  // what the server reads
  REQUIRE(back);
  const auto* got = std::get_if<Stats>(&*back);
  REQUIRE(got != nullptr);
  CHECK(*got == s);
  auto bad = rx::proto::decode_agent_message(
      R"({"type":"stats","data":{"cpu_percent":1,"memory":1,"memory_limit":1,"disk_usage":1,)"
      R"("disk_limit":1,"load1":0,"load5":0,"load15":0,"uptime_s":1,"sessions":1,)"
      R"("session_usage":[{"session_id":"bad id!","cpu_usec":1,"pids":1}]}})");
  CHECK_FALSE(bad);
}

TEST_CASE("golden: file transfer messages", "[proto]") {
  CHECK(encode(FileGet{"t1", "/etc/hostname"}) ==
        R"({"type":"file_get","data":{"transfer_id":"t1","path":"/etc/hostname"}})");
  CHECK(encode(FilePut{"t2", "/tmp/x", 42, 0644}) ==
        R"({"type":"file_put","data":{"transfer_id":"t2","path":"/tmp/x","size":42,"mode":420}})");
  CHECK(encode(FileData{"t2", 7, std::string("\x00\x01\x02", 3)}) ==
        R"({"type":"file_data","data":{"transfer_id":"t2","seq":7,"data":"AAEC"}})");
  CHECK(encode(FileError{"t2", "denied", std::nullopt}) ==
        R"({"type":"file_error","data":{"transfer_id":"t2","error":"denied"}})");
  CHECK(encode(FileError{"t2", "denied", 403}) ==
        R"({"type":"file_error","data":{"transfer_id":"t2","error":"denied","status":403}})");
  CHECK(encode(FileInfo{"t2", 5, 0644, 9}) ==
        R"({"type":"file_info","data":{"transfer_id":"t2","size":5,"mode":420,"mtime":9}})");
  CHECK(encode(FileAck{"t2", 65536}) ==
        R"({"type":"file_ack","data":{"transfer_id":"t2","bytes":65536}})");
  CHECK(encode(FileListResult{"t3", "/", {{"etc", "dir", 4096, 0755, 1}}, true}) ==
        R"({"type":"file_list_result","data":{"transfer_id":"t3","path":"/","entries":[)"
        R"({"name":"etc","type":"dir","size":4096,"mode":493,"mtime":1}],"truncated":true}})");
}

TEST_CASE("file_list_result: entries must be objects, with a bounded count", "[proto]") {
  CHECK(decode_agent_message(
            R"({"type":"file_list_result","data":{"transfer_id":"t","path":"/","entries":[1]}})")
            .error()
            .code == Errc::kBadField);
  CHECK(decode_agent_message(
            R"({"type":"file_list_result","data":{"transfer_id":"t","path":"/","entries":{}}})")
            .error()
            .code == Errc::kBadField);
  std::string many =
      R"({"type":"file_list_result","data":{"transfer_id":"t","path":"/","entries":[)";
  for (std::size_t i = 0; i <= kMaxListEntries; ++i) {
    many += std::string(i == 0 ? "" : ",") +
            R"({"name":"n","type":"file","size":0,"mode":0,"mtime":0})";
  }
  many += "]}}";
  CHECK(decode_agent_message(many).error().code == Errc::kBadValue);
  CHECK(decode_agent_message(
            R"({"type":"file_info","data":{"transfer_id":"t","size":1,"mode":4096,"mtime":0}})")
            .error()
            .code == Errc::kBadValue);
}

TEST_CASE("golden: user socket messages", "[proto]") {
  CHECK(encode(Resize{100, 30}) == R"({"type":"resize","cols":100,"rows":30})");
  CHECK(encode(Input{"echo hi\r"}) == R"({"type":"input","data":"echo hi\r"})");
  CHECK(encode(UserExec{"id"}) == R"({"type":"exec","data":{"command":"id"}})");
  CHECK(encode(UserPing{}) == R"({"type":"ping"})");
  CHECK(encode(UserPong{}) == R"({"type":"pong"})");
  CHECK(encode(UserFlow{true}) == R"({"type":"flow","data":{"paused":true}})");
  CHECK(encode(Output{"x\x1b", 99}) == R"({"type":"output","data":"x\u001b","offset":99})");
  CHECK(encode(OffsetMsg{7}) == R"({"type":"offset","data":7})");
  CHECK(encode(Gap{10, 20}) == R"({"type":"gap","data":{"from":10,"to":20}})");
  CHECK(encode(AgentDisconnected{"a-1"}) ==
        R"({"type":"agent_disconnected","data":{"agent_id":"a-1"}})");
  CHECK(encode(AgentConnected{std::nullopt}) == R"({"type":"agent_connected"})");
  CHECK(encode(AgentConnected{"a-1"}) == R"({"type":"agent_connected","data":{"agent_id":"a-1"}})");
}

TEST_CASE("decode ignores extra keys, key order and white space", "[proto]") {
  auto in = decode_agent_message(
      " {\"data\" : {\"x\":[1,{}],\"data\":\"bHMK\", \"session_id\":\"main\"},\n"
      "  \"extra\":1, \"type\":\"shell_input\"} ");
  REQUIRE(in);
  CHECK(std::get<ShellInput>(*in) == ShellInput{"main", "ls\n"});
  auto r = decode_user_message(R"({"type":"resize","cols":80,"rows":24,"data":{"cols":1}})");
  REQUIRE(r);
  CHECK(std::get<Resize>(*r) == Resize{80, 24});
  // The user socket's exec has no timeout: the field is ignored there.
  auto e = decode_user_message(R"({"type":"exec","data":{"command":"id","timeout_s":5}})");
  REQUIRE(e);
  CHECK(std::get<UserExec>(*e) == UserExec{"id"});
}

TEST_CASE("the same type name decodes to each socket's own shape", "[proto]") {
  const std::string exec = R"({"type":"exec","data":{"command":"ls","timeout_s":3}})";
  CHECK(std::get<Exec>(*decode_agent_message(exec)) == Exec{"ls", 3, std::nullopt});
  CHECK(std::holds_alternative<UserExec>(*decode_user_message(exec)));
  CHECK(std::holds_alternative<Pong>(*decode_agent_message(R"({"type":"pong","data":null})")));
  CHECK(std::holds_alternative<UserPong>(*decode_user_message(R"({"type":"pong"})")));
  // A JSON ping may carry any data (PROTOCOL §3.2).
  CHECK(std::holds_alternative<Ping>(*decode_agent_message(R"({"type":"ping","data":[1,"x"]})")));
}

TEST_CASE("exec: exec_id travels both ways, and a Go agent's result gets an exit code", "[proto]") {
  CHECK(encode(Exec{"ls", 5, std::string("e1")}) ==
        R"({"type":"exec","data":{"command":"ls","timeout_s":5,"exec_id":"e1"}})");
  CHECK(encode(ExecResult{"ls", "a\n", true, 0, std::nullopt, std::string("e1")}) ==
        R"({"type":"exec_result","data":{"command":"ls","output":"a\n","success":true,)"
        R"("exit_code":0,"exec_id":"e1"}})");
  auto bad_id = decode_agent_message(R"({"type":"exec","data":{"command":"ls","exec_id":"a b"}})");
  REQUIRE_FALSE(bad_id);
  CHECK(bad_id.error().code == Errc::kBadSessionId);
  // The deployed Go agent: {"command","output","success","error"?}, no exit_code; its error is
  // the text of Go's exec.ExitError.
  const auto go = [](const std::string& tail) {
    auto r = decode_agent_message(
        R"({"type":"exec_result","data":{"command":"c","output":"o","success":)" + tail + "}}");
    REQUIRE(r);
    return std::get<ExecResult>(*r);
  };
  CHECK(go("true").exit_code == 0);
  CHECK(go(R"(false,"error":"exit status 3")").exit_code == 3);
  CHECK(go(R"(false,"error":"exit status 3")").error == "exit status 3");
  CHECK(go(R"(false,"error":"signal: killed")").exit_code == 137);
  CHECK(go(R"j(false,"error":"signal: segmentation fault (core dumped)")j").exit_code == 139);
  CHECK(go(R"(false,"error":"signal: terminated")").exit_code == 143);
  CHECK(go(R"(false,"error":"exec: \"/bin/nosh\": stat /bin/nosh: no such file")").exit_code == -1);
  CHECK(go(R"(false,"error":"exit status 3x")").exit_code == -1);
  CHECK(go("false").exit_code == -1);
  // An exit_code that is sent wins.
  CHECK(go(R"(false,"exit_code":7,"error":"exit status 3")").exit_code == 7);
}

TEST_CASE("shell_start: defaults, null optionals and out-of-range sizes", "[proto]") {
  auto r = decode_agent_message(R"({"type":"shell_start","data":{"session_id":"main"}})");
  REQUIRE(r);
  CHECK(std::get<ShellStart>(*r) ==
        ShellStart{"main", false, std::nullopt, std::nullopt, std::nullopt});
  auto nulls = decode_agent_message(
      R"({"type":"shell_start","data":{"session_id":"main","cols":null,"resume_offset":null}})");
  REQUIRE(nulls);
  CHECK_FALSE(std::get<ShellStart>(*nulls).cols.has_value());
  // A bad optional size must not cost the user a shell: it reads as absent.
  for (const char* cols : {"0", "10001", "-5", "18446744073709551615"}) {
    auto s = decode_agent_message(std::string(R"({"type":"shell_start","data":{"session_id":)") +
                                  R"("main","cols":)" + cols + R"(,"rows":24}})");
    INFO(cols);
    REQUIRE(s);
    CHECK_FALSE(std::get<ShellStart>(*s).cols.has_value());
    CHECK(std::get<ShellStart>(*s).rows == std::optional<std::uint16_t>(24));
  }
}

TEST_CASE("agent_connected with or without data", "[proto]") {
  auto bare = decode_user_message(R"({"type":"agent_connected"})");
  REQUIRE(bare);
  CHECK(std::get<AgentConnected>(*bare) == AgentConnected{std::nullopt});
  auto empty = decode_user_message(R"({"type":"agent_connected","data":{}})");
  REQUIRE(empty);
  CHECK_FALSE(std::get<AgentConnected>(*empty).agent_id.has_value());
  auto bad = decode_user_message(R"({"type":"agent_connected","data":{"agent_id":5}})");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::kBadField);
}

TEST_CASE("text that is not UTF-8 encodes as U+FFFD and never throws", "[proto]") {
  const std::string bad("a\xff\xfe", 3);
  const std::string replaced = "a\xef\xbf\xbd\xef\xbf\xbd";
  std::string text;
  REQUIRE_NOTHROW(text = encode(Output{bad, std::nullopt}));
  CHECK(json::parse(text)["data"].get<std::string>() == replaced);
  auto back = decode_user_message(text);
  REQUIRE(back);
  CHECK(std::get<Output>(*back).data == replaced);
  // Every other text field goes through the same path.
  REQUIRE_NOTHROW(text = encode(ExecResult{bad, bad, true, 0, bad, std::nullopt}));
  CHECK(json::parse(text)["data"]["output"].get<std::string>() == replaced);
  REQUIRE_NOTHROW(text = encode(ShellError{"main", bad}));
  CHECK(decode_agent_message(text));
  REQUIRE_NOTHROW(text = encode(Input{bad}));
  CHECK(decode_user_message(text));
}

TEST_CASE("hot-path encoders write the same bytes as the structs", "[proto]") {
  const std::string bytes("\x1b[1m\x00\xff", 6);
  CHECK(encode_shell_output("main", bytes, 42) == encode(ShellOutput{"main", bytes, 42}));
  CHECK(encode_shell_output("main", bytes, std::nullopt) ==
        encode(ShellOutput{"main", bytes, std::nullopt}));
  CHECK(encode_shell_input("split-1", bytes) == encode(ShellInput{"split-1", bytes}));
  CHECK(encode_output("h\xc3\xa9", 3) == encode(Output{"h\xc3\xa9", 3}));
}

TEST_CASE("an invalid id still encodes to valid JSON that decode refuses", "[proto]") {
  const std::string text = encode(ShellOutput{"a\"b\\", "x", std::nullopt});
  REQUIRE_NOTHROW(json::parse(text));
  auto r = decode_agent_message(text);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::kBadSessionId);
}

TEST_CASE("non-finite stats are sent as 0", "[proto]") {
  Stats s = rx::proto::test::sample_stats();
  s.cpu_percent = std::numeric_limits<double>::quiet_NaN();
  s.load1 = std::numeric_limits<double>::infinity();
  auto back = decode_agent_message(encode(s));
  REQUIRE(back);
  CHECK(std::get<Stats>(*back).cpu_percent == 0.0);
  CHECK(std::get<Stats>(*back).load1 == 0.0);
  CHECK(std::get<Stats>(*back).load5 == s.load5);
}

TEST_CASE("numbers keep their full range", "[proto]") {
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
  const AgentMessage out = ShellOutput{"main", "x", big};
  CHECK(*decode_agent_message(encode(out)) == out);
  const AgentMessage stopped = ShellStopped{"main", std::numeric_limits<int>::min(), 0};
  CHECK(*decode_agent_message(encode(stopped)) == stopped);
  const UserMessage gap = Gap{0, big};
  CHECK(*decode_user_message(encode(gap)) == gap);
}
