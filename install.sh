#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs rexec-agent on this Linux machine, registers it and runs it as a systemd service.
#
#   curl -fsSL https://SERVER/install-agent.sh | sh -s -- --token rexec_... [--name NAME]
#   sh install.sh --server https://SERVER --token rexec_...            (from a checkout)
#   sh install.sh --uninstall [--token USER_TOKEN]
#
# Options:
#   --token T       a user API token (registers a new agent) or, with --agent-id, the agent's own
#   --server URL    the Rexec server (default: the server this script was downloaded from)
#   --name N        agent name (default: the host name)
#   --agent-id ID   an agent that is already registered: save ID and its token, do not register
#   --ca-file F     PEM file of CA certificates to trust for the server (saved in the config)
#   --binary F      install this rexec-agent binary instead of downloading one
#   --no-start      install and register, but do not start the service
#   --uninstall     stop and remove the service, binary and config; delete the agent on the
#                   server when a user token is given
#   --print-unit P  print the systemd unit for binary P and config /etc/rexec/agent.json; exit
#   --systemd-version N  with --print-unit: write the unit for systemd N (default: this host's)
#
# Running it twice changes nothing. The token goes only into the config file (mode 0600): never
# into the unit file, a command line that outlives this script, or the service's environment.
set -eu

# rexec-server fills this in when it serves the script as /install-agent.sh.
default_server=''

say() { printf 'rexec-agent install: %s\n' "$*"; }
die() { printf 'rexec-agent install: %s\n' "$*" >&2; exit 1; }

token=''
server=''
name=''
agent_id=''
ca_file=''
binary=''
start=1
action=install
systemd_version=''
while [ $# -gt 0 ]; do
  case "$1" in
    --token) [ $# -ge 2 ] || die "--token needs a value"; token=$2; shift 2 ;;
    --server) [ $# -ge 2 ] || die "--server needs a value"; server=$2; shift 2 ;;
    --name) [ $# -ge 2 ] || die "--name needs a value"; name=$2; shift 2 ;;
    --agent-id) [ $# -ge 2 ] || die "--agent-id needs a value"; agent_id=$2; shift 2 ;;
    --ca-file) [ $# -ge 2 ] || die "--ca-file needs a value"; ca_file=$2; shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a value"; binary=$2; shift 2 ;;
    --no-start) start=0; shift ;;
    --uninstall) action=uninstall; shift ;;
    --print-unit) [ $# -ge 2 ] || die "--print-unit needs a path"; action=print-unit; binary=$2; shift 2 ;;
    --systemd-version) [ $# -ge 2 ] || die "--systemd-version needs a number"; systemd_version=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
done
[ -n "$server" ] || server=$default_server
server=${server%/}

# Where things go: system-wide as root, else in the user's home.
if [ "$(id -u)" -eq 0 ]; then
  bin_dir=/usr/local/bin
  config=/etc/rexec/agent.json
else
  bin_dir=${HOME:?HOME is not set}/.local/bin
  config=${XDG_CONFIG_HOME:-$HOME/.config}/rexec/agent.json
fi
bin=$bin_dir/rexec-agent
unit_path=/etc/systemd/system/rexec-agent.service

# The unit. 78 (EX_CONFIG) is the agent's exit status for a revoked token or a deleted agent
# (401/403/404): restarting cannot help, so systemd must not. The agent reconnects with its own
# backoff while it runs; RestartSec only spaces out restarts after a crash. On systemd 254 and
# later RestartSteps and RestartMaxDelaySec grow that delay to 5 min; older systemd (252 in
# Debian 12, 249 in Ubuntu 22.04) does not know them and would log "Unknown key" at every load,
# so they are written only for a systemd that knows them ($3, the version).
# Until the config exists (a .deb installed but not registered) the unit does not start at all.
# Shells outlive a restart, an upgrade or a crash of the agent (docs/architecture.md, "Shell
# handover"): with --handover 60 the agent starts a keeper process for them, and puts the keeper
# and the shells in a scope unit of their own, rexec-agent-shells.scope (%N-shells.scope). So this
# service's own cgroup holds only the agent, and systemd ends all of it on every stop (the default
# KillMode=control-group) without finding anything "left over" at the next start. ExecStopPost
# ends the scope when the service stops for good: a stop job (`systemctl stop`, `disable --now`,
# an uninstall, a shutdown) or exit status 78; not during a restart job (a restart, an upgrade),
# nor after a crash (no job: systemd starts the agent again after RestartSec). "-": its failure
# does not fail the unit. Delegate=yes hands the service's cgroup to the agent for session
# cgroups ("Session isolation") where it runs its shells itself (no keeper).
print_unit() {
  cat <<EOF
[Unit]
Description=Rexec agent: browser terminals on this machine
Documentation=https://github.com/rexec/rexec-agent
After=network-online.target
Wants=network-online.target
ConditionPathExists=$2
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=$1 --config $2 run --handover 60
ExecStopPost=-/bin/sh -c 'if [ "\$\$EXIT_STATUS" = 78 ] || systemctl list-jobs --no-legend %n | grep -qw stop; then systemctl stop --no-block %N-shells.scope; fi'
Delegate=yes
Restart=always
RestartSec=5
EOF
  if [ "${3:-0}" -ge 254 ] 2>/dev/null; then
    printf 'RestartSteps=6\nRestartMaxDelaySec=300\n'
  fi
  cat <<EOF
RestartPreventExitStatus=78
StandardOutput=journal
StandardError=journal
SyslogIdentifier=rexec-agent
UMask=0077

[Install]
WantedBy=multi-user.target
EOF
}

# This host's systemd version ("systemd 252 (252.38-1~deb12u1)" gives 252), or 0.
host_systemd_version() {
  v=$(systemctl --version 2>/dev/null | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p')
  echo "${v:-0}"
}

if [ "$action" = print-unit ]; then
  print_unit "$binary" /etc/rexec/agent.json "${systemd_version:-$(host_systemd_version)}"
  exit 0
fi

have_systemd() {
  [ "$(id -u)" -eq 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

uninstall() {
  if have_systemd && [ -f "$unit_path" ]; then
    systemctl disable --now rexec-agent.service >/dev/null 2>&1 || true
    rm -f "$unit_path"
    systemctl daemon-reload
    say "removed the rexec-agent service"
  fi
  if [ -f "$config" ] && [ -x "$bin" ]; then
    if [ -n "$token" ]; then
      # The user token reaches the agent on stdin, not on its command line.
      if printf '%s\n' "$token" | "$bin" --config "$config" unregister --token-stdin; then
        :
      else
        say "could not delete the agent on the server; delete it there by hand"
      fi
    else
      say "the agent stays listed on the server: pass --token with a user token to delete it"
    fi
  fi
  rm -f "$config" "$bin"
  rmdir "$(dirname "$config")" 2>/dev/null || true
  say "uninstalled"
}

if [ "$action" = uninstall ]; then
  uninstall
  exit 0
fi

case "$(uname -s)" in
  Linux) ;;
  *) die "rexec-agent runs on Linux only (this is $(uname -s))" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) die "no rexec-agent build for $(uname -m) (amd64 and arm64 are available)" ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

fetch() {  # fetch URL FILE
  if command -v curl >/dev/null 2>&1; then
    if [ -n "$ca_file" ]; then
      curl -fsSL --proto '=https,http' --cacert "$ca_file" -o "$2" "$1"
    else
      curl -fsSL --proto '=https,http' -o "$2" "$1"
    fi
  elif command -v wget >/dev/null 2>&1; then
    if [ -n "$ca_file" ]; then
      wget -q --ca-certificate="$ca_file" -O "$2" "$1"
    else
      wget -q -O "$2" "$1"
    fi
  else
    die "neither curl nor wget is installed"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  else
    openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
  fi
}

# An ELF executable starts with 0x7f 'E' 'L' 'F'; an error page starts with '<' or text.
is_elf() {
  [ "$(dd if="$1" bs=1 count=4 2>/dev/null | od -An -c | tr -d ' \n')" = '177ELF' ]
}

# 1. The binary: --binary, a build in this checkout, or a verified download.
# (Piped into sh, $0 is "sh": only a real install.sh beside CMakePresets.json is a checkout.)
script_dir=$(cd "$(dirname "$0")" 2>/dev/null && pwd) || script_dir=''
if [ -z "$binary" ] && [ -f "$0" ] && [ -f "$script_dir/install.sh" ] &&
   [ -f "$script_dir/CMakePresets.json" ]; then
  for candidate in "$script_dir/build/release-static/agent/rexec-agent" \
                   "$script_dir/build/gcc-werror/agent/rexec-agent"; do
    if [ -x "$candidate" ]; then binary=$candidate; break; fi
  done
fi
if [ -z "$binary" ]; then
  [ -n "$server" ] || die "no --server given, and no rexec-agent binary to install"
  file=rexec-agent-linux-$arch
  say "downloading $server/downloads/$file"
  fetch "$server/downloads/$file" "$tmp/$file" || die "download of $server/downloads/$file failed"
  fetch "$server/downloads/$file.sha256" "$tmp/$file.sha256" ||
    die "download of $server/downloads/$file.sha256 failed"
  is_elf "$tmp/$file" ||
    die "the download is not a Linux program (an HTML page or an error?): refusing to install it"
  want=$(cut -d ' ' -f 1 < "$tmp/$file.sha256")
  got=$(sha256_of "$tmp/$file")
  case "$want" in
    *[!0-9a-f]*|'') die "the checksum file is not a SHA-256: refusing to install" ;;
  esac
  [ "$want" = "$got" ] ||
    die "checksum mismatch (truncated or altered download): expected $want, got $got"
  binary=$tmp/$file
fi
[ -f "$binary" ] || die "$binary does not exist"
is_elf "$binary" || die "$binary is not a Linux program"

# 2. Install it, atomically, only when it differs.
mkdir -p "$bin_dir"
if [ -f "$bin" ] && cmp -s "$binary" "$bin"; then
  say "$bin is up to date"
  binary_changed=0
else
  cp "$binary" "$bin.new.$$"
  chmod 0755 "$bin.new.$$"
  mv -f "$bin.new.$$" "$bin"
  say "installed $bin ($("$bin" version | head -n 1))"
  binary_changed=1
fi

# 3. Register, unless this config already holds an agent.
registered_id() {
  [ -f "$config" ] || return 1
  sed -n 's/^ *"agent_id": *"\([^"]*\)".*/\1/p' "$config" | head -n 1 | grep .
}
if id=$(registered_id); then
  say "already registered as agent $id ($config)"
else
  [ -n "$token" ] || die "no --token given (a rexec_ API token from the server's settings)"
  [ -n "$server" ] || die "no --server given"
  set -- --config "$config" register --server "$server" --token-stdin
  [ -n "$name" ] && set -- "$@" --name "$name"
  [ -n "$ca_file" ] && set -- "$@" --ca-file "$ca_file"
  if [ -n "$agent_id" ]; then
    case "$token" in
      rexec_*) set -- "$@" --agent-id "$agent_id" ;;
      *) die "--agent-id needs the agent's own rexec_ token" ;;
    esac
  fi
  id=$(printf '%s\n' "$token" | "$bin" "$@") || die "registration failed (see above)"
  say "registered as agent $id; config in $config (mode 0600)"
fi

# 4. Run it: a systemd service as root, else say how.
if have_systemd; then
  print_unit "$bin" "$config" "$(host_systemd_version)" > "$tmp/unit"
  unit_changed=0
  if ! [ -f "$unit_path" ] || ! cmp -s "$tmp/unit" "$unit_path"; then
    cp "$tmp/unit" "$unit_path.new"
    chmod 0644 "$unit_path.new"
    mv -f "$unit_path.new" "$unit_path"
    systemctl daemon-reload
    unit_changed=1
  fi
  systemctl enable rexec-agent.service >/dev/null 2>&1
  if [ "$start" -eq 1 ]; then
    if [ "$unit_changed" -eq 1 ] || [ "$binary_changed" -eq 1 ] ||
       ! systemctl is-active --quiet rexec-agent.service; then
      systemctl restart rexec-agent.service
    fi
    say "rexec-agent is running: systemctl status rexec-agent; journalctl -u rexec-agent -f"
  fi
else
  say "no systemd here (or not root): start the agent with"
  say "  $bin --config $config run"
  say "for example in the background: nohup $bin --config $config run >/dev/null 2>&1 &"
fi
