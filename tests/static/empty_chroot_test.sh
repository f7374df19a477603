#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Proves the release rexec-agent is fully static: `file` must say "statically linked", and the
# binary must run in an empty root that holds nothing but itself (no libc, no loader, no /etc).
#   empty_chroot_test.sh PATH/TO/rexec-agent
set -euo pipefail
bin=${1:?usage: empty_chroot_test.sh BINARY}

desc=$(file -L "$bin")
case "$desc" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "FAIL: not static: $desc" >&2; exit 1 ;;
esac

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/rexec-agent"
if [ "$(id -u)" -eq 0 ]; then
  run=(chroot "$root" /rexec-agent version)
else
  run=(unshare --user --map-root-user chroot "$root" /rexec-agent version)
fi
out=$("${run[@]}" 2>&1) || { echo "FAIL: did not run in an empty root: $out" >&2; exit 1; }
case "$out" in
  "rexec-agent "*) echo "ok: $out (root held $(ls -A "$root" | wc -l) file)" ;;
  *) echo "FAIL: unexpected output: $out" >&2; exit 1 ;;
esac
