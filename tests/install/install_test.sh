#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install.sh end to end, as the curl-pipe command a user runs: a real rexec-server serving
# /install-agent.sh and the agent binary, the installer run as an unprivileged user (so the test
# writes only under its temp dir), then: the agent comes online, a second run changes nothing,
# HTML and truncated downloads are refused, --agent-id skips registration, --uninstall removes
# everything and deletes the agent, and a deleted agent exits with the status the unit's
# RestartPreventExitStatus names. The systemd branch needs a running systemd: the unit it writes
# is checked with systemd-analyze instead.
#
#   install_test.sh SERVER_BINARY AGENT_BINARY REPO_ROOT
set -euo pipefail
server_bin=$1 agent_bin=$2 repo=$3
command -v setpriv >/dev/null || { echo "SKIP: setpriv (util-linux) missing"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root to run the installer as another user"; exit 77; }

tmp=$(mktemp -d /tmp/rexec-install-XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- server log" >&2; cat "$tmp/server.log" >&2 || true; exit 1; }
ok() { echo "ok: $*"; }

# Under the sanitizer presets the agent needs its options (LSan suppressions) in the clean
# environments below.
san=()
[ -n "${ASAN_OPTIONS:-}" ] && san+=("ASAN_OPTIONS=$ASAN_OPTIONS")
[ -n "${LSAN_OPTIONS:-}" ] && san+=("LSAN_OPTIONS=$LSAN_OPTIONS")

case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "SKIP: arch"; exit 77 ;; esac
mkdir -p "$tmp/dl"
cp "$agent_bin" "$tmp/dl/rexec-agent-linux-$arch"

# The server, on a free loopback port.
# The log exists before the server does: the loop below reads it at once, and under set -e a
# read of a missing file would end the test.
: >"$tmp/server.log"
"$server_bin" --db "$tmp/rexec.db" serve --listen 127.0.0.1:0 --downloads-dir "$tmp/dl" \
  --jwt-secret install-test-secret-0123456789abcdef --rate-limit 1000 >"$tmp/server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  url=$(sed -n 's/^rexec-server listening on \(http:[^ ]*\)$/\1/p' "$tmp/server.log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || fail "server did not start"
token=$("$server_bin" --db "$tmp/rexec.db" user add alice 2>/dev/null)
api() { curl -sS -H "Authorization: Bearer $token" "$@"; }

# 0. The script is POSIX sh and shellcheck-clean; the server fills in its own URL.
shellcheck -s sh "$repo/install.sh" || fail "shellcheck"
served=$(curl -fsS "$url/install-agent.sh")  # not piped into grep -q: pipefail + SIGPIPE
grep -qx "default_server='$url'" <<<"$served" || fail "served script lacks the server URL"
ok "shellcheck clean; /install-agent.sh carries $url"

# Runs the installer as nobody with HOME=$1, piped from the server like a user would.
as_nobody() {
  local home=$1; shift
  mkdir -p "$home" && chown 65534:65534 "$home"
  (cd "$home" && curl -fsSL "$url/install-agent.sh" |
     setpriv --reuid 65534 --regid 65534 --clear-groups env -i "${san[@]}" PATH=/usr/bin:/bin HOME="$home" \
       sh -s -- "$@")
}

# 1. Fresh install.
home=$tmp/home
as_nobody "$home" --token "$token" --name inst >"$tmp/install1.log" 2>&1 || { cat "$tmp/install1.log"; fail "install"; }
bin=$home/.local/bin/rexec-agent
cfg=$home/.config/rexec/agent.json
[ -x "$bin" ] || fail "binary not installed"
[ "$(stat -c %a "$cfg")" = 600 ] || fail "config mode is $(stat -c %a "$cfg")"
[ "$(stat -c %U "$cfg")" = nobody ] || fail "config owner"
id=$(sed -n 's/^ *"agent_id": *"\([^"]*\)".*/\1/p' "$cfg")
[ -n "$id" ] || fail "no agent id in config"
grep -q "$token" "$tmp/install1.log" && fail "the installer printed the token"
ok "installed to ~/.local/bin, registered as $id, config 0600"

# 2. The printed command runs it; it comes online.
run_line=$(sed -n 's/^rexec-agent install:   \(.* run\)$/\1/p' "$tmp/install1.log")
[ "$run_line" = "$bin --config $cfg run" ] || fail "unexpected run hint: $run_line"
setpriv --reuid 65534 --regid 65534 --clear-groups env -i "${san[@]}" PATH=/usr/bin:/bin HOME="$home" \
  "$bin" --config "$cfg" run >"$tmp/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
for _ in $(seq 150); do
  api "$url/api/agents/$id" | grep -q '"status":"online"' && break
  sleep 0.1
done
api "$url/api/agents/$id" | grep -q '"status":"online"' || { cat "$tmp/agent.log"; fail "agent not online"; }
# The token is not in the agent's environment or command line.
grep -qa "$token" "/proc/$agent_pid/environ" "/proc/$agent_pid/cmdline" && fail "token in the process"
ok "agent online; token not in its environment or command line"

# 3. Running the installer again changes nothing.
before=$(stat -c '%Y %s' "$bin" "$cfg"; sha256sum "$bin" "$cfg")
as_nobody "$home" --token "$token" --name inst >"$tmp/install2.log" 2>&1 || { cat "$tmp/install2.log"; fail "second install"; }
after=$(stat -c '%Y %s' "$bin" "$cfg"; sha256sum "$bin" "$cfg")
[ "$before" = "$after" ] || fail "second run changed files"
grep -q "is up to date" "$tmp/install2.log" || fail "second run re-installed the binary"
grep -q "already registered as agent $id" "$tmp/install2.log" || fail "second run registered again"
[ "$(api "$url/api/agents" | grep -o '"id"' | wc -l)" = 1 ] || fail "more than one agent on the server"
ok "second run: nothing changed, one agent"

# 4. Bad downloads are refused and leave nothing behind.
mkdir -p "$tmp/fake/downloads"
printf '<!DOCTYPE html><html><body>Not Found</body></html>\n' > "$tmp/fake/downloads/rexec-agent-linux-$arch"
(cd "$tmp/fake/downloads" && sha256sum "rexec-agent-linux-$arch" > "rexec-agent-linux-$arch.sha256")
python3 -m http.server 0 --bind 127.0.0.1 --directory "$tmp/fake" >"$tmp/fake.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  fake_port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$tmp/fake.log" | head -n 1)
  [ -n "$fake_port" ] && break
  sleep 0.1
done
[ -n "${fake_port:-}" ] || fail "fake download server did not start"
bad_home=$tmp/bad
cp "$repo/install.sh" "$tmp/install.sh"  # outside the checkout: it must download
chmod 644 "$tmp/install.sh"
install_from_fake() {
  mkdir -p "$bad_home" && chown 65534:65534 "$bad_home"
  (cd "$bad_home" && setpriv --reuid 65534 --regid 65534 --clear-groups env -i "${san[@]}" PATH=/usr/bin:/bin \
     HOME="$bad_home" sh "$tmp/install.sh" --server "http://127.0.0.1:$fake_port" \
     --token "$token" >"$tmp/bad.log" 2>&1)
}
if install_from_fake; then fail "an HTML download was installed"; fi
grep -q "not a Linux program" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "no clear HTML refusal"; }
[ -e "$bad_home/.local/bin/rexec-agent" ] && fail "HTML download left a binary"
head -c 100000 "$agent_bin" > "$tmp/fake/downloads/rexec-agent-linux-$arch"
sha256sum "$agent_bin" | sed "s|$agent_bin|rexec-agent-linux-$arch|" > "$tmp/fake/downloads/rexec-agent-linux-$arch.sha256"
if install_from_fake; then fail "a truncated download was installed"; fi
grep -q "checksum mismatch" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "no clear checksum refusal"; }
[ -e "$bad_home/.local/bin/rexec-agent" ] && fail "truncated download left a binary"
ok "HTML and truncated downloads refused, nothing installed"

# 5. --agent-id with the agent's own token skips registration; a wrong token is refused.
reg=$(api -X POST -H 'Content-Type: application/json' -d '{"name":"pre"}' "$url/api/agents/register")
pre_id=$(printf '%s' "$reg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
pre_token=$(printf '%s' "$reg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
home3=$tmp/home3
as_nobody "$home3" --token "$pre_token" --agent-id "$pre_id" >"$tmp/install3.log" 2>&1 || { cat "$tmp/install3.log"; fail "--agent-id install"; }
grep -q "\"agent_id\": \"$pre_id\"" "$home3/.config/rexec/agent.json" || fail "--agent-id not saved"
[ "$(api "$url/api/agents" | grep -o '"id"' | wc -l)" = 2 ] || fail "--agent-id registered a new agent"
if as_nobody "$tmp/home4" --token rexec_0000000000000000000000000000000000000000000000000000000000000000 \
    --agent-id "$pre_id" >"$tmp/install4.log" 2>&1; then fail "a wrong agent token was accepted"; fi
grep -q "rejected the token" "$tmp/install4.log" || { cat "$tmp/install4.log"; fail "no clear refusal"; }
ok "--agent-id saves without registering; a wrong token is refused"

# 6. A deleted agent exits 78, the status the unit's RestartPreventExitStatus names.
api -X DELETE "$url/api/agents/$pre_id" >/dev/null
set +e
timeout 30 setpriv --reuid 65534 --regid 65534 --clear-groups env -i "${san[@]}" PATH=/usr/bin:/bin \
  HOME="$home3" "$home3/.local/bin/rexec-agent" --config "$home3/.config/rexec/agent.json" run \
  >"$tmp/deleted.log" 2>&1
status=$?
set -e
[ "$status" = 78 ] || { cat "$tmp/deleted.log"; fail "deleted agent exited $status, not 78"; }
ok "deleted agent exits 78"

# 7. The unit: no token, the restart policy, and systemd accepts it.
unit=$(sh "$repo/install.sh" --print-unit "$bin")
for line in "After=network-online.target" "Restart=always" "RestartSec=5" \
            "RestartPreventExitStatus=78" "SyslogIdentifier=rexec-agent" \
            "ExecStart=$bin --config /etc/rexec/agent.json run --handover 60" \
            "Delegate=yes"; do
  printf '%s\n' "$unit" | grep -qxF "$line" || fail "unit lacks $line"
done
printf '%s\n' "$unit" | grep -qi "token\|Environment" && fail "unit mentions a token or environment"
# KillMode is the default: the service's cgroup holds only the agent (the shells are in a scope).
printf '%s\n' "$unit" | grep -q "^KillMode=" && fail "unit sets KillMode"
# The keys of systemd 254 and later only for such a systemd.
old=$(sh "$repo/install.sh" --print-unit "$bin" --systemd-version 252)
new=$(sh "$repo/install.sh" --print-unit "$bin" --systemd-version 254)
printf '%s\n' "$old" | grep -q "^RestartSteps=\|^RestartMaxDelaySec=" && fail "keys unknown to systemd 252"
printf '%s\n' "$new" | grep -qx "RestartSteps=6" || fail "no RestartSteps for systemd 254"
printf '%s\n' "$new" | grep -qx "RestartMaxDelaySec=300" || fail "no RestartMaxDelaySec for systemd 254"
if command -v systemd-analyze >/dev/null; then
  printf '%s\n' "$unit" > "$tmp/rexec-agent.service"
  systemd-analyze verify "$tmp/rexec-agent.service" >"$tmp/verify.log" 2>&1 || true
  # Written for this host's systemd: it knows every key.
  if grep -q . "$tmp/verify.log"; then
    cat "$tmp/verify.log"; fail "systemd-analyze verify complains"
  fi
  ok "unit verified by systemd-analyze"
fi

# 8. --uninstall stops nothing it does not own, removes binary and config, deletes the agent.
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
as_nobody "$home" --uninstall --token "$token" >"$tmp/uninstall.log" 2>&1 || { cat "$tmp/uninstall.log"; fail "uninstall"; }
[ -e "$bin" ] && fail "binary left after uninstall"
[ -e "$cfg" ] && fail "config left after uninstall"
code=$(api -o /dev/null -w '%{http_code}' "$url/api/agents/$id")
[ "$code" = 404 ] || fail "agent still on the server after uninstall ($code)"
ok "uninstall removed binary, config and the agent on the server"
echo "install_test: all passed"
