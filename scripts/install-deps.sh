#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every build and test dependency from Debian 12's packages. Idempotent; needs root (or
# sudo). libwebsockets is not installed here: CMake builds it from Debian's source package
# (scripts/build-lws.sh), which needs only dpkg-dev and network access to the Debian mirror.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config dpkg-dev patch git file ca-certificates ccache
  clang clang-format clang-tidy libclang-rt-dev
  # libraries (the -dev packages also ship the static archives the release build links)
  libuv1-dev libssl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev catch2 zlib1g-dev
  libsqlite3-dev libhiredis-dev liboath-dev libpq-dev
  # test tools
  procps psmisc util-linux python3 sqlite3 curl shellcheck systemd openssl
  chromium nginx
  # a throwaway PostgreSQL cluster for the PostgreSQL tests (tests/fixtures/pg_cluster.sh)
  postgresql-15
  # Redis for the multi-instance tests (started on a loopback port by the tests themselves)
  redis-server
  # the system tests (tests/vm): a Debian 12 image built with debootstrap, booted in QEMU
  debootstrap qemu-system-x86 qemu-utils
)
# Browser tests run playwright-core on node: Debian's nodejs unless a node is already installed
# (from NodeSource, say, whose nodejs package provides npm itself).
if ! command -v node >/dev/null; then packages+=(nodejs npm); fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  # nginx, PostgreSQL and Redis are run only by their tests, on loopback ports: keep the packages' own
  # services from starting (nginx on port 80, PostgreSQL's default cluster, Redis) while they install
  # (policy-rc.d, exit 101), unless the machine already has a policy of its own.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  rc=0
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
  [ -n "$own_policy" ] && "${sudo[@]}" rm -f "$policy"
  [ "$rc" -eq 0 ] || exit "$rc"
fi

# npm packages, exactly as locked: xterm.js and its addons, uPlot and asciinema-player for the
# web page (built into rexec-server, so this comes before the first build), and playwright-core
# and axe-core for the browser tests (playwright-core downloads no browser).
repo=$(cd "$(dirname "$0")/.." && pwd)
for dir in "$repo/web" "$repo/tests/browser"; do
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
done
echo "install-deps: done"
