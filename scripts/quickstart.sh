#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on a fresh Debian 12 machine: install dependencies, build, start the reference
# server on 127.0.0.1, create a user, register this machine as an agent, connect it, and print
# the command that opens a terminal on it. Everything lives in ./run/ (override with RUN_DIR);
# stop it all with: kill $(cat run/*.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
run_dir=${RUN_DIR:-$repo/run}
port=${PORT:-8080}

bash scripts/install-deps.sh
cmake --preset release-static >/dev/null
cmake --build --preset release-static --target rexec-agent rexec-server rexec
bin=$repo/build/release-static
server=$bin/server/rexec-server
agent=$bin/agent/rexec-agent
client=$bin/client/rexec

mkdir -p "$run_dir"
for f in "$run_dir"/*.pid; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
done
rm -f "$run_dir"/*.pid "$run_dir"/rexec.db* "$run_dir"/agent.json "$run_dir"/client.json

# The server also offers this agent build to other machines (install.sh downloads it).
mkdir -p "$run_dir/downloads"
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
cp "$agent" "$run_dir/downloads/rexec-agent-linux-$arch"
"$server" serve --listen "127.0.0.1:$port" --db "$run_dir/rexec.db" \
  --downloads-dir "$run_dir/downloads" >"$run_dir/server.log" 2>&1 &
echo $! >"$run_dir/server.pid"
for _ in $(seq 1 50); do
  grep -q "listening on" "$run_dir/server.log" && break
  sleep 0.1
done
grep -q "listening on" "$run_dir/server.log" || { cat "$run_dir/server.log"; exit 1; }
url="http://127.0.0.1:$port"

token=$("$server" user add demo --tier pro --db "$run_dir/rexec.db" 2>/dev/null)
(umask 077 && printf '%s\n' "$token" >"$run_dir/token")
agent_id=$("$agent" --config "$run_dir/agent.json" register --server "$url" --token "$token" \
  --name "$(hostname)")
"$agent" --config "$run_dir/agent.json" run >"$run_dir/agent.log" 2>&1 &
echo $! >"$run_dir/agent.pid"

export REXEC_CLIENT_CONFIG=$run_dir/client.json
"$client" login --server "$url" --token "$token" >/dev/null
for _ in $(seq 1 50); do
  "$client" agents | grep -q online && break
  sleep 0.1
done
echo
"$client" agents
echo
"$agent" version
file "$agent" | sed 's/, BuildID[^,]*//'
echo
echo "The server runs at $url (log: $run_dir/server.log); agent $agent_id is online."
echo
echo "Open a terminal on it in your browser:"
echo
echo "  $url/"
echo
echo "  and sign in with the API token in $run_dir/token (cat $run_dir/token)."
echo
echo "Or in this terminal:"
echo
echo "  REXEC_CLIENT_CONFIG=$run_dir/client.json $client term $agent_id"
echo
echo "Run one command:  REXEC_CLIENT_CONFIG=$run_dir/client.json $client exec $agent_id -- uname -a"
echo "Install the agent on another machine that can reach $url:"
echo "  curl -fsSL $url/install-agent.sh | sh -s -- --token \"\$(cat $run_dir/token)\""
echo "Stop everything:  kill \$(cat $run_dir/*.pid)"
