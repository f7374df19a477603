#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A rolling restart (docs/deploy.md, "Rolling restart"): three rexec-server instances behind the
# shipped nginx config, on one PostgreSQL database and one Redis, with ROLL_AGENTS real agents
# connected and ROLL_VIEWERS terminals streaming numbered lines to viewers
# (rexec-rolling-driver). Each instance in turn gets SIGTERM and starts again on its port.
# Asserts: every viewer got every line exactly once, in order; the p99 time for a viewer's
# output to resume is at most 5 s; every agent is online at the end; and no agent was offline
# longer than its reconnect (below). Everything on 127.0.0.1.
#
#   nginx_rolling_test.sh SERVER AGENT DRIVER REPO_ROOT
#   ROLL_AGENTS (20), ROLL_VIEWERS (8), ROLL_PAUSE_S (4): seconds between two restarts
#
# "Offline longer than its reconnect": an agent whose link drops waits the delay its backoff
# draws (PROTOCOL §3.1: full jitter in base·2^n, 1 s base; none after a link that lasted over
# 60 s) and dials once. The test requires that first dial to succeed (through nginx, to an
# instance that is up) and the agent to be connected at most kDialAllowance = 2 s after its
# delay ran out: that is the time for TLS, the upgrade and the token check on a busy 2-core
# machine. Offline time is read from the agent's own log: "disconnected" to "connected".
set -euo pipefail
server=$1 agent=$2 driver=$3 repo=$4
agents=${ROLL_AGENTS:-20}
viewers=${ROLL_VIEWERS:-8}
pause=${ROLL_PAUSE_S:-4}
dial_allowance_ms=2000
resume_p99_limit_ms=5000
[ "$viewers" -le "$agents" ] || { echo "FAIL: ROLL_VIEWERS > ROLL_AGENTS" >&2; exit 1; }
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_need_tools
deploy_init rexec-nginx-rolling
cluster_start_backends "$repo"
# Sockets: agents, viewers and the instances' own, in this shell's children.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

make_cert
ngx_port=$(free_port)
public="https://127.0.0.1:$ngx_port"
# Every client reaches the instances from 127.0.0.1 here (nginx's X-Forwarded-For), where a
# fleet comes from as many addresses as it has hosts: the per-address rate limit is raised so
# that it does not stand for one address per agent. The plan limit lets one user hold them all.
instance_flags=(--rate-limit 2000 --plan-limit "free=$agents")
for name in a b c; do start_instance "$name"; done
conf=$(nginx_site "$repo" "$ngx_port" "$(cluster_upstream a b c)")
start_nginx "$nginx_bin" "$conf" $((4 * (agents + viewers) + 256))
curl_n() { curl -sS --cacert "$tmp/cert.pem" "$@"; }
for _ in $(seq 1 100); do curl_n -o /dev/null "$public/healthz" 2>/dev/null && break; sleep 0.05; done
[ "$(curl_n "$public/readyz")" = '{"db":"ok","redis":"ok","status":"ready"}' ] || fail "readyz through nginx"
ok "three instances ready behind nginx"

# One user; each agent registers through nginx with an API token of its own (POST /api/tokens).
token=$("$server" user add rolly --db "$db" 2>/dev/null)
umask 077
printf '%s\n' "$token" > "$tmp/token"
mkdir -p "$tmp/agents"
register() {  # N
  local n=$1 t
  t=$(curl_n -X POST -H "authorization: Bearer $token" -d "{\"name\":\"agent-$n\"}" \
    "$public/api/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
    return 1
  "$agent" register --server "$public" --token "$t" --name "roll-$n" --ca-file "$tmp/cert.pem" \
    --config "$tmp/agents/$n.json" > "$tmp/agents/$n.id" 2> "$tmp/agents/$n.register.log"
}
# Four at a time.
batch=()
for n in $(seq 1 "$agents"); do
  register "$n" &
  batch+=($!)
  if [ ${#batch[@]} -eq 4 ] || [ "$n" -eq "$agents" ]; then
    for p in "${batch[@]}"; do wait "$p" || fail "agent registration failed"; done
    batch=()
  fi
done
for n in $(seq 1 "$agents"); do
  [ -s "$tmp/agents/$n.id" ] || fail "agent $n did not register: $(cat "$tmp/agents/$n.register.log")"
  HOME=$tmp HISTFILE=/dev/null "$agent" run --config "$tmp/agents/$n.json" \
    > "$tmp/agents/$n.log" 2>&1 &
  pids+=($!)
done
online() {  # prints how many agents the API lists online (0 when it does not answer)
  curl_n -H "authorization: Bearer $token" "$public/api/agents" 2>/dev/null | python3 -c '
import json, sys
try: print(sum(a["status"] == "online" for a in json.load(sys.stdin)))
except ValueError: print(0)'
}
for _ in $(seq 1 300); do [ "$(online)" = "$agents" ] && break; sleep 0.1; done
[ "$(online)" = "$agents" ] || fail "only $(online) of $agents agents came online"
ok "$agents agents online through nginx"

# The viewers: one per agent, for the first $viewers agents.
for n in $(seq 1 "$viewers"); do cat "$tmp/agents/$n.id"; done > "$tmp/viewed"
"$driver" --url "$public" --ca-file "$tmp/cert.pem" --token-file "$tmp/token" \
  --agents "$tmp/viewed" --stop-file "$tmp/stop" --ready-file "$tmp/ready" \
  > "$tmp/driver.json" 2> "$tmp/driver.log" &
driver_pid=$!
pids+=($!)
for _ in $(seq 1 600); do [ -e "$tmp/ready" ] && break; kill -0 $driver_pid || break; sleep 0.1; done
[ -e "$tmp/ready" ] || fail "the viewers' terminals did not start streaming"
ok "$viewers terminals streaming numbered lines"

# The rolling restart.
sleep "$pause"
for name in a b c; do
  started=$(date +%s.%N)
  echo "$(date +%T.%3N) restarting instance $name"
  stop_instance "$name"
  start_instance "$name"
  ok "instance $name restarted in $(python3 -c "import time; print(round(time.time() - $started, 1))") s"
  sleep "$pause"
done
# Every agent is back before the viewers stop; those that drew long delays get the time.
for _ in $(seq 1 300); do [ "$(online)" = "$agents" ] && break; sleep 0.1; done
on=$(online)

touch "$tmp/stop"
for _ in $(seq 1 600); do kill -0 $driver_pid 2>/dev/null || break; sleep 0.1; done
kill -0 $driver_pid 2>/dev/null && fail "the driver did not finish"
wait $driver_pid || fail "the driver failed"
echo "driver: $(cat "$tmp/driver.json")"
grep -v "resumed after" "$tmp/driver.log" | tail -n 40 || true
[ "$on" = "$agents" ] || fail "only $on of $agents agents online after the restarts"
ok "all $agents agents online after the restarts"

# The viewers' figures.
python3 - "$tmp/driver.json" "$viewers" "$resume_p99_limit_ms" <<'PY' || fail "the viewers' figures"
import json, sys
r = json.load(open(sys.argv[1]))
viewers, limit = int(sys.argv[2]), int(sys.argv[3])
bad = []
if r["viewers"] != viewers or not r["ready"]: bad.append("not every viewer streamed")
for k in ("duplicates", "missing", "gaps", "offset_jumps", "shell_restarts", "unfinished"):
    if r[k] != 0: bad.append(f"{k}={r[k]}")
if r["lines"] <= 0: bad.append("no lines")
if r["drops"] == 0: bad.append("no viewer was ever disconnected: the restarts did not reach them")
if r["resume_ms"]["p99"] > limit: bad.append(f"resume p99 {r['resume_ms']['p99']} ms > {limit} ms")
if r["stall_ms"]["p99"] > limit: bad.append(f"stall p99 {r['stall_ms']['p99']} ms > {limit} ms")
for b in bad: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
ok "every line exactly once for every viewer; resume and stall p99 within ${resume_p99_limit_ms} ms"

# The agents' offline periods, from their logs.
python3 - "$tmp/agents" "$agents" "$dial_allowance_ms" <<'PY' || fail "an agent was offline longer than its reconnect"
import datetime, re, sys
root, count, allowance = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
stamp = re.compile(r"^(\S+) \S+ (.*)$")
periods, bad, worst, failed, offline = 0, [], 0, 0, []
for n in range(1, count + 1):
    down, delay, dials = None, 0, 0
    for line in open(f"{root}/{n}.log", errors="replace"):
        m = stamp.match(line)
        if not m: continue
        t = datetime.datetime.fromisoformat(m.group(1)).timestamp() * 1000
        text = m.group(2)
        if text.startswith("disconnected from server"):
            down, delay, dials = t, 0, 0
        elif down is not None and text.startswith("reconnecting in_ms="):
            if dials == 0: delay = int(text.split("=")[1])
            dials += 1
        elif down is not None and text.startswith("connected to server"):
            periods += 1
            offline.append(t - down)
            excess = t - down - delay
            worst = max(worst, excess)
            if dials != 1:
                failed += dials - 1
                bad.append(f"agent {n}: {dials} dials to come back")
            elif excess > allowance:
                bad.append(f"agent {n}: offline {t - down:.0f} ms after a {delay} ms delay")
            down = None
    if down is not None: bad.append(f"agent {n}: still offline at the end")
offline.sort()
pick = lambda p: offline[max(1, -(-len(offline) * p // 100)) - 1] if offline else 0
print(f"agents: {periods} reconnects, offline p50 {pick(50):.0f} ms, p99 {pick(99):.0f} ms, "
      f"max {pick(100):.0f} ms; failed dials {failed}; "
      f"worst offline beyond the drawn delay {worst:.0f} ms")
for b in bad[:20]: print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad or periods == 0 else 0)
PY
ok "no agent was offline longer than its backoff delay + ${dial_allowance_ms} ms"
echo "PASS: rolling restart of three instances behind nginx ($agents agents, $viewers terminals)"
