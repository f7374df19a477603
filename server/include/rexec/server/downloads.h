// SPDX-License-Identifier: MIT
// The public install files (PROTOCOL §1): /install-agent.sh, the installer with this server's
// URL filled in, and /downloads/rexec-agent-linux-<arch> with a .sha256 beside each binary.
#pragma once

#include "rexec/server/http_server.h"

#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace rx::server {

// install.sh as built into the server (generated from the repository's install.sh).
std::string_view embedded_install_script();

// The script with `default_server=''` set to `public_url` (left empty when the URL holds
// characters a shell single-quoted string or a URL should not).
std::string install_script_for(std::string_view script, std::string_view public_url);

class Downloads {
 public:
  // `dir` holds rexec-agent-linux-<arch> files; empty: no binaries are offered (404).
  explicit Downloads(std::string dir) : dir_(std::move(dir)) {}

  // The response for GET /install-agent.sh and GET /downloads/..., or nullopt for other paths.
  std::optional<HttpResponse> handle(const HttpRequest& req, std::string_view public_url);

 private:
  struct File {
    std::time_t mtime = 0;
    long long size = -1;
    std::string bytes;
    std::string sha256_hex;
  };

  // The binary for `name`, read again when its size or mtime changed. nullopt when absent.
  const File* load(const std::string& name);

  std::string dir_;
  std::map<std::string, File> cache_;
};

}  // namespace rx::server
