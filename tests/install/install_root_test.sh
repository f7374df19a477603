#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install.sh's root branch: /usr/local/bin, /etc/rexec and the systemd unit. The test machine has
# no running systemd (it is not PID 1 in a container), so `systemctl` is a small stand-in that
# records each call and runs the unit's ExecStart for start/restart: enough to check what the
# installer asks of systemd, and that the service it configures really connects. Everything runs
# in a private mount namespace with /etc copied, /usr/local/bin and /run on tmpfs, so the machine
# running the test is not changed.
#
#   install_root_test.sh SERVER_BINARY AGENT_BINARY REPO_ROOT
set -euo pipefail
server_bin=$1 agent_bin=$2 repo=$3
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
if ! unshare -m true 2>/dev/null; then echo "SKIP: cannot create a mount namespace here"; exit 77; fi

tmp=$(mktemp -d /tmp/rexec-install-root-XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  pkill -f "$tmp/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "SKIP: arch"; exit 77 ;; esac
mkdir -p "$tmp/dl"
cp "$agent_bin" "$tmp/dl/rexec-agent-linux-$arch"
# The log exists before the server does: the loop below reads it at once, and under set -e a
# read of a missing file would end the test.
: >"$tmp/server.log"
"$server_bin" --db "$tmp/rexec.db" serve --listen 127.0.0.1:0 --downloads-dir "$tmp/dl" \
  --jwt-secret install-test-secret-0123456789abcdef --rate-limit 1000 >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  url=$(sed -n 's/^rexec-server listening on \(http:[^ ]*\)$/\1/p' "$tmp/server.log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || fail "server did not start"
token=$("$server_bin" --db "$tmp/rexec.db" user add root-user 2>/dev/null)

# The served installer is this checkout's install.sh with the server's URL filled in.
diff <(curl -fsS "$url/install-agent.sh" | grep -v "^default_server=") \
     <(grep -v "^default_server=" "$repo/install.sh") >/dev/null ||
  fail "the server serves a different install.sh than $repo/install.sh"

# The systemctl stand-in: logs calls to $SHIM_LOG; start/restart run ExecStart in the background
# (pid in $SHIM_STATE/pid, output in $SHIM_STATE/agent.log); is-active checks that pid.
mkdir -p "$tmp/shim" "$tmp/state"
cat > "$tmp/shim/systemctl" <<'SHIM'
#!/bin/sh
echo "$*" >> "$SHIM_LOG"
unit=/etc/systemd/system/rexec-agent.service
stop() { [ -f "$SHIM_STATE/pid" ] && kill "$(cat "$SHIM_STATE/pid")" 2>/dev/null; rm -f "$SHIM_STATE/pid"; }
start() {
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  # shellcheck disable=SC2086
  setsid $exec_start >>"$SHIM_STATE/agent.log" 2>&1 < /dev/null &
  echo $! > "$SHIM_STATE/pid"
}
case "$1" in
  daemon-reload|enable) exit 0 ;;
  restart) stop; start ;;
  is-active)  # alive and not a zombie (nothing may reap it here)
    [ -f "$SHIM_STATE/pid" ] || exit 3
    state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$(cat "$SHIM_STATE/pid")/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] ;;
  disable) [ "${2:-}" = --now ] && stop; exit 0 ;;
  *) exit 0 ;;
esac
SHIM
chmod +x "$tmp/shim/systemctl"

# Each step runs in its own namespace over the same backing directories, like successive boots
# of the same machine.
mkdir -p "$tmp/etc" "$tmp/usr-local-bin" "$tmp/run/systemd/system"
cp -a /etc/. "$tmp/etc/"
rm -rf "$tmp/etc/rexec" "$tmp/etc/systemd/system/rexec-agent.service"
in_root() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  unshare -m bash -c '
    set -e
    mount --make-rprivate /
    mount --bind "$T/etc" /etc
    mount --bind "$T/usr-local-bin" /usr/local/bin
    mount --bind "$T/run" /run
    export PATH="$T/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    export SHIM_LOG="$T/systemctl.log" SHIM_STATE="$T/state"
    "$@"' in_root "$@"
}
export T=$tmp
installer() { in_root sh -c "curl -fsSL '$url/install-agent.sh' | sh -s -- $*"; }

# 1. First install: binary, config, unit, and systemd told to reload, enable and start.
installer --token "$token" --name root-box > "$tmp/i1.log" 2>&1 || { cat "$tmp/i1.log"; fail "install"; }
[ -x "$tmp/usr-local-bin/rexec-agent" ] || fail "no /usr/local/bin/rexec-agent"
[ "$(stat -c '%a %U' "$tmp/etc/rexec/agent.json")" = "600 root" ] || fail "config mode/owner"
[ "$(stat -c %a "$tmp/etc/rexec")" = 700 ] || fail "/etc/rexec mode"
unit=$tmp/etc/systemd/system/rexec-agent.service
grep -qx "ExecStart=/usr/local/bin/rexec-agent --config /etc/rexec/agent.json run --handover 60" "$unit" || fail "unit ExecStart"
grep -q "$token" "$unit" && fail "token in the unit"
grep -q "rexec_" "$unit" && fail "a token in the unit"
printf 'daemon-reload\nenable rexec-agent.service\nrestart rexec-agent.service\n' > "$tmp/want1"
diff <(grep -v '^is-active\|^--version' "$tmp/systemctl.log") "$tmp/want1" || fail "systemctl calls of the first install"
id=$(sed -n 's/^ *"agent_id": *"\([^"]*\)".*/\1/p' "$tmp/etc/rexec/agent.json")
for _ in $(seq 150); do
  curl -s -H "Authorization: Bearer $token" "$url/api/agents/$id" | grep -q '"status":"online"' && break
  sleep 0.1
done
curl -s -H "Authorization: Bearer $token" "$url/api/agents/$id" | grep -q '"status":"online"' ||
  { cat "$tmp/state/agent.log"; fail "the service's agent did not come online"; }
pid=$(cat "$tmp/state/pid")
grep -qa "rexec_" "/proc/$pid/environ" && fail "token in the service's environment"
echo "ok: root install: /usr/local/bin, /etc/rexec 0700, config 0600, unit without token; service online"

# 2. Again: nothing changes and the running service is left alone.
: > "$tmp/systemctl.log"
before=$(sha256sum "$unit" "$tmp/etc/rexec/agent.json" "$tmp/usr-local-bin/rexec-agent"; stat -c %Y "$unit")
installer --token "$token" --name root-box > "$tmp/i2.log" 2>&1 || { cat "$tmp/i2.log"; fail "second install"; }
after=$(sha256sum "$unit" "$tmp/etc/rexec/agent.json" "$tmp/usr-local-bin/rexec-agent"; stat -c %Y "$unit")
[ "$before" = "$after" ] || fail "second install changed files"
grep -qE '^(restart|daemon-reload)' "$tmp/systemctl.log" && fail "second install restarted or reloaded: $(cat "$tmp/systemctl.log")"
[ "$(cat "$tmp/state/pid")" = "$pid" ] || fail "the service was restarted"
echo "ok: second run changed nothing and did not restart the service"

# 3. A stopped service is started again by the installer.
kill "$pid"; sleep 0.2
: > "$tmp/systemctl.log"
installer --token "$token" > "$tmp/i3.log" 2>&1 || { cat "$tmp/i3.log"; fail "third install"; }
grep -qx "restart rexec-agent.service" "$tmp/systemctl.log" || fail "a stopped service was not started"
echo "ok: a stopped service is started"

# 4. Uninstall: service stopped and disabled, unit, binary and config gone, agent deleted.
: > "$tmp/systemctl.log"
installer --uninstall --token "$token" > "$tmp/u.log" 2>&1 || { cat "$tmp/u.log"; fail "uninstall"; }
grep -qx "disable --now rexec-agent.service" "$tmp/systemctl.log" || fail "service not disabled"
[ -e "$unit" ] && fail "unit left"
[ -e "$tmp/usr-local-bin/rexec-agent" ] && fail "binary left"
[ -e "$tmp/etc/rexec" ] && fail "/etc/rexec left"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$url/api/agents/$id")
[ "$code" = 404 ] || fail "agent still on the server ($code)"
echo "ok: uninstall removed service, unit, binary, config and the agent"
echo "install_root_test: all passed"
