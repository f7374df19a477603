# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by the deploy tests (sourced, under set -euo pipefail): a temporary directory, the
# background processes killed at exit, fail/ok, free loopback ports, a certificate for
# 127.0.0.1, and nginx run from a temporary prefix with the shipped site config.
#
#   deploy_init NAME   sets $tmp and pids=(); a function cleanup_extra, if defined, runs at exit
#                      before the directory is removed (kept when REXEC_DEPLOY_KEEP is set).
#
# The cluster tests (three instances behind nginx) also use cluster_need_tools,
# cluster_start_backends, start_instance, cluster_upstream and stop_instance below.

deploy_init() {
  tmp=$(mktemp -d "/tmp/$1-XXXXXX")
  pids=()
  trap deploy_cleanup EXIT
}

deploy_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
  if [ -n "${cluster_repo:-}" ]; then
    bash "$cluster_repo/tests/fixtures/pg_cluster.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
  fi
  if [ -n "${REXEC_DEPLOY_KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}

fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*.log "$tmp"/nginx/logs/*.log; do
    [ -f "$f" ] && { echo "---- $f" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}

ok() { echo "ok: $*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# $tmp/cert.pem and $tmp/key.pem, for 127.0.0.1 and localhost, valid a day.
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null || fail "openssl could not make a certificate"
}

# Writes deploy/nginx/rexec.conf as shipped, with its CHANGE lines made to fit this machine:
# UPSTREAM replaces the upstream's server line, nginx listens on 127.0.0.1:PORT with
# $tmp/cert.pem. Prints the config's path.
nginx_site() {  # REPO PORT UPSTREAM
  local repo=$1 port=$2 upstream=$3 conf="$tmp/nginx/conf/rexec.conf"
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/conf"
  sed -e "s|server 127.0.0.1:8080 max_fails=0;|$upstream|" \
      -e "s|listen 443 ssl;|listen 127.0.0.1:$port ssl;|" \
      -e "s|server_name rexec.example.com;|server_name 127.0.0.1;|" \
      -e "s|/etc/ssl/rexec/fullchain.pem|$tmp/cert.pem|" \
      -e "s|/etc/ssl/rexec/privkey.pem|$tmp/key.pem|" \
      "$repo/deploy/nginx/rexec.conf" > "$conf"
  for want in "$upstream" "listen 127.0.0.1:$port ssl;" "$tmp/cert.pem" "$tmp/key.pem"; do
    grep -qF "$want" "$conf" || fail "deploy/nginx/rexec.conf changed: no line to substitute for $want"
  done
  echo "$conf"
}

# Checks and starts nginx (in the foreground, as a background job of ours) with the site CONF.
# CONNECTIONS (default 256) is its worker_connections: each proxied socket takes two.
start_nginx() {  # NGINX_BINARY CONF [CONNECTIONS]
  local bin=$1 conf=$2 connections=${3:-256}
  cat > "$tmp/nginx/conf/nginx.conf" <<NGINX
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log info;
events { worker_connections $connections; }
http {
  access_log $tmp/nginx/logs/access.log;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  include $conf;
}
NGINX
  "$bin" -t -p "$tmp/nginx" -c "$tmp/nginx/conf/nginx.conf" > "$tmp/nginx-t.log" 2>&1 ||
    fail "nginx -t refused the config"
  "$bin" -p "$tmp/nginx" -c "$tmp/nginx/conf/nginx.conf" -g 'daemon off; master_process off;' \
    > "$tmp/nginx.log" 2>&1 &
  pids+=($!)
}

# Skips (77) when nginx or redis-server is missing, or fails when REXEC_REQUIRE_NGINX is set
# (CI). Sets $nginx_bin.
cluster_need_tools() {
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  local need
  for need in "$nginx_bin" /usr/bin/redis-server; do
    if [ ! -x "$need" ]; then
      [ -n "${REXEC_REQUIRE_NGINX:-}" ] && { echo "FAIL: $need is not installed" >&2; exit 1; }
      echo "SKIP: $need is not installed"; exit 77
    fi
  done
}

# One PostgreSQL database (tests/fixtures/pg_cluster.sh, in $tmp/pg, stopped at exit) and one
# Redis on a free port: sets $db and $redis_port. Skips (77) without PostgreSQL.
cluster_start_backends() {  # REPO
  cluster_repo=$1
  chmod 755 "$tmp"  # the PostgreSQL cluster inside belongs to the postgres user
  local rc=0
  bash "$cluster_repo/tests/fixtures/pg_cluster.sh" start "$tmp/pg" > "$tmp/pg.log" 2>&1 || rc=$?
  [ "$rc" -eq 77 ] && { echo "SKIP: PostgreSQL is not installed"; exit 77; }
  [ "$rc" -eq 0 ] || fail "the PostgreSQL test cluster did not start"
  db=$(cat "$tmp/pg/url")
  redis_port=$(free_port)
  /usr/bin/redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    > "$tmp/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "Ready to accept" "$tmp/redis.log" && break; sleep 0.05; done
  grep -q "Ready to accept" "$tmp/redis.log" || fail "redis-server did not start"
}

# Instances of the cluster, by name: their ports (kept across restarts) and current pids.
declare -A port=() pid=()
instance_flags=()

# Starts rexec-server instance NAME ($server, on $db and Redis, public URL $public, plus the
# flags in the array instance_flags if set) on 127.0.0.1:${port[NAME]}: a free port the first
# time, the same port when started again. Its log $tmp/server-NAME.log grows across restarts.
# Returns once this start listens (≤ 10 s).
start_instance() {  # NAME
  local name=$1 log="$tmp/server-$1.log" before
  [ -n "${port[$name]:-}" ] || port[$name]=$(free_port)
  touch "$log"
  before=$(wc -l < "$log")
  # shellcheck disable=SC2154 # $server and $public are the sourcing test's
  "$server" serve --listen "127.0.0.1:${port[$name]}" --db "$db" \
    --redis "redis://127.0.0.1:$redis_port" --instance-id "$name" --log-level debug \
    --jwt-secret nginx-cluster-secret-0123456789abcdef01 --public-url "$public" \
    --trusted-proxy 127.0.0.1 "${instance_flags[@]}" >> "$log" 2>&1 &
  pid[$name]=$!
  pids+=($!)
  for _ in $(seq 1 200); do
    tail -n +$((before + 1)) "$log" | grep -q "listening on" && return 0
    kill -0 "${pid[$name]}" 2>/dev/null || break
    sleep 0.05
  done
  fail "instance $name did not start"
}

# The upstream's server lines for instances NAME..., each with max_fails=0 as the shipped config
# has it (nginx_site's UPSTREAM).
cluster_upstream() {  # NAME...
  local name
  for name in "$@"; do printf 'server 127.0.0.1:%s max_fails=0; ' "${port[$name]}"; done
}

# SIGTERM to instance NAME, as systemd stops it; fails unless it exits within 15 s.
stop_instance() {  # NAME
  local name=$1 p=${pid[$1]} kept=() q
  kill -TERM "$p"
  for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$p" 2>/dev/null && fail "instance $name did not exit within 15 s of SIGTERM"
  wait "$p" 2>/dev/null || true
  for q in "${pids[@]}"; do [ "$q" = "$p" ] || kept+=("$q"); done
  pids=("${kept[@]}")
}
