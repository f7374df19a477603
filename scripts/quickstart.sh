#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on a fresh Debian 12 machine: install dependencies, build, and start the system.
# Today (Foundations) it builds the fully static rexec-agent and runs it; the reference server
# and a registered, connected agent join this script as they land (see README "Status").
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset release-static >/dev/null
cmake --build --preset release-static --target rexec-agent
agent=build/release-static/agent/rexec-agent
echo
file "$agent"
"$agent" version
echo
echo "Static agent built: $agent ($(stat -c %s "$agent") bytes)."
