#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The rexec-agent .deb: built from the static agent, inspected, then installed, reinstalled and
# purged with dpkg into a private root (dpkg --root --force-script-chrootless; the maintainer
# scripts honour DPKG_ROOT), so the machine running the test is not touched.
#
#   deb_test.sh AGENT_BINARY VERSION REPO_ROOT
set -euo pipefail
binary=$1 version=$2 repo=$3
command -v dpkg-deb >/dev/null || { echo "SKIP: dpkg-deb missing"; exit 77; }
tmp=$(mktemp -d /tmp/rexec-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

deb=$(sh "$repo/packaging/deb/build-deb.sh" "$binary" "$version" "$tmp/out")
[ -f "$deb" ] || fail "no package built"
echo "built $deb ($(stat -c %s "$deb") bytes)"

# Fields and contents.
[ "$(dpkg-deb -f "$deb" Package)" = rexec-agent ] || fail "Package field"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version field"
contents=$(dpkg-deb -c "$deb")
echo "$contents"
check_entry() {  # mode path
  echo "$contents" | grep -E "^$1 root/root .* \./$2\$" >/dev/null || fail "expected $1 $2"
}
check_entry -rwxr-xr-x usr/bin/rexec-agent
check_entry -rw-r--r-- lib/systemd/system/rexec-agent.service
check_entry drwx------ etc/rexec/
# Listed into a variable first: `tar | grep -q` under pipefail fails when grep exits early and tar
# takes SIGPIPE.
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
grep -qx './postinst' <<<"$control" || fail "no postinst"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./lib/systemd/system/rexec-agent.service > "$tmp/unit"
grep -qx "ExecStart=/usr/bin/rexec-agent --config /etc/rexec/agent.json run --handover 60" "$tmp/unit" || fail "unit ExecStart"
grep -qx "ConditionPathExists=/etc/rexec/agent.json" "$tmp/unit" || fail "unit starts unconfigured"
grep -qx "RestartPreventExitStatus=78" "$tmp/unit" || fail "unit restart policy"
ok "fields, modes and unit"

# Install into a private root.
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
: > "$root/var/lib/dpkg/status"
dpkg_r() { dpkg --root="$root" --force-script-chrootless --force-not-root --log=/dev/null "$@"; }
dpkg_r -i "$deb" > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "dpkg -i"; }
grep -q "rexec-agent register" "$tmp/install.log" || { cat "$tmp/install.log"; fail "no hint to register"; }
"$root/usr/bin/rexec-agent" version | grep -q "^rexec-agent $version " || fail "installed binary"
[ "$(stat -c %a "$root/etc/rexec")" = 700 ] || fail "/etc/rexec mode"
[ -e "$root/etc/systemd/system/multi-user.target.wants/rexec-agent.service" ] && fail "service enabled before registration"
ok "installed; service not enabled; binary runs"

# A registered machine: reinstall keeps the registration, purge removes it.
printf '{"server":"https://x","agent_id":"a","token":"rexec_secret"}\n' > "$root/etc/rexec/agent.json"
chmod 600 "$root/etc/rexec/agent.json"
dpkg_r -i "$deb" > "$tmp/reinstall.log" 2>&1 || { cat "$tmp/reinstall.log"; fail "reinstall"; }
[ -f "$root/etc/rexec/agent.json" ] || fail "reinstall lost the registration"
grep -q "rexec-agent register" "$tmp/reinstall.log" && fail "registered machine told to register"
dpkg_r -r rexec-agent > "$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log"; fail "remove"; }
[ -e "$root/usr/bin/rexec-agent" ] && fail "binary left after remove"
[ -f "$root/etc/rexec/agent.json" ] || fail "remove (not purge) deleted the registration"
dpkg_r -P rexec-agent > "$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "purge"; }
[ -e "$root/etc/rexec" ] && fail "/etc/rexec left after purge"
ok "reinstall keeps, remove keeps, purge deletes the registration"
echo "deb_test: all passed"
