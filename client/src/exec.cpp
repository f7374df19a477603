// SPDX-License-Identifier: MIT
#include "exec.h"

#include "rexec/net/http_client.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string_view>

#include "copy_format.h"

namespace rx::client {

namespace {

// ssh's convention: 255 is the tool's own failure, so a script can tell it from the command's.
constexpr int kNotRun = 255;

// The server answers by the command's timeout plus its grace (15 s, or 30 s when it relays the
// command to another instance); the client waits a little longer than that for the first byte.
constexpr std::chrono::seconds kAnswerGrace{45};

// Agent output is capped at 1 MiB; JSON escaping can make each byte up to six.
constexpr std::size_t kMaxAnswerBytes = 8U << 20U;

int fail(const std::string& sentence) {
  std::fprintf(stderr, "rexec: %s\n", sentence.c_str());
  return kNotRun;
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

int run_exec(const Target& target, const std::string& command, std::uint32_t timeout_s) {
  auto url = net::Url::parse(target.server + "/api/agents/" + target.agent_id + "/exec");
  if (!url) return fail("bad server URL: " + url.error().message);
  net::HttpRequest req;
  req.method = "POST";
  req.url = *url;
  req.headers = {{"authorization", "Bearer " + target.token}};
  req.body = nlohmann::json{{"command", command}, {"timeout_s", timeout_s}}.dump();
  req.max_response_bytes = kMaxAnswerBytes;
  const auto wait = std::chrono::seconds(timeout_s) + kAnswerGrace;
  req.idle_timeout = wait;
  auto r = net::fetch_blocking(std::move(req), {}, wait + std::chrono::seconds(10));
  if (!r) return fail("cannot reach " + target.server + ": " + r.error().message);
  if (r->status != 200) return fail(server_error_text(r->status, r->body));
  const auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("output") || !j["output"].is_string() ||
      !j.contains("exit_code") || !j["exit_code"].is_number_integer()) {
    return fail("unexpected answer from the server");
  }
  if (!write_all(STDOUT_FILENO, j["output"].get_ref<const std::string&>())) {
    return fail("cannot write the output");
  }
  if (j.contains("error") && j["error"].is_string()) {
    std::fprintf(stderr, "rexec: %s\n", j["error"].get_ref<const std::string&>().c_str());
  }
  const auto code = j["exit_code"].get<long long>();
  return code >= 0 && code <= 255 ? static_cast<int>(code) : kNotRun;
}

}  // namespace rx::client
