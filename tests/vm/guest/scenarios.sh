#!/bin/bash
# SPDX-License-Identifier: MIT
# The scenarios of issue 19, run inside the test machine by boot.sh, each in a subshell on a
# machine of its own (a fresh container, or the QEMU guest). Each asserts what a user would check
# by hand; `fail` ends it. Scenario 10 (`rexec-agent status`) is checked inside 1, 2 and 5.
# shellcheck disable=SC2154 # work, url, token, share: set by lib.sh, sourced before this file

# 1. Curl-pipe install: the unit is active, the agent online, its journal shows the start and no
# token, systemd logs no unknown key; `status` reports the running agent, to root only.
scenario_1_install() {
  start_server
  install_curl
  systemctl is-active --quiet rexec-agent || fail "the unit is not active"
  systemctl is-enabled --quiet rexec-agent || fail "the unit is not enabled"
  wait_online
  ok "unit active and enabled, agent online"
  wait_for 10 sh -c "journalctl -b -u rexec-agent --no-pager -o cat | grep -q 'connected to server'" ||
    fail "no 'connected to server' in the journal"
  unit_journal | grep -q "agent starting id=$(agent_id)" || fail "no 'agent starting' in the journal"
  for t in "$token" "$(agent_token)"; do
    [ -n "$t" ] || fail "no token to look for"
    journalctl -b --no-pager | grep -qF "$t" && fail "a token is in the journal"
  done
  journalctl -b --no-pager | grep -q 'rexec_' && fail "something like a token (rexec_) is in the journal"
  ok "journal: the start, and no token"
  journalctl -b --no-pager | grep -i 'rexec-agent' | grep -qiE 'unknown key|unknown lvalue' &&
    fail "systemd: $(journalctl -b --no-pager | grep -iE 'unknown (key|lvalue)' | head -n 1)"
  ok "systemd knows every key of the unit"
  # 10: status, before any terminal.
  agent_status || fail "status exited $? with an agent running: $(tr '\n' '|' < "$work/status.out")"
  status_has "^agent: +running, pid $(main_pid), version "
  status_has "^connection: connected to $url since .*, protocol v2$"
  status_has "^sessions: +0 open"
  status_has "^handover: +60 s; keeper not started"
  status_has "^last error: none"
  status_has "^auth: +ok"
  grep -qF "$(agent_token)" "$work/status.out" && fail "status shows the agent's token"
  status_has "^token: +rexec_.{4}…$"  # redacted
  # Only root: another user reaches the socket but gets no answer.
  local answer
  answer=$(setpriv --reuid=65534 --regid=65534 --clear-groups python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect("\0rexec-agent-status/" + sys.argv[1])
print(len(s.recv(65536)))' "$(agent_id)" 2>&1)
  [ "$answer" = 0 ] || fail "the status socket answered another user: $answer"
  ok "status: running, connected, v2, no sessions, no error; nothing for another user"
}

# 2. systemctl restart while a shell prints: same shell, every line once, no left-over process.
scenario_2_restart() {
  start_server
  install_curl
  wait_online
  open_shell t1
  local pid old_main
  pid=$(shell_pid t1)
  old_main=$(main_pid)
  start_sequence t1 R 60
  wait_out t1 '^R010$' 30 || fail "the sequence did not start"
  systemctl restart rexec-agent || fail "systemctl restart failed"
  [ "$(main_pid)" != "$old_main" ] || fail "the agent was not restarted"
  wait_online
  check_sequence t1 R 60
  send t1 'echo "PID=$$"'
  wait_for 20 pid_lines_at_least t1 2 || fail "no second PID line"
  [ "$(shell_pid t1)" = "$pid" ] || fail "the shell changed: $pid, then $(shell_pid t1)"
  ok "the same shell (pid $pid) across the restart"
  no_left_over
  ok "systemd logged no left-over process"
  systemctl is-active --quiet rexec-agent-shells.scope || fail "no rexec-agent-shells.scope"
  grep -q 'rexec-agent-shells.scope' "/proc/$pid/cgroup" ||
    fail "the shell is not in the keeper's scope: $(cat "/proc/$pid/cgroup")"
  # 10: status after the restart: the shell is taken over from the keeper.
  agent_status || fail "status exited $?"
  status_has "^sessions: +1 open: main \(pid $pid, kept\)"
  status_has "^handover: +60 s; keeper attached, pid [0-9]+; 1 shell\(s\) taken over at start"
  status_has "^isolation: +session cgroups under /sys/fs/cgroup/system.slice/rexec-agent-shells.scope$"
  ok "status: one kept session, taken over, keeper attached"
}

# 3a. Upgrade through install.sh (the server offers a newer build).
scenario_3a_upgrade_install_sh() {
  start_server
  install_curl
  wait_online
  local v1 pid
  v1=$(/usr/local/bin/rexec-agent version)
  open_shell t1
  pid=$(shell_pid t1)
  start_sequence t1 U 50
  wait_out t1 '^U005$' 30 || fail "the sequence did not start"
  serve_next_agent
  install_curl
  grep -q 'installed /usr/local/bin/rexec-agent' "$work/install.log" || fail "install.sh did not install the new build"
  [ "$(/usr/local/bin/rexec-agent version)" != "$v1" ] || fail "the version did not change"
  wait_online
  check_sequence t1 U 50
  agent_status
  status_has "version $(/usr/local/bin/rexec-agent version | cut -d ' ' -f 2),"
  status_has "main \(pid $pid, kept\)"
  ok "upgraded from '$v1' to '$(/usr/local/bin/rexec-agent version)'; the same shell"
  no_left_over
}

# 3b. Upgrade through dpkg -i of a newer .deb.
scenario_3b_upgrade_deb() {
  start_server
  local debs
  debs=("$share"/deb/rexec-agent_*.deb)
  [ "${#debs[@]}" -eq 2 ] || fail "want two .debs, have ${#debs[@]}"
  dpkg -i "${debs[0]}" > "$work/dpkg1.log" 2>&1 || { cat "$work/dpkg1.log"; fail "dpkg -i ${debs[0]}"; }
  printf '%s\n' "$token" | rexec-agent register --server "$url" --token-stdin --name vm-deb >/dev/null ||
    fail "register"
  systemctl enable --now rexec-agent 2>/dev/null || fail "enable --now"
  wait_online
  local v1 pid
  v1=$(rexec-agent version)
  open_shell t1
  pid=$(shell_pid t1)
  start_sequence t1 D 50
  wait_out t1 '^D005$' 30 || fail "the sequence did not start"
  dpkg -i "${debs[1]}" > "$work/dpkg2.log" 2>&1 || { cat "$work/dpkg2.log"; fail "dpkg -i ${debs[1]}"; }
  [ "$(rexec-agent version)" != "$v1" ] || fail "the version did not change"
  wait_online
  check_sequence t1 D 50
  agent_status
  status_has "version $(rexec-agent version | cut -d ' ' -f 2),"
  status_has "main \(pid $pid, kept\)"
  ok "dpkg -i upgraded '$v1' to '$(rexec-agent version)'; the same shell"
  no_left_over
}

# 4. kill -9: systemd restarts the agent after RestartSec (5 s); the shells are kept.
scenario_4_crash() {
  start_server
  install_curl
  wait_online
  open_shell t1
  local pid old_main restarts t0 t1s
  pid=$(shell_pid t1)
  old_main=$(main_pid)
  restarts=$(n_restarts)
  start_sequence t1 K 60
  wait_out t1 '^K005$' 30 || fail "the sequence did not start"
  t0=$(date +%s%N)
  kill -9 "$old_main"
  wait_for 30 sh -c "p=\$(systemctl show -P MainPID rexec-agent); [ \"\$p\" != 0 ] && [ \"\$p\" != $old_main ]" ||
    fail "systemd did not restart the agent"
  t1s=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$t1s" -ge 4500 ] || fail "restarted after $t1s ms, before RestartSec=5"
  [ "$t1s" -le 15000 ] || fail "restarted only after $t1s ms"
  [ "$(n_restarts)" -eq $((restarts + 1)) ] || fail "NRestarts: $restarts, then $(n_restarts)"
  ok "restarted by systemd after $t1s ms"
  wait_online
  check_sequence t1 K 60
  alive "$pid" || fail "the shell is gone"
  agent_status
  status_has "main \(pid $pid, kept\)"
  ok "the same shell (pid $pid) across the crash"
  no_left_over
}

# 5. Delete the agent on the server: exit 78, the unit stays stopped, its shells end.
scenario_5_revoked() {
  start_server
  install_curl
  wait_online
  open_shell t1
  local pid restarts
  pid=$(shell_pid t1)
  restarts=$(n_restarts)
  curl -fsS -X DELETE -H "Authorization: Bearer $token" "$url/api/agents/$(agent_id)" >/dev/null ||
    fail "DELETE the agent"
  wait_for 60 unit_state_is failed ||
    fail "the unit did not fail: $(systemctl show -P ActiveState rexec-agent)"
  [ "$(systemctl show -P ExecMainStatus rexec-agent)" = 78 ] ||
    fail "exit status $(systemctl show -P ExecMainStatus rexec-agent), not 78"
  ok "the agent exited 78; the unit failed"
  sleep 12  # two RestartSec: a restart would have happened
  [ "$(systemctl show -P ActiveState rexec-agent)" = failed ] || fail "the unit left the failed state"
  [ "$(n_restarts)" -eq "$restarts" ] || fail "systemd restarted it ($(n_restarts) restarts)"
  ok "the unit stays stopped"
  alive "$pid" && fail "the shell (pid $pid) outlived the refused agent"
  [ -z "$(agent_procs)" ] || fail "processes remain: $(agent_procs | tr '\n' ' ')"
  unit_journal | grep -q 'server refused this agent (HTTP 40[134])' || fail "no refusal in the journal"
  # 10: status says it does not run, and why the server refuses it.
  agent_status
  local rc=$?
  [ "$rc" -eq 3 ] || fail "status exited $rc, not 3"
  status_has "^agent: +not running"
  status_has "^auth: +rejected"
  ok "status: not running, token rejected"
}

# No agent or keeper process, and none of the pids given.
all_gone() {
  local p
  for p in "$@"; do alive "$p" && return 1; done
  [ -z "$(agent_procs)" ]
}

# stop_and_check WHAT COMMAND...: the agent, its keeper and every shell are gone 5 s after COMMAND.
stop_and_check() {
  local what=$1
  shift
  start_server
  install_curl
  wait_online
  open_shell t1
  open_shell t2 --split
  local p1 p2 hup
  p1=$(shell_pid t1)
  p2=$(shell_pid t2)
  # A job that ignores the hang-up: systemd's SIGKILL must end it.
  send t2 "(trap '' HUP TERM; exec sleep 1000) & echo \"HUP=\$!\""
  wait_out t2 '^HUP=[0-9]+$' 20 || fail "no stubborn job"
  hup=$(out t2 | sed -n 's/^HUP=//p' | tail -n 1)
  [ -n "$(agent_procs)" ] || fail "no agent processes before $what"
  local t0
  t0=$(date +%s%N)
  "$@" || fail "$* failed"
  # Gone within 5 s: the agent, the keeper, both shells and the job that ignores SIGHUP.
  wait_for 5 all_gone "$p1" "$p2" "$hup" || {
    for p in "$p1" "$p2" "$hup"; do
      alive "$p" && fail "$what: pid $p ($(tr '\0' ' ' < "/proc/$p/cmdline")) still runs after 5 s"
    done
    fail "$what: still running after 5 s: $(agent_procs | xargs -r ps -o pid=,args= -p)"
  }
  local took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  sleep 1
  systemctl is-active --quiet rexec-agent-shells.scope && fail "$what: the scope is still active"
  [ -z "$(find /sys/fs/cgroup/system.slice -name 'session-*' -type d)" ] || fail "$what: session cgroups remain"
  no_left_over
  ok "$what: the agent, the keeper, both shells and a job ignoring SIGHUP gone $took_ms ms after"
}

# 6. systemctl stop, and disable --now, end every shell and the keeper within seconds.
scenario_6a_stop() { stop_and_check "systemctl stop" systemctl stop rexec-agent; }
scenario_6b_disable_now() {
  stop_and_check "systemctl disable --now" systemctl disable --now rexec-agent
  systemctl is-enabled --quiet rexec-agent && fail "still enabled"
  ok "disabled"
}

# The files a user would find changed: everything but logs, caches, runtime state, the test's own.
file_list() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /mnt -o -path /var/log -o -path /var/cache -o -path /var/tmp -o -path "$work" \
    -o -path /root -o -path /var/lib/systemd -o -path /var/lib/dpkg/triggers \
    -o -name 'status-old' -o -path /var/lib/dpkg/status -o -name 'lock*' \) -prune -o -print | sort
}

# 8a. install.sh --uninstall leaves the file list as it was before the install.
scenario_8a_uninstall() {
  start_server
  file_list > "$work/files.before"
  install_curl
  wait_online
  open_shell t1
  curl -fsSL "$url/install-agent.sh" | sh -s -- --uninstall --token "$token" > "$work/u.log" 2>&1 ||
    { cat "$work/u.log"; fail "--uninstall"; }
  sleep 1
  file_list > "$work/files.after"
  diff "$work/files.before" "$work/files.after" > "$work/files.diff" ||
    fail "files differ: $(head -n 8 "$work/files.diff" | tr '\n' ' ')"
  [ -z "$(agent_procs)" ] || fail "processes remain: $(agent_procs | tr '\n' ' ')"
  ok "--uninstall: the same $(wc -l < "$work/files.after") files as before, no process left"
}

# 8b. dpkg --purge leaves the file list as it was before dpkg -i.
scenario_8b_purge() {
  start_server
  local debs
  debs=("$share"/deb/rexec-agent_*.deb)
  file_list > "$work/files.before"
  dpkg -i "${debs[0]}" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
  printf '%s\n' "$token" | rexec-agent register --server "$url" --token-stdin --name vm-deb >/dev/null ||
    fail "register"
  systemctl enable --now rexec-agent 2>/dev/null || fail "enable --now"
  wait_online
  open_shell t1
  dpkg --purge rexec-agent > "$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
  sleep 1
  file_list > "$work/files.after"
  diff "$work/files.before" "$work/files.after" > "$work/files.diff" ||
    fail "files differ: $(head -n 8 "$work/files.diff" | tr '\n' ' ')"
  [ -z "$(agent_procs)" ] || fail "processes remain: $(agent_procs | tr '\n' ' ')"
  ok "dpkg --purge: the same $(wc -l < "$work/files.after") files as before, no process left"
}

# ---- on a real kernel (the QEMU guest) ----

# The agent with session limits (pids.max 64, memory.max 96M, cpu.max 20 %) and stats every
# second, set once for 9a-9d through a drop-in, as an operator would.
limited_agent() {
  start_server
  if [ ! -f /etc/systemd/system/rexec-agent.service.d/limits.conf ]; then
    mkdir -p /etc/systemd/system/rexec-agent.service.d
    printf '%s\n' '[Service]' 'Environment=REXEC_SESSION_PIDS_MAX=64 REXEC_SESSION_MEMORY_MAX=96M' \
      'Environment="REXEC_SESSION_CPU_MAX=20000 100000" REXEC_STATS_INTERVAL_MS=1000' \
      > /etc/systemd/system/rexec-agent.service.d/limits.conf
    install_curl
  fi
  wait_online 60
}
# The cgroup directory of a terminal's shell.
session_cgroup() { echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$(shell_pid "$1")/cgroup")"; }
answers() {  # answers NAME: the terminal's shell still runs commands
  local n=$RANDOM
  send "$1" "echo \"ALIVE-\$(($n+1))\""
  wait_out "$1" "^ALIVE-$((n + 1))$" 20
}

# 9a. A fork bomb stops at pids.max; the agent and another session keep answering.
scenario_9a_pids_max() {
  limited_agent
  local main cg
  main=$(main_pid)
  open_shell b1 --split
  open_shell b2 --split
  cg=$(session_cgroup b1)
  case $cg in */rexec-agent-shells.scope/session-*) ;; *) fail "session cgroup $cg is not in the scope" ;; esac
  [ "$(cat "$cg/pids.max")" = 64 ] || fail "pids.max is $(cat "$cg/pids.max")"
  send b1 "python3 $share/guest/fork.py"
  wait_out b1 '^FORKED=[0-9]+$' 120 || fail "the fork bomb did not report"
  local forked
  forked=$(out b1 | sed -n 's/^FORKED=//p' | tail -n 1)
  if [ "$forked" -ge 64 ] || [ "$forked" -lt 40 ]; then fail "forked $forked children with pids.max 64"; fi
  [ "$(cat "$cg/pids.current")" -le 64 ] || fail "pids.current $(cat "$cg/pids.current")"
  grep -q '^max [1-9]' "$cg/pids.events" || fail "pids.events: $(cat "$cg/pids.events")"
  ok "fork bomb: $forked of 200 children, stopped at pids.max 64"
  answers b2 || fail "the other session does not answer"
  is_online || fail "the agent went offline"
  [ "$(main_pid)" = "$main" ] || fail "the agent restarted"
  ok "the agent and the other session kept answering"
  send b1 'exit'
  wait_for 20 sh -c "[ ! -d '$cg' ]" || fail "the bomb's cgroup was not removed when its session closed"
  ok "closing the session ended its $forked sleeping children and removed its cgroup"
}

# 9b. A memory hog is OOM-killed inside its own session's cgroup only.
scenario_9b_memory_max() {
  limited_agent
  local main cg other
  main=$(main_pid)
  open_shell m1 --split
  open_shell m2 --split
  cg=$(session_cgroup m1)
  other=$(session_cgroup m2)
  [ "$(cat "$cg/memory.max")" = $((96 << 20)) ] || fail "memory.max is $(cat "$cg/memory.max")"
  send m1 "python3 $share/guest/hog.py; echo \"HOG-EXIT=\$?\""
  wait_out m1 '^HOG-EXIT=[0-9]+$' 120 || fail "the hog did not end"
  local code mib
  code=$(out m1 | sed -n 's/^HOG-EXIT=//p' | tail -n 1)
  mib=$(out m1 | sed -n 's/^HOG-MIB=//p' | tail -n 1)
  [ "$code" = 137 ] || fail "the hog exited $code, not 137 (SIGKILL) after $mib MiB"
  [ "$mib" -lt 96 ] || fail "the hog got $mib MiB with memory.max 96M"
  grep -q '^oom_kill [1-9]' "$cg/memory.events" || fail "memory.events: $(tr '\n' ' ' < "$cg/memory.events")"
  ok "the hog was OOM-killed at $mib MiB, in its session's cgroup"
  grep -q '^oom_kill 0' "$other/memory.events" || fail "an OOM kill in the other session"
  local svc=/sys/fs/cgroup/system.slice/rexec-agent.service
  ! grep -q '^oom_kill [1-9]' "$svc/memory.events" 2>/dev/null || fail "an OOM kill in the agent's cgroup"
  [ "$(main_pid)" = "$main" ] || fail "the agent restarted"
  answers m1 || fail "the hog's shell does not answer"
  answers m2 || fail "the other session does not answer"
  ok "nothing else was killed: the agent, the hog's shell and the other session answer"
}

# 9c. cpu.max holds a busy loop to its quota (20 % of a CPU).
scenario_9c_cpu_max() {
  limited_agent
  open_shell c1 --split
  local cg u0 u1 t0 t1 permille
  cg=$(session_cgroup c1)
  [ "$(cat "$cg/cpu.max")" = "20000 100000" ] || fail "cpu.max is $(cat "$cg/cpu.max")"
  u0=$(sed -n 's/^usage_usec //p' "$cg/cpu.stat")
  t0=$(date +%s%N)
  send c1 "timeout 5 sh -c 'while :; do :; done'; echo \"SPIN-\$((1+1))\""
  wait_out c1 '^SPIN-2$' 60 || fail "the busy loop did not end"
  u1=$(sed -n 's/^usage_usec //p' "$cg/cpu.stat")
  t1=$(date +%s%N)
  permille=$(( (u1 - u0) * 1000000 / (t1 - t0) ))
  [ "$permille" -le 300 ] || fail "the busy loop used $permille ‰ of a CPU with cpu.max at 200 ‰"
  [ "$permille" -ge 50 ] || fail "the busy loop used only $permille ‰ of a CPU"
  grep -q '^nr_throttled [1-9]' "$cg/cpu.stat" || fail "never throttled: $(tr '\n' ' ' < "$cg/cpu.stat")"
  ok "a busy loop used $permille ‰ of a CPU under cpu.max 20000 100000 (throttled)"
}

# 9d. stats (v2) carry each open session's usage from its cgroup.
stats_show_usage() {  # the server's latest stats: every session's usage, one busy
  api /status > "$work/stats.json" || return 1
  python3 - "$work/stats.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["stats"]
assert s["isolation"] == "cgroup", s.get("isolation")
usage = s["session_usage"]
assert len(usage) >= 2, usage
for u in usage:
    assert u["pids"] >= 1 and u["memory"] > 0 and "cpu_usec" in u, u
assert max(u["cpu_usec"] for u in usage) >= 200000, usage
print("sessions in stats:", len(usage), "largest cpu_usec:", max(u["cpu_usec"] for u in usage))
PY
}
scenario_9d_stats() {
  limited_agent
  open_shell d1 --split
  open_shell d2 --split
  send d1 "timeout 2 sh -c 'while :; do :; done'"
  wait_for 20 stats_show_usage || fail "stats: $(head -c 600 "$work/stats.json")"
  ok "stats: isolation cgroup; cpu, memory and pids of every session"
}

# 7. Reboot: the agent comes back online; no keeper, scope or session cgroup is left over.
scenario_7_reboot() {
  if [ ! -f "$work/rebooted" ]; then
    start_server
    [ -f /etc/rexec/agent.json ] || install_curl
    wait_online 60
    open_shell r1 --split
    systemctl is-active --quiet rexec-agent-shells.scope || fail "no scope before the reboot"
    touch "$work/rebooted"
    sync
    exit 100  # boot.sh reboots; this scenario goes on at the next boot
  fi
  systemctl is-enabled --quiet rexec-agent || fail "not enabled after the reboot"
  start_server
  wait_online 150
  systemctl is-active --quiet rexec-agent || fail "the unit is not active after the reboot"
  systemctl is-active --quiet rexec-agent-shells.scope && fail "a scope from before the reboot"
  pgrep -f 'rexec-agent keeper' && fail "a keeper runs with no shell"
  [ -z "$(find /sys/fs/cgroup -name 'session-*' -type d)" ] || fail "stale session cgroups: $(find /sys/fs/cgroup -name 'session-*' -type d)"
  no_left_over
  agent_status
  status_has "^sessions: +0 open"
  status_has "^handover: +60 s; keeper not started"
  open_shell r2 --split
  ok "online after the reboot, nothing stale, and a new terminal works"
}
