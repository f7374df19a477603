#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the rexec-agent Debian package from a built (static) agent:
#
#   packaging/deb/build-deb.sh AGENT_BINARY VERSION OUT_DIR
#
# Contents: /usr/bin/rexec-agent, the systemd unit (installed disabled: it needs a registration
# first), /etc/rexec (0700, for agent.json). The unit is the one install.sh writes, so the two
# installs cannot drift apart, without the keys of systemd 254 and later: postinst adds those in a
# drop-in where the host's systemd knows them. Prints the path of the .deb.
set -eu
binary=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  *) echo "build-deb.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
[ -x "$binary" ] || { echo "build-deb.sh: $binary is not an executable" >&2; exit 1; }

root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/usr/share/doc/rexec-agent"
install -d -m 0700 "$root/etc/rexec"
install -m 0755 "$binary" "$root/usr/bin/rexec-agent"
sh "$repo/install.sh" --print-unit /usr/bin/rexec-agent --systemd-version 0 \
  > "$root/lib/systemd/system/rexec-agent.service"
chmod 0644 "$root/lib/systemd/system/rexec-agent.service"
install -m 0644 "$here/copyright" "$root/usr/share/doc/rexec-agent/copyright"
for script in postinst prerm postrm; do
  install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
size_kib=$(du -k -s "$root" | cut -f 1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: rexec-agent
Version: $version
Architecture: $arch
Maintainer: rexec-agent developers <rexec-agent@localhost>
Installed-Size: $size_kib
Section: net
Priority: optional
Homepage: https://github.com/rexec/rexec-agent
Description: Rexec agent: browser terminals on machines you own
 rexec-agent connects this machine to a Rexec server over a WebSocket and serves
 PTY-backed shells to the server's users. Register it with
 "rexec-agent register --server URL --token TOKEN", then enable the
 rexec-agent service.
CONTROL
mkdir -p "$out"
deb="$out/rexec-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
