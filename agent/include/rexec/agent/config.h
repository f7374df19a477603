// SPDX-License-Identifier: MIT
// AgentConfig: what rexec-agent knows about itself — the server, its id and token, and how to
// run shells. Read from the config file, then REXEC_* environment variables, then flags (flags
// win). The file is JSON, mode 0600, in a 0700 directory, because it holds the agent's token.
#pragma once

#include "rexec/common/result.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rx::agent {

struct AgentConfig {
  std::string server;    // base URL, e.g. https://rexec.example.com
  std::string agent_id;  // set by `register`
  std::string token;     // the agent's rexec_ token (or the user's, before registration)
  std::string name;
  std::string description;
  std::vector<std::string> tags;
  std::string shell;   // empty: $SHELL, then zsh, bash, sh
  std::string region;  // reported in system_info
  std::string log_level = "info";
  std::string ca_file;  // trust anchors for https/wss; empty: the system's (net/tls.h)
};

// /etc/rexec/agent.json when running as root, else $XDG_CONFIG_HOME/rexec/agent.json (default
// ~/.config/rexec/agent.json).
std::string default_config_path();

// Reads `path`. Errors: kNotFound when the file does not exist; kConfig when it is not a JSON
// object of the expected shape (the message names the field); kSystem / kPermission on I/O.
Result<AgentConfig> load_config(const std::string& path);

// Overlays REXEC_SERVER, REXEC_AGENT_ID, REXEC_TOKEN, REXEC_SHELL, REXEC_REGION,
// REXEC_LOG_LEVEL and REXEC_CA_FILE from `getenv` (injected for tests) onto `config`.
void apply_environment(AgentConfig& config,
                       const std::function<std::optional<std::string>(const char*)>& getenv);

// Writes `config` atomically (temp file + rename), file mode 0600, creating the directory with
// mode 0700. Errors: kPermission / kSystem with a sentence naming the path.
Status save_config(const std::string& path, const AgentConfig& config);

// The server URL without a trailing slash, validated. Errors: kConfig.
Result<std::string> normalized_server(const std::string& server);

}  // namespace rx::agent
