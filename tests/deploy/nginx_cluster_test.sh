#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Three rexec-server instances behind nginx (docs/deploy.md, "Several instances"): the shipped
# deploy/nginx/rexec.conf with its upstream listing all three (round robin), one PostgreSQL
# database (tests/fixtures/pg_cluster.sh) and one Redis. Commands through nginx land on every
# instance and reach the agent wherever it is; the agent's instance is killed, the agent comes
# back through nginx on another one, and commands work again. Everything on 127.0.0.1.
#
#   nginx_cluster_test.sh SERVER AGENT CLIENT REPO_ROOT
set -euo pipefail
server=$1 agent=$2 client=$3 repo=$4
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
cluster_need_tools
deploy_init rexec-nginx-cluster
cluster_start_backends "$repo"

make_cert
ngx_port=$(free_port)
public="https://127.0.0.1:$ngx_port"

instance_flags=(--ping-interval-ms 500 --pong-timeout-ms 2000)
for name in a b c; do start_instance "$name"; done

# The shipped config; the upstream's one server line becomes the three instances.
conf=$(nginx_site "$repo" "$ngx_port" "$(cluster_upstream a b c)")
start_nginx "$nginx_bin" "$conf"
curl_n() { curl -sS --cacert "$tmp/cert.pem" "$@"; }
for _ in $(seq 1 100); do curl_n -o /dev/null "$public/healthz" 2>/dev/null && break; sleep 0.05; done
for _ in 1 2 3; do
  [ "$(curl_n "$public/readyz")" = '{"db":"ok","redis":"ok","status":"ready"}' ] || fail "readyz through nginx"
done
ok "three instances ready behind nginx (PostgreSQL and Redis answer)"

token=$("$server" user add nina --db "$db" 2>/dev/null)
id=$("$agent" register --server "$public" --token "$token" --name in-cluster \
  --ca-file "$tmp/cert.pem" --config "$tmp/agent.json" 2>"$tmp/register.log") || fail "register through nginx"
HOME=$tmp HISTFILE=/dev/null REXEC_LOG_LEVEL=debug "$agent" run --config "$tmp/agent.json" > "$tmp/agent.log" 2>&1 &
pids+=($!)
home_of_agent() { grep -l "agent connected agent=$id" "$tmp"/server-?.log 2>/dev/null | tail -n 1 | sed 's/.*server-\(.\)\.log/\1/'; }
for _ in $(seq 1 100); do [ -n "$(home_of_agent)" ] && break; sleep 0.1; done
home=$(home_of_agent)
[ -n "$home" ] || fail "the agent did not connect"
ok "the agent is on instance $home"

export REXEC_CLIENT_CONFIG=$tmp/client.json SSL_CERT_FILE=$tmp/cert.pem
"$client" login --server "$public" --token "$token" > /dev/null || fail "client login"
# Round robin: six commands (POST /api/agents/:id/exec) reach every instance.
for n in 1 2 3 4 5 6; do
  # shellcheck disable=SC2016 # expanded by the agent's shell
  out=$("$client" exec "$id" -- "echo cluster-\$((40+$n))") || fail "exec $n through nginx"
  [[ "$out" == *cluster-$((40+n))* ]] || fail "exec $n output: $out"
done
relayed=0
for name in a b c; do
  [ "$name" = "$home" ] && continue
  grep -q "upgrade refused" "$tmp/server-$name.log" && fail "instance $name refused a terminal"
  relayed=$((relayed + $(grep -c "exec relayed agent=$id .*to=$home" "$tmp/server-$name.log" || true)))
done
[ "$relayed" -ge 1 ] || fail "no command went through another instance than the agent's"
ok "six commands through nginx, $relayed of them relayed from other instances to $home"

# The agent's instance dies; nginx sends the agent's next dial to another one.
kill -9 "${pid[$home]}"
moved=""
for _ in $(seq 1 150); do
  now=$(grep -l "agent connected agent=$id" "$tmp"/server-?.log | grep -v "server-$home.log" | head -n 1 || true)
  [ -n "$now" ] && { moved=$now; break; }
  sleep 0.1
done
[ -n "$moved" ] || fail "the agent did not come back on another instance"
ok "instance $home killed: the agent reconnected to $(basename "$moved" .log)"
for n in 7 8 9; do
  out=$("$client" exec "$id" -- "echo after-\$((40+$n))") || fail "exec $n after the move"
  [[ "$out" == *after-$((40+n))* ]] || fail "exec $n output after the move: $out"
done
ok "commands through nginx reach the agent again"
echo "PASS: three rexec-server instances behind nginx"
