#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every build and test dependency from Debian 12's packages. Idempotent; needs root (or
# sudo). libwebsockets is not installed here: CMake builds it from Debian's source package
# (scripts/build-lws.sh), which needs only dpkg-dev and network access to the Debian mirror.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config dpkg-dev git file ca-certificates
  clang clang-format clang-tidy libclang-rt-dev
  # libraries (the -dev packages also ship the static archives the release build links)
  libuv1-dev libssl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev catch2 zlib1g-dev
  libsqlite3-dev libhiredis-dev liboath-dev libpq-dev
  # test tools
  procps psmisc util-linux python3 sqlite3 curl shellcheck systemd
)

sudo=()
if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
