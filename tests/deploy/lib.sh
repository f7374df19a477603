# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared by the deploy tests (sourced, under set -euo pipefail): a temporary directory, the
# background processes killed at exit, fail/ok, free loopback ports, a certificate for
# 127.0.0.1, and nginx run from a temporary prefix with the shipped site config.
#
#   deploy_init NAME   sets $tmp and pids=(); a function cleanup_extra, if defined, runs at exit
#                      before the directory is removed.

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
  rm -rf "$tmp"
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
  sed -e "s|server 127.0.0.1:8080;|$upstream|" \
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
start_nginx() {  # NGINX_BINARY CONF
  local bin=$1 conf=$2
  cat > "$tmp/nginx/conf/nginx.conf" <<NGINX
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log info;
events { worker_connections 256; }
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
