// SPDX-License-Identifier: MIT
// The shell keeper: a small process that is the parent of an agent's shells and holds their PTY
// masters and output rings, so the shells outlive the agent (a restart, an upgrade, a crash).
// The agent reads and writes the PTYs itself, with descriptors the keeper passes it over a Unix
// socket (SCM_RIGHTS); the keeper is off the data path. docs/architecture.md, "Shell handover",
// has the design and its limits.
//
// The wire between them is a SOCK_SEQPACKET socket in the abstract namespace,
// "@rexec-agent-keeper/<agent id>", one JSON object per packet, descriptors as ancillary data.
// Both ends check the other's uid (SO_PEERCRED) before trusting it: an abstract socket has no
// file permissions.
//
//   agent → keeper                         keeper → agent
//   hello {grace_ms}                       shell {id,pid,exited,exit_code,signal,cgroup} + [master,
//   ring]
//                                          … one per kept shell, then ready {cgroup_root?}
//   spawn {id,shell,cols,rows}             spawned {id,pid} + [master, ring] | spawn_failed
//   {id,error} terminate {id,grace_ms}                (exited follows) release {id} —
//                                          exited {id,exit_code,signal}   (any time)
//
// Both sides are in this one binary, but an upgrade runs a new agent against an old keeper:
// messages gain fields, never change their meaning ("v" in hello and ready says which).
#pragma once

#include "rexec/agent/output_ring.h"
#include "rexec/common/result.h"
#include "rexec/common/unique_fd.h"
#include "rexec/pty/pty_process.h"
#include "rexec/uvx/child_reaper.h"
#include "rexec/uvx/timer.h"
#include "rexec/uvx/uv_handle.h"

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <chrono>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rx::agent {

// One packet on the keeper socket: a JSON object and the descriptors that came with it.
struct KeeperPacket {
  nlohmann::json body;
  std::vector<UniqueFd> fds;
};

// A shell the keeper holds, as the agent receives it.
struct KeptShell {
  std::string id;
  pid_t pid = -1;
  UniqueFd master;
  std::optional<OutputRing> ring;
  std::optional<uvx::ExitStatus> exited;  // set when it ended while no agent was attached
  std::string cgroup;                     // its cgroup directory, or empty
};

// The agent's end of the keeper socket.
//
// Requests are synchronous: spawning a shell was already a fork and an exec on the loop thread;
// going through the keeper adds one round trip on a local socket. Reports that arrive while a
// request waits (exited) are delivered on the next loop turn.
// Thread/loop: loop thread only. Lifetime: the loop and the reaper outlive it.
class KeeperLink {
 public:
  struct Handlers {
    std::function<void(const std::string& id, uvx::ExitStatus)> on_exit;
    std::function<void()> on_lost;  // the keeper went away; called once; must not destroy the link
  };

  // Connects to the keeper of `agent_id` and says hello; the shells it already held are in
  // take_kept(). When none answers: starts one (this binary, `keeper` subcommand) if `start`,
  // else kUnavailable.
  // Errors: kSystem (socket, spawn), kTimeout (no keeper within 5 s), kPermission (the socket's
  // owner is another user), kBadValue (a malformed answer).
  [[nodiscard]] static Result<std::unique_ptr<KeeperLink>> open(uv_loop_t* loop,
                                                                uvx::ChildReaper& reaper,
                                                                const std::string& agent_id,
                                                                std::chrono::milliseconds grace,
                                                                bool start, Handlers handlers);
  ~KeeperLink();
  KeeperLink(const KeeperLink&) = delete;
  KeeperLink& operator=(const KeeperLink&) = delete;
  KeeperLink(KeeperLink&&) = delete;
  KeeperLink& operator=(KeeperLink&&) = delete;

  [[nodiscard]] std::vector<KeptShell> take_kept() { return std::move(kept_); }

  // True once the keeper has gone (on_lost was called); every request then fails with kClosed.
  [[nodiscard]] bool lost() const { return lost_; }

  // Where the keeper wants session cgroups: its systemd scope's cgroup; empty when it runs
  // outside a scope (sessions then go under the agent's cgroup).
  [[nodiscard]] const std::string& cgroup_root() const { return cgroup_root_; }

  [[nodiscard]] pid_t keeper_pid() const { return keeper_pid_; }

  // Starts a shell as the keeper's child, in the cgroup `cgroup` (empty: none) whose open
  // cgroup.procs is `cgroup_procs` (passed to the keeper). Errors: the spawn's own, as the keeper
  // reports it; kClosed/kTimeout when the keeper does not answer.
  [[nodiscard]] Result<KeptShell> spawn(const std::string& id, const std::string& shell,
                                        std::optional<pty::PtySize> size, const std::string& cgroup,
                                        int cgroup_procs);

  // SIGHUP (and SIGCONT) to the shell's group now, SIGKILL after `grace`; exited follows.
  void terminate(const std::string& id, std::chrono::milliseconds grace);

  // The agent is done with a shell that exited: the keeper closes its descriptors.
  void release(const std::string& id);

 private:
  KeeperLink(uv_loop_t* loop, uvx::ChildReaper& reaper, UniqueFd fd, Handlers handlers);
  Result<KeeperPacket> request(const nlohmann::json& body,
                               std::initializer_list<std::string_view> answers,
                               const std::vector<int>& fds = {});
  Result<KeptShell> kept_from(KeeperPacket& p);
  void on_readable();
  void dispatch(KeeperPacket& p);
  void lose(const std::string& why);

  uvx::ChildReaper& reaper_;
  pid_t started_ = -1;  // the keeper we started, while it is our child; unwatched at the end
  UniqueFd fd_;
  uvx::UvHandle<uv_poll_t> poll_;
  Handlers handlers_;
  uvx::Timer deliver_;                // hands over reports queued during a request
  std::deque<KeeperPacket> pending_;  // those reports
  std::vector<KeptShell> kept_;
  std::string cgroup_root_;
  pid_t keeper_pid_ = -1;
  bool lost_ = false;
};

// The peer of a connected Unix socket runs as our own user (an abstract socket has no
// permissions of its own): returns its pid. Errors: kPermission for another user, kSystem.
[[nodiscard]] Result<pid_t> check_peer_uid(int fd);

// The keeper process's main loop (`rexec-agent keeper --agent-id ID`). Returns when no agent is
// attached and no shell is left to keep (or it gave up waiting for an agent: then its shells
// got SIGHUP, and SIGKILL 5 s later).
int run_keeper(const std::string& agent_id);

// "\0rexec-agent-keeper/<agent id>" as a sockaddr path (with its leading NUL).
std::string keeper_address(const std::string& agent_id);

}  // namespace rx::agent
