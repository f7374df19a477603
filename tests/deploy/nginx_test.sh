#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# rexec-server behind nginx, with deploy/nginx/rexec.conf as shipped (only its CHANGE lines
# substituted): TLS at nginx, an agent registering and connecting through it (wss), a terminal
# command through it, the web page and health checks through it, and X-Forwarded-For handled
# as docs/deploy.md says. Everything on 127.0.0.1; nginx runs from a temporary prefix.
#
#   nginx_test.sh SERVER AGENT CLIENT REPO_ROOT
set -euo pipefail
server=$1 agent=$2 client=$3 repo=$4
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$nginx_bin" ]; then
  [ -n "${REXEC_REQUIRE_NGINX:-}" ] && { echo "FAIL: nginx is not installed" >&2; exit 1; }
  echo "SKIP: nginx is not installed (apt-get install nginx)"; exit 77
fi
# shellcheck source=tests/deploy/lib.sh
source "$(dirname "$0")/lib.sh"
deploy_init rexec-nginx

# A certificate for 127.0.0.1, trusted through --ca-file and SSL_CERT_FILE.
make_cert

# rexec-server on loopback, believing nginx's X-Forwarded-For.
ngx_port=$(free_port)
public="https://127.0.0.1:$ngx_port"
# The log exists before the server does: the loop below reads it at once, and under set -e a
# read of a missing file would end the test.
: >"$tmp/server.log"
"$server" serve --listen 127.0.0.1:0 --db "$tmp/rexec.db" --log-level debug \
  --jwt-secret nginx-test-secret-0123456789abcdef0123 --public-url "$public" \
  --trusted-proxy 127.0.0.1 > "$tmp/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/server.log" && break; sleep 0.05; done
srv_port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/server.log" | head -n 1)
[ -n "$srv_port" ] || fail "rexec-server did not start"

# The shipped config, with its CHANGE lines (and only those) made to fit this machine.
conf=$(nginx_site "$repo" "$ngx_port" "server 127.0.0.1:$srv_port;")
start_nginx "$nginx_bin" "$conf"
curl_n() { curl -sS --cacert "$tmp/cert.pem" "$@"; }
for _ in $(seq 1 100); do curl_n -o /dev/null "$public/healthz" 2>/dev/null && break; sleep 0.05; done
[ "$(curl_n "$public/healthz")" = '{"status":"ok"}' ] || fail "healthz through nginx"
[ "$(curl_n "$public/readyz")" = '{"db":"ok","status":"ready"}' ] || fail "readyz through nginx"
curl_n -D "$tmp/page.h" -o "$tmp/page.html" "$public/"
grep -qi "^content-security-policy: .*script-src 'self'" "$tmp/page.h" || fail "the page's CSP did not pass through"
grep -q 'src="/static/app.js"' "$tmp/page.html" || fail "the web page through nginx"
ok "TLS at nginx: health checks and the web page"

# An agent registers and connects through nginx (wss), and stays online.
token=$("$server" user add nina --db "$tmp/rexec.db" 2>/dev/null)
id=$("$agent" register --server "$public" --token "$token" --name behind-nginx \
  --ca-file "$tmp/cert.pem" --config "$tmp/agent.json" 2>"$tmp/register.log") || fail "register through nginx"
HOME=$tmp HISTFILE=/dev/null REXEC_LOG_LEVEL=debug "$agent" run --config "$tmp/agent.json" > "$tmp/agent.log" 2>&1 &
pids+=($!)
online=""
for _ in $(seq 1 100); do
  if curl_n -H "Authorization: Bearer $token" "$public/api/agents/$id" | grep -q '"status":"online"'; then
    online=1; break
  fi
  sleep 0.1
done
[ -n "$online" ] || fail "the agent did not come online through nginx"
grep -q "agent connected agent=$id protocol=v2 peer=127.0.0.1" "$tmp/server.log" || fail "agent socket not v2 through nginx"
ok "agent registered and connected through nginx (v2)"

# A command on the agent over a terminal socket through nginx.
export REXEC_CLIENT_CONFIG=$tmp/client.json SSL_CERT_FILE=$tmp/cert.pem
"$client" login --server "$public" --token "$token" > /dev/null || fail "client login through nginx"
# shellcheck disable=SC2016 # expanded by the agent's shell, not here
out=$("$client" exec "$id" -- 'echo through-nginx-$((40+2))') || fail "exec through nginx"
[[ "$out" == *through-nginx-42* ]] || fail "exec output: $out"
ok "a command ran through nginx: $out"

# A file up and down through nginx's files location: larger than the 1m of the others.
head -c 5000000 /dev/urandom > "$tmp/up.bin"
mkdir -p "$tmp/landing" "$tmp/back"
"$client" cp "$tmp/up.bin" "$id:$tmp/landing/" 2>"$tmp/cp.log" || fail "cp up through nginx: $(cat "$tmp/cp.log")"
"$client" cp "$id:$tmp/landing/up.bin" "$tmp/back/" 2>"$tmp/cp.log" || fail "cp down through nginx: $(cat "$tmp/cp.log")"
cmp -s "$tmp/up.bin" "$tmp/back/up.bin" || fail "the file changed on its way through nginx"
ok "a 5 MB file went up and came back through nginx"

# X-Forwarded-For: the server sees the address nginx appended (this client's, 127.0.0.5),
# never one the client claims.
code=$(curl_n --interface 127.0.0.5 -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 10.66.66.66' \
  -H 'Upgrade: websocket' -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$public/ws/agent/$id/terminal?id=xff")
[ "$code" = 401 ] || fail "an upgrade without a token through nginx answered $code"
grep -q "upgrade refused path=/ws/agent/$id/terminal status=401 peer=127.0.0.5" "$tmp/server.log" ||
  fail "the refused upgrade was not logged with nginx's client address"
grep -q "10.66.66.66" "$tmp/server.log" && fail "a client-supplied X-Forwarded-For was believed"
ok "the client address is the one nginx saw (X-Forwarded-For: last entry only)"

# Long-lived sockets: the agent link survives several of the server's pings through nginx.
sleep 2
curl_n -H "Authorization: Bearer $token" "$public/api/agents/$id" | grep -q '"status":"online"' || fail "agent dropped"
grep -q "agent disconnected" "$tmp/server.log" && fail "the agent link dropped through nginx"
ok "the agent link stays up"
echo "PASS: rexec-server behind nginx"
