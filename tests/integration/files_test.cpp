// SPDX-License-Identifier: MIT
// File transfers end to end (PROTOCOL §8): curl and `rexec cp` against a real server and a real
// agent writing to real file systems (a tmpfs the test mounts, where it may).
#include "rexec/net/sha256.h"

#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "online_agent.h"

using rx::test::Process;
using rx::test::run_program;
using rx::test::TestSocket;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Random-looking bytes from a fixed seed, written in 1 MiB pieces.
void make_file(const std::string& path, std::uint64_t size, std::uint32_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::mt19937_64 rng(seed);
  std::string buf(1U << 20U, '\0');
  while (size > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, buf.size()));
    for (std::size_t i = 0; i + 8 <= n; i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(buf.data() + i, &v, 8);
    }
    for (std::size_t i = n - n % 8; i < n; ++i) buf[i] = static_cast<char>(rng());
    out.write(buf.data(), static_cast<std::streamsize>(n));
    size -= n;
  }
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "missing";
  rx::net::Sha256 sha;
  std::string buf(1U << 20U, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    sha.update(std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
  }
  return sha.hex_digest();
}

// Percent-encodes a path for a query string.
std::string encode(const std::string& s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '/' || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      std::array<char, 4> h{};
      std::snprintf(h.data(), h.size(), "%%%02X", c);
      out += h.data();
    }
  }
  return out;
}

struct Curl {
  int status = 0;
  std::string body;  // the response body (or the file it was saved to, for downloads)
};

struct Setup : rx::test::OnlineAgent {
  std::string files;  // a directory for the test's files

  explicit Setup(rx::test::ServerOptions o = {}, const std::vector<std::string>& agent_env = {},
                 const std::vector<std::string>& prefix = {})
      : OnlineAgent(std::move(o), "alice", "files", agent_env, prefix, "pro"),
        files(sys.dir() + "/files") {
    fs::create_directories(files);
  }

  std::string url(const std::string& path, const std::string& route = "files") const {
    return sys.http_url("/api/agents/" + agent.id + "/" + route + "?path=" + encode(path));
  }

  std::vector<std::string> curl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {
        "/usr/bin/curl", "-sS", "--max-time", "120", "-H", "Authorization: Bearer " + token, "-w",
        "%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  Curl put(const std::string& local, const std::string& remote,
           const std::string& extra_query = "") const {
    const std::string out = sys.dir() + "/put.out";
    auto r = run_program(curl({"-T", local, "-o", out, url(remote) + extra_query}),
                         sys.dir() + "/curl.log", 180s);
    return {std::atoi(r.out.c_str()), rx::test::read_file(out)};
  }

  Curl get(const std::string& remote, const std::string& local) const {
    auto r = run_program(curl({"-o", local, url(remote)}), sys.dir() + "/curl.log", 180s);
    return {std::atoi(r.out.c_str()), rx::test::read_file(local)};
  }

  Curl list(const std::string& remote) const {
    const std::string out = sys.dir() + "/list.out";
    auto r = run_program(curl({"-o", out, url(remote, "files/list")}), sys.dir() + "/curl.log");
    return {std::atoi(r.out.c_str()), rx::test::read_file(out)};
  }
};

nlohmann::json parse(const std::string& s) { return nlohmann::json::parse(s, nullptr, false); }

// Files in `dir` whose name contains `part` (a leftover temporary file, say).
int count_named(const std::string& dir, const std::string& part) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(part) != std::string::npos) ++n;
  }
  return n;
}

// A tmpfs of `size` mounted for the test, where the kernel lets us (root, no user namespace
// restrictions); unmounted at the end.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
    fs::create_directories(dir);
    const std::string opts = "size=" + size + ",mode=0777";
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }

  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }

  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  SmallDisk(SmallDisk&&) = delete;
  SmallDisk& operator=(SmallDisk&&) = delete;

  [[nodiscard]] bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("files: binary round trips of 0 B, 1 B, 1 MiB + 1 and 200 MiB keep their checksums",
          "[integration][files][pg]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--max-upload", std::to_string(256U << 20U)};
  Setup s(o);
  const std::uint64_t sizes[] = {0, 1, (1U << 20U) + 1, 200U << 20U};
  for (const std::uint64_t size : sizes) {
    INFO("size " << size);
    const std::string src = s.files + "/src-" + std::to_string(size);
    const std::string remote = s.files + "/remote dir/up \"" + std::to_string(size) + "\".bin";
    const std::string back = s.files + "/back-" + std::to_string(size);
    fs::create_directories(s.files + "/remote dir");
    make_file(src, size, static_cast<std::uint32_t>(size) + 7U);
    const std::string want = sha256_file(src);
    auto up = s.put(src, remote, "&mode=0640");
    REQUIRE(up.status == 200);
    const auto j = parse(up.body);
    CHECK(j.value("sha256", "") == want);
    CHECK(j.value("size", std::uint64_t{0}) == size);
    CHECK(sha256_file(remote) == want);
    CHECK((fs::status(remote).permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    auto down = s.get(remote, back);
    CHECK(down.status == 200);
    CHECK(sha256_file(back) == want);
    CHECK(count_named(s.files + "/remote dir", ".rexec-") == 0);
    fs::remove(back);
    fs::remove(src);
    fs::remove(remote);
  }
}

TEST_CASE("files: a v1 agent link carries files as base64 JSON", "[integration][files]") {
  Setup s({}, {"REXEC_PROTOCOL=v1"});
  const std::string src = s.files + "/v1-src";
  make_file(src, (3U << 20U) + 5, 11);
  auto up = s.put(src, s.files + "/v1-remote");
  REQUIRE(up.status == 200);
  CHECK(sha256_file(s.files + "/v1-remote") == sha256_file(src));
  auto down = s.get(s.files + "/v1-remote", s.files + "/v1-back");
  CHECK(down.status == 200);
  CHECK(sha256_file(s.files + "/v1-back") == sha256_file(src));
  CHECK(s.agent.process->log().find("protocol=v1") != std::string::npos);
  // Both directions are counted in /metrics.
  const auto metrics = rx::test::http(s.sys.loop(), "GET", s.sys.http_url("/metrics")).raw;
  const std::string bytes = std::to_string((3U << 20U) + 5);
  CHECK(metrics.find("rexec_file_upload_bytes_total " + bytes) != std::string::npos);
  CHECK(metrics.find("rexec_file_download_bytes_total " + bytes) != std::string::npos);
  CHECK(metrics.find("rexec_file_transfers 0") != std::string::npos);
  // Replacing a file without naming a mode keeps the old file's.
  ::chmod((s.files + "/v1-remote").c_str(), 0600);
  REQUIRE(s.put(src, s.files + "/v1-remote").status == 200);
  CHECK((fs::status(s.files + "/v1-remote").permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("files: listing gives name, type, size, mode and mtime", "[integration][files][pg]") {
  Setup s;
  const std::string dir = s.files + "/list me";
  fs::create_directories(dir + "/sub");
  make_file(dir + "/a file", 1234, 1);
  ::chmod((dir + "/a file").c_str(), 0600);
  fs::create_symlink("a file", dir + "/link");
  auto r = s.list(dir);
  REQUIRE(r.status == 200);
  const auto j = parse(r.body);
  CHECK(j["path"] == dir);
  REQUIRE(j["entries"].size() == 3);
  CHECK(j["entries"][0]["name"] == "a file");  // sorted by name
  CHECK(j["entries"][0]["type"] == "file");
  CHECK(j["entries"][0]["size"] == 1234);
  CHECK(j["entries"][0]["mode"] == 0600);
  CHECK(j["entries"][0]["mtime"].get<std::int64_t>() > 1700000000);
  CHECK(j["entries"][1]["name"] == "link");
  CHECK(j["entries"][1]["type"] == "symlink");
  CHECK(j["entries"][2]["name"] == "sub");
  CHECK(j["entries"][2]["type"] == "dir");

  CHECK(s.list(s.files + "/nope").status == 404);
  CHECK(s.list(dir + "/a file").status == 400);  // not a directory
  CHECK(s.list("relative/path").status == 400);
}

TEST_CASE("files: errors come back with a clear text and the right status",
          "[integration][files][pg]") {
  // As root, the agent runs without capabilities so that file permissions apply to it.
  const std::vector<std::string> prefix =
      ::geteuid() == 0 ? std::vector<std::string>{"/usr/bin/setpriv", "--bounding-set", "-all",
                                                  "--inh-caps", "-all"}
                       : std::vector<std::string>{};
  rx::test::ServerOptions o;
  o.extra_args = {"--max-upload", "1000"};
  Setup s(o, {}, prefix);
  const std::string secret = s.files + "/secret";
  make_file(secret, 10, 3);
  ::chmod(secret.c_str(), 0);
  const std::string locked = s.files + "/locked";
  fs::create_directories(locked);
  ::chmod(locked.c_str(), 0555);
  const std::string small = s.files + "/small";
  make_file(small, 100, 4);

  auto r = s.get(s.files + "/missing", s.files + "/out");
  CHECK(r.status == 404);
  CHECK(parse(r.body)["error"] == s.files + "/missing: no such file or directory");
  r = s.get(secret, s.files + "/out");
  CHECK(r.status == 403);
  CHECK(parse(r.body)["error"] == secret + ": permission denied");
  r = s.get(s.files, s.files + "/out");
  CHECK(r.status == 400);
  CHECK(parse(r.body)["error"] == s.files + ": is a directory");
  r = s.get("etc/passwd", s.files + "/out");
  CHECK(r.status == 400);
  CHECK(parse(r.body)["error"] == "path must be absolute");

  r = s.put(small, locked + "/x");
  CHECK(r.status == 403);
  CHECK(parse(r.body)["error"] == locked + "/x: permission denied");
  r = s.put(small, s.files + "/no-dir/x");
  CHECK(r.status == 404);
  r = s.put(small, s.files);
  CHECK(r.status == 400);
  CHECK(parse(r.body)["error"] == s.files + ": is a directory");
  r = s.put(small, s.files + "/mode", "&mode=9");
  CHECK(r.status == 400);
  make_file(s.files + "/big", 1001, 5);
  r = s.put(s.files + "/big", s.files + "/too-big");
  CHECK(r.status == 413);
  CHECK(parse(r.body)["error"] == "file too large: the limit is 1000 bytes");
  CHECK_FALSE(fs::exists(s.files + "/too-big"));

  // Somebody else's agent does not exist for them; without a token nothing does.
  const std::string bob = s.sys.add_user("bob", "pro");
  auto other = run_program({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                            "Authorization: Bearer " + bob, s.url(small)},
                           s.sys.dir() + "/curl.log");
  CHECK(other.out == "404");
  auto anon =
      run_program({"/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", s.url(small)},
                  s.sys.dir() + "/curl.log");
  CHECK(anon.out == "401");
  // Nothing was left behind by any of it.
  CHECK(count_named(s.files, ".rexec-") == 0);
  CHECK(count_named(locked, "") == 0);
  ::chmod(locked.c_str(), 0755);
}

TEST_CASE("files: a full disk fails the upload with 507 and keeps the old file",
          "[integration][files]") {
  Setup s;
  const std::string disk = s.files + "/disk";
  SmallDisk tmpfs(disk, "1m");
  std::string target;
  std::unique_ptr<Setup> limited;
  if (tmpfs.mounted()) {
    target = disk + "/file";
  } else {
    // No mount here: the agent's file-size limit (ulimit -f) stands in for the full disk.
    WARN("cannot mount a tmpfs here: using ulimit -f for the full disk");
    limited = std::make_unique<Setup>(
        rx::test::ServerOptions{}, std::vector<std::string>{},
        std::vector<std::string>{"/bin/sh", "-c", "ulimit -f 1024 && exec \"$@\"", "sh"});
    target = limited->files + "/file";
  }
  Setup& on = limited ? *limited : s;
  make_file(on.files + "/old", 1000, 8);
  const std::string old_sha = sha256_file(on.files + "/old");
  REQUIRE(on.put(on.files + "/old", target).status == 200);
  make_file(on.files + "/big", 2U << 20U, 9);
  auto r = on.put(on.files + "/big", target);
  CHECK(r.status == 507);
  const std::string error = parse(r.body).value("error", "");
  CHECK(error.rfind(target + ": ", 0) == 0);
  CHECK((error.find("no space left") != std::string::npos ||
         error.find("file size limit") != std::string::npos));
  CHECK(sha256_file(target) == old_sha);
  CHECK(count_named(fs::path(target).parent_path().string(), ".rexec-") == 0);
  if (tmpfs.mounted()) {
    struct stat st {};

    REQUIRE(::stat(target.c_str(), &st) == 0);
    CHECK(st.st_size == 1000);
  }
}

TEST_CASE("files: killing the agent mid-upload leaves no partial file", "[integration][files]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--max-upload", std::to_string(256U << 20U)};
  Setup s(o);
  const std::string src = s.files + "/src";
  make_file(src, 64U << 20U, 12);
  const std::string target = s.files + "/landing/target";
  fs::create_directories(s.files + "/landing");
  // Slowed to ~8 MB/s, so the agent is surely killed in the middle.
  Process upload = Process::start(
      s.curl({"--limit-rate", "8M", "-T", src, "-o", s.sys.dir() + "/killed.out", s.url(target)}),
      s.sys.dir() + "/killed.log");
  REQUIRE(rx::test::wait_until(
      [&] { return s.agent.process->log().find("file upload started") != std::string::npos; },
      10s));
  std::this_thread::sleep_for(1s);
  s.agent.process->kill();
  const auto st = upload.wait(30s);
  REQUIRE(st);
  // The client is told (502 before any response byte), and nothing is in the directory.
  CHECK(rx::test::read_file(s.sys.dir() + "/killed.log").find("502") != std::string::npos);
  CHECK(count_named(s.files + "/landing", "") == 0);

  // A client that goes away mid-upload: the agent cancels, and again nothing is left.
  s.sys.restart_agent(s.agent);
  REQUIRE(s.sys.wait_online(s.token, s.agent.id));
  Process gone =
      Process::start(s.curl({"--limit-rate", "8M", "-T", src, "-o", "/dev/null", s.url(target)}),
                     s.sys.dir() + "/gone.log");
  REQUIRE(rx::test::wait_until(
      [&] { return s.agent.process->log().find("file upload started") != std::string::npos; },
      10s));
  std::this_thread::sleep_for(1s);
  gone.kill();
  CHECK(rx::test::wait_until(
      [&] { return s.agent.process->log().find("cancelled by the server") != std::string::npos; },
      10s));
  CHECK(count_named(s.files + "/landing", "") == 0);
}

TEST_CASE("files: transfers at once share the link with a terminal that stays responsive",
          "[integration][files]") {
  rx::test::ServerOptions o;
  o.extra_args = {"--max-upload", std::to_string(256U << 20U)};
  Setup s(o);
  const std::string big = s.files + "/big";
  make_file(big, 96U << 20U, 21);
  const std::string want = sha256_file(big);
  const std::string up_src = s.files + "/up";
  make_file(up_src, 48U << 20U, 22);
  TestSocket term(s.sys.loop());
  REQUIRE(term.open(s.sys.ws_url("/ws/agent/" + s.agent.id + "/terminal?id=files-term"), s.token,
                    "rexec.v2"));
  REQUIRE(term.wait_type("shell_started"));
  // Two slowed downloads and an upload at once: each holds its window on the agent's link.
  std::vector<Process> transfers;
  for (int i = 0; i < 2; ++i) {
    transfers.push_back(Process::start(
        s.curl({"--limit-rate", "24M", "-o", s.files + "/down-" + std::to_string(i), s.url(big)}),
        s.sys.dir() + "/down-" + std::to_string(i) + ".log"));
  }
  transfers.push_back(Process::start(
      s.curl({"--limit-rate", "24M", "-T", up_src, "-o", "/dev/null", s.url(s.files + "/up-copy")}),
      s.sys.dir() + "/up.log"));
  REQUIRE(rx::test::wait_until(
      [&] { return s.agent.process->log().find("file upload started") != std::string::npos; },
      10s));
  // Keystrokes echo while the transfers run (and the transfers are still running after).
  for (int i = 0; i < 5; ++i) {
    const std::string marker = "during-" + std::to_string(i);
    term.send_json({{"type", "input"}, {"data", "echo during-'" + std::to_string(i) + "'\n"}});
    CHECK(term.wait_output(marker, 5s));
  }
  bool still_running = false;
  for (auto& p : transfers) still_running = still_running || p.running();
  CHECK(still_running);
  for (auto& p : transfers) {
    const auto st = p.wait(120s);
    REQUIRE(st);
    CHECK(WEXITSTATUS(*st) == 0);
  }
  CHECK(sha256_file(s.files + "/down-0") == want);
  CHECK(sha256_file(s.files + "/down-1") == want);
  CHECK(sha256_file(s.files + "/up-copy") == sha256_file(up_src));
}

TEST_CASE("files: an MFA-locked agent refuses file transfers with 423", "[integration][files]") {
  Setup s;
  // The lock needs TOTP; the MFA suite covers enabling it. Here the lock is set in the
  // database directly when the store is SQLite.
  if (s.sys.on_postgres()) return;
  auto r = run_program({"/usr/bin/sqlite3", s.sys.db_path(),
                        "UPDATE agents SET mfa_locked = 1 WHERE id = '" + s.agent.id + "';"},
                       s.sys.dir() + "/sqlite.log");
  REQUIRE(r.exit_code == 0);
  auto got = s.get(s.files, s.files + "/out");
  CHECK(got.status == 423);
  CHECK(parse(got.body)["error"] == "terminal is MFA protected");
}

TEST_CASE("files: rexec cp up and down, by agent name, with checksums", "[integration][files]") {
  Setup s;
  const std::string config = s.sys.dir() + "/client.json";
  const std::vector<std::string> env = {"REXEC_CLIENT_CONFIG=" + config};
  const std::string log = s.sys.dir() + "/cp.log";
  auto login = run_program(
      {rx::test::client_binary(), "login", "--server", s.sys.http_url(), "--token", s.token}, log,
      30s, env);
  REQUIRE(login.exit_code == 0);
  const std::string src = s.files + "/cp src.bin";
  make_file(src, (5U << 20U) + 3, 31);
  fs::create_directories(s.files + "/agent side");
  // A remote path ending in '/' takes the local name; the agent is named "files".
  auto up = run_program({rx::test::client_binary(), "cp", src, "files:" + s.files + "/agent side/"},
                        log, 60s, env);
  CHECK(up.exit_code == 0);
  CHECK(sha256_file(s.files + "/agent side/cp src.bin") == sha256_file(src));
  fs::create_directories(s.files + "/back");
  auto down = run_program({rx::test::client_binary(), "cp",
                           "files:" + s.files + "/agent side/cp src.bin", s.files + "/back"},
                          log, 60s, env);
  CHECK(down.exit_code == 0);
  CHECK(sha256_file(s.files + "/back/cp src.bin") == sha256_file(src));
  // Not a terminal: nothing is printed on success.
  CHECK(rx::test::read_file(log).empty());
  auto missing = run_program(
      {rx::test::client_binary(), "cp", "files:" + s.files + "/nothing-here", s.files + "/back/x"},
      log, 60s, env);
  CHECK(missing.exit_code == 1);
  CHECK(rx::test::read_file(log).find("no such file or directory") != std::string::npos);
  CHECK_FALSE(fs::exists(s.files + "/back/x"));
  CHECK(count_named(s.files + "/back", ".rexec-") == 0);
}
