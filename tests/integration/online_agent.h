// SPDX-License-Identifier: MIT
// What most integration tests start from: a System, one user, and a real agent of theirs that
// is online. When it does not come online, the logs are printed and the test stops there.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "fixture.h"

namespace rx::test {

struct OnlineAgent {
  System sys;
  std::string token;
  System::Agent agent;

  // `env` and `prefix` are for `rexec-agent run` (System::start_agent); `tier` is the user's.
  explicit OnlineAgent(ServerOptions server, const std::string& user = "alice",
                       const std::string& agent_name = "test-agent",
                       const std::vector<std::string>& env = {},
                       const std::vector<std::string>& prefix = {},
                       const std::string& tier = "free")
      : sys(std::move(server)),
        token(sys.add_user(user, tier)),
        agent(sys.start_agent(token, agent_name, env, prefix)) {
    const bool online = sys.wait_online(token, agent.id);
    if (!online) sys.dump_logs();
    REQUIRE(online);
  }

  // The agent's terminal socket for connection `conn_id`, with `extra` query parameters.
  [[nodiscard]] std::string terminal_url(const std::string& conn_id,
                                         const std::string& extra = "") const {
    return sys.ws_url("/ws/agent/" + agent.id + "/terminal?id=" + conn_id + extra);
  }
};

}  // namespace rx::test
