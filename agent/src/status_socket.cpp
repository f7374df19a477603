// SPDX-License-Identifier: MIT
// The status socket: the agent's end (StatusSocket) and the `status` command's (query_status).
#include "status_socket.h"

#include "rexec/agent/agent.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "keeper.h"

namespace rx::agent {

namespace {

constexpr std::size_t kMaxAnswerBytes = 256U * 1024U;  // 64 sessions need about 8 KiB

sockaddr_un status_address(const std::string& agent_id, socklen_t& len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = std::string(1, '\0') + "rexec-agent-status/" + agent_id;
  const std::size_t n = std::min(path.size(), sizeof(a.sun_path));
  std::memcpy(a.sun_path, path.data(), n);
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  return a;
}

}  // namespace

Result<std::unique_ptr<StatusSocket>> StatusSocket::open(uv_loop_t* loop,
                                                         const std::string& agent_id,
                                                         Snapshot snapshot) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("socket", errno);
  socklen_t len = 0;
  const sockaddr_un a = status_address(agent_id, len);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) {
    return Error::from_errno("bind(status socket)", errno);
  }
  if (::listen(fd.get(), 4) != 0) return Error::from_errno("listen(status socket)", errno);
  std::unique_ptr<StatusSocket> s(new StatusSocket(std::move(fd), std::move(snapshot)));
  auto* p = new uv_poll_t();  // NOLINT(cppcoreguidelines-owning-memory): UvHandle frees it
  if (const int rc = uv_poll_init(loop, p, s->fd_.get()); rc != 0) {
    delete p;  // NOLINT(cppcoreguidelines-owning-memory): never initialised
    return Error::from_uv("uv_poll_init", rc);
  }
  s->poll_ = uvx::UvHandle<uv_poll_t>(p);
  p->data = s.get();
  uv_poll_start(p, UV_READABLE,
                [](uv_poll_t* h, int, int) { static_cast<StatusSocket*>(h->data)->on_accept(); });
  return s;
}

void StatusSocket::on_accept() {
  for (;;) {
    UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!c) return;
    if (!check_peer_uid(c.get())) continue;  // closed unanswered
    // A small answer into an empty socket buffer: one send; a reader too slow for that loses it.
    const std::string text = snapshot_().dump() + "\n";
    (void)::send(c.get(), text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

Result<nlohmann::json> query_status(const std::string& agent_id,
                                    std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket", errno);
  socklen_t len = 0;
  const sockaddr_un a = status_address(agent_id, len);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), len) != 0) {
    if (errno == ECONNREFUSED || errno == ENOENT) {
      return Error(Errc::kUnavailable, "nothing answers on the agent's status socket");
    }
    return Error::from_errno("connect(status socket)", errno);
  }
  std::string text;
  std::array<char, 4096> buf{};
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
      return Error(Errc::kTimeout, "the agent did not answer on its status socket");
    }
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("read(status socket)", errno);
    if (n == 0) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
    if (text.size() > kMaxAnswerBytes) return Error(Errc::kBadValue, "status answer too long");
  }
  if (text.empty()) {
    return Error(Errc::kPermission,
                 "the agent closed its status socket unanswered (it answers only its own user)");
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return Error(Errc::kBadValue, "the status answer is not a JSON object");
  return j;
}

}  // namespace rx::agent
