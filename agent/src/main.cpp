// SPDX-License-Identifier: MIT
// rexec-agent entry point.
#include "rexec/common/log.h"
#include "rexec/common/version.h"

#include <CLI/CLI.hpp>
#include <libwebsockets.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"rexec-agent: connects this machine to a Rexec server"};
  app.require_subcommand(1);
  auto* version = app.add_subcommand("version", "Print version, commit and build date");
  CLI11_PARSE(app, argc, argv);
  if (version->parsed()) {
    std::printf("rexec-agent %s (commit %s, built %s; libwebsockets %s, libuv %s)\n", REXEC_VERSION,
                REXEC_GIT_COMMIT, REXEC_BUILD_DATE, lws_get_library_version(), uv_version_string());
  }
  return 0;
}
