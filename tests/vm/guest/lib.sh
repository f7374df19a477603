#!/bin/bash
# SPDX-License-Identifier: MIT
# Helpers for the scenarios (guest/scenarios.sh), inside the test machine: the server on the
# machine's own loopback, the curl-pipe install, terminals driven through the `rexec` client, and
# assertions. A failed assertion ends the scenario's subshell (boot.sh records why).
share=/mnt/rexec
bin=$share/bin
work=/var/lib/rexec-test   # on the machine's disk: survives a reboot (scenario 7)
url=http://127.0.0.1:8080
export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$work"

log() { echo "[$(date +%T)] $*"; }
fail() {
  log "FAIL: $*"
  echo "$*" > "$work/fail-reason"
  echo "--- the journal's last lines"
  journalctl -b --no-pager -n 40 -o short-monotonic
  exit 1
}
skip() {
  log "SKIP: $*"
  echo "$*" > "$work/skip-reason"
  exit 77
}
ok() { log "ok: $*"; }

# Under QEMU's emulation (TCG) everything takes longer, more so on a busy host: every wait may take
# this many times longer there. Waits are bounds, so this costs a passing test nothing.
slow=1
if systemd-detect-virt --vm --quiet; then slow=6; fi

# wait_for SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds; false after SECONDS
# (times $slow).
wait_for() {
  local end=$(( $(date +%s) + $1 * slow ))
  shift
  until "$@"; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# The server, as a unit of the machine, ordered before the agent: after a reboot (scenario 7) it
# is up when the agent starts.
start_server() {
  mkdir -p "$work/dl"
  [ -f "$work/dl/rexec-agent-linux-amd64" ] || cp "$bin/rexec-agent" "$work/dl/rexec-agent-linux-amd64"
  if [ ! -f /etc/systemd/system/rexec-test-server.service ]; then
    cp "$bin/rexec-server" "$work/rexec-server"  # on the disk: the share comes later at boot
    printf '%s\n' '[Unit]' 'Before=rexec-agent.service' '[Service]' \
      "ExecStart=$work/rexec-server --db $work/rexec.db serve --listen 127.0.0.1:8080 --downloads-dir $work/dl --rate-limit 10000 --jwt-secret vm-test-secret-0123456789abcdef0123456789" \
      '[Install]' 'WantedBy=multi-user.target' > /etc/systemd/system/rexec-test-server.service
    systemctl daemon-reload
    systemctl enable --quiet rexec-test-server
  fi
  systemctl start rexec-test-server
  wait_for 60 curl -fs -o /dev/null "$url/healthz" || fail "the server did not start"
  if [ ! -s "$work/user-token" ]; then
    "$bin/rexec-server" --db "$work/rexec.db" user add tester > "$work/user-token" 2>/dev/null ||
      fail "user add"
  fi
  token=$(cat "$work/user-token")
  "$bin/rexec" login --server "$url" --token "$token" >/dev/null || fail "rexec login"
}

# The newer build on the server's download page (the next curl-pipe install takes it).
serve_next_agent() { cp "$bin/rexec-agent-next" "$work/dl/rexec-agent-linux-amd64"; }

install_curl() {  # install_curl [ARGS...]
  curl -fsSL "$url/install-agent.sh" | sh -s -- --token "$token" --name vm-agent "$@" \
    > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install.sh failed"; }
}

agent_id() { sed -n 's/^ *"agent_id": *"\([^"]*\)".*/\1/p' /etc/rexec/agent.json; }
agent_token() { sed -n 's/^ *"token": *"\([^"]*\)".*/\1/p' /etc/rexec/agent.json; }
api() { curl -fsS -H "Authorization: Bearer $token" "$url/api/agents/$(agent_id)$1"; }
is_online() { api /status 2>/dev/null | grep -q '"status":"online"'; }
unit_state_is() { [ "$(systemctl show -P ActiveState rexec-agent.service)" = "$1" ]; }
main_pid() { systemctl show -P MainPID rexec-agent.service; }
n_restarts() { systemctl show -P NRestarts rexec-agent.service; }

wait_online() {
  wait_for "${1:-30}" is_online || { journalctl -u rexec-agent --no-pager | tail -n 30; fail "the agent is not online"; }
}

# A terminal through the client: input appended to $work/NAME.in, output in $work/NAME.out.
# open_shell NAME [--split]
open_shell() {
  local name=$1
  shift
  : > "$work/$name.in"
  : > "$work/$name.out"
  tail -n +1 -f "$work/$name.in" 2>/dev/null | "$bin/rexec" term "$(agent_id)" "$@" \
    > "$work/$name.out" 2> "$work/$name.err" &
  send "$name" 'echo "PID=$$"'
  wait_out "$name" '^PID=[0-9]+$' 30 ||
    fail "no shell on terminal $name: $(tr '\n\r' '  ' < "$work/$name.err") / $(out "$name" | tail -c 300 | tr '\n' '|')"
}
send() { printf '%s\n' "$2" >> "$work/$1.in"; }
# The terminal's output as lines of text: no carriage returns, no escape sequences (bash's
# bracketed-paste switches sit before and after each command's output).
out() { tr -d '\r' < "$work/$1.out" | sed -E 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[()][A-Z0-9]//g; s/\x1b[=>]//g'; }
has_out() { out "$1" | grep -qE "$2"; }
# wait_out NAME REGEX SECONDS: a whole output line matches REGEX.
wait_out() { wait_for "${3:-30}" has_out "$1" "$2"; }
pid_lines_at_least() { [ "$(out "$1" | grep -c '^PID=[0-9]*$')" -ge "$2" ]; }
# The shell's pid, as it printed it ($$): the last PID= line.
shell_pid() { out "$1" | sed -n 's/^PID=\([0-9]*\)$/\1/p' | tail -n 1; }

# Numbered output: P001..P<N>, one every 0.2 s, then END-P. The typed command holds none of these
# lines (the numbers come from printf, the marker from arithmetic), so each counts once.
start_sequence() {  # start_sequence NAME PREFIX N
  send "$1" "for i in \$(seq 1 $3); do printf '$2%03d\\n' \$i; sleep 0.2; done; echo END-$2-\$((40+2))"
}
# check_sequence NAME PREFIX N: every line once, in order, none missing.
check_sequence() {
  wait_out "$1" "^END-$2-42$" 90 || fail "terminal $1: the sequence did not finish: $(out "$1" | tail -n 5 | tr '\n' '|')"
  local want got
  want=$(seq -f "$2%03g" 1 "$3")
  got=$(out "$1" | grep -xE "$2[0-9]{3}")
  [ "$want" = "$got" ] || fail "terminal $1: lines missing, doubled or out of order: $(diff <(echo "$want") <(echo "$got") | head -n 6 | tr '\n' ' ')"
  ok "terminal $1: $3 lines, each exactly once"
}

# The journal of the agent's unit, this boot.
unit_journal() { journalctl -b -u rexec-agent --no-pager -o cat; }
no_left_over() {
  local n
  n=$(journalctl -b --no-pager | grep -cE 'left-over process|remains running after unit stopped')
  [ "$n" -eq 0 ] || fail "systemd: $(journalctl -b --no-pager | grep -E 'left-over process|remains running after unit stopped' | head -n 2)"
}

# Processes of the agent (run and keeper) and pids given that are still alive.
agent_procs() { pgrep -f '^/usr/(local/)?bin/rexec-agent ' || true; }
alive() { kill -0 "$1" 2>/dev/null; }

agent_bin() {
  if [ -x /usr/local/bin/rexec-agent ]; then echo /usr/local/bin/rexec-agent; else echo /usr/bin/rexec-agent; fi
}
# The status command, as root; its output in $work/status.out; returns its exit status.
agent_status() { "$(agent_bin)" status > "$work/status.out" 2>&1; }
status_has() { grep -qE "$1" "$work/status.out" || fail "status: no '$1' in: $(tr '\n' '|' < "$work/status.out")"; }
