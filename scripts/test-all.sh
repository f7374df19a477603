#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Sets up a fresh Debian 12 machine and runs every test job, in the order CI runs them:
#   1. format-check   clang-format --dry-run -Werror
#   2. gcc-werror     optimised build, warnings are errors, all tests
#   3. release-static fully static rexec-agent, all tests plus the empty-chroot check
#   4. vm             the release-static build installed and run under Debian 12's systemd and
#                     kernel: systemd-nspawn containers and a QEMU guest (tests/vm/run.sh)
#   5. asan           AddressSanitizer + UndefinedBehaviorSanitizer, all tests
#   6. tsan           ThreadSanitizer, all tests
#   7. fuzz           libFuzzer targets (clang), each run for 20 s (scripts/fuzz.sh)
# Each job is a CMake workflow preset, so `cmake --workflow --preset <job>` reruns one locally.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=(format-check gcc-werror release-static vm asan tsan fuzz)
if [ $# -gt 0 ]; then jobs=("$@"); fi

bash scripts/install-deps.sh
# CI must run the browser, nginx and PostgreSQL tests, never skip them for want of Chromium,
# nginx or PostgreSQL.
export REXEC_REQUIRE_BROWSER=1 REXEC_REQUIRE_NGINX=1 REXEC_REQUIRE_PG=1 REXEC_REQUIRE_VM=1
# Each job compiles the whole tree with its own flags, four times in all. Through ccache, with
# paths taken relative to the clone, a later run (CI on the same machine, a clone elsewhere)
# recompiles only what changed.
export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
for job in "${jobs[@]}"; do
  echo "=== $job ==="
  start=$(date +%s)
  if [ "$job" = format-check ]; then
    bash scripts/format-check.sh
  elif [ "$job" = fuzz ]; then
    bash scripts/fuzz.sh
  elif [ "$job" = vm ]; then
    # The binaries of the release-static job (built here when that job did not run first).
    cmake --preset release-static >/dev/null
    cmake --build --preset release-static --target rexec-agent rexec-server rexec
    bash tests/vm/run.sh
  else
    cmake --workflow --preset "$job"
  fi
  echo "=== $job: ok in $(( $(date +%s) - start )) s ==="
done
