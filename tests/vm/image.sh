#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian 12 machine the system tests boot, built once with debootstrap from Debian's packages
# and cached by content: the hash of packages.txt, this script and guest/runner.sh names a
# directory under $REXEC_VM_CACHE (default /var/cache/rexec-vm, outside the clone) holding
#   tree/        the root file system, booted read-only (with a tmpfs overlay) by systemd-nspawn
#   disk.img     the same tree as an ext4 image, booted by QEMU through a throwaway qcow2 overlay
#   vmlinuz, initrd.img   the tree's kernel (Debian's linux-image-amd64) for QEMU's -kernel
# Prints that directory. Other entries of the cache are removed once the new one is complete.
#
#   image.sh            build if missing, print the directory
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${REXEC_VM_CACHE:-/var/cache/rexec-vm}
key=$(cat "$here/packages.txt" "$here/image.sh" "$here/guest/runner.sh" | sha256sum | cut -c1-16)
dir=$cache/$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # two runs at once build it once
# Removes a directory of the cache, unmounting first whatever an interrupted debootstrap left
# mounted in it (/proc, /sys), so that rm never reaches into a mounted file system.
remove_dir() {
  local m
  findmnt -rn -o TARGET | { grep -F "$1/" || true; } | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf --one-file-system "$1"
}
if [ -f "$dir/complete" ]; then
  echo "$dir"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "image.sh: building the image needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "image.sh: debootstrap is not installed" >&2; exit 1; }

# The mirror this machine's apt uses (the only network it may have), else Debian's own.
mirror=${REXEC_VM_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
    sed -n 's|^URIs: *\(http[^ ]*/debian\)/*$|\1|p; s|^deb  *\(http[^ ]*/debian\)/*  *bookworm .*|\1|p' |
    head -n 1) || true
fi
mirror=${mirror:-http://deb.debian.org/debian}
packages=$(grep -v '^#' "$here/packages.txt" | grep . | paste -s -d,)

start=$(date +%s)
work=$dir.tmp
remove_dir "$work"
mkdir -p "$work"
trap 'remove_dir "$work"' EXIT
echo "image.sh: debootstrap bookworm from $mirror into $work/tree (a few minutes)" >&2
tree=$work/tree
# In two stages, to configure the initramfs between them: the kernel's postinst builds it, and
# with only the drivers QEMU's disk needs (not Debian's "most") that takes seconds, not minutes.
debootstrap --foreign --variant=minbase --include="$packages" bookworm "$tree" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }
mkdir -p "$tree/etc/initramfs-tools/conf.d"
printf 'MODULES=list\n' >"$tree/etc/initramfs-tools/conf.d/rexec-vm.conf"
mkdir -p "$tree/usr/share/initramfs-tools/modules.d"
printf 'virtio_pci\nvirtio_blk\next4\n' >"$tree/usr/share/initramfs-tools/modules.d/rexec-vm"
chroot "$tree" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

echo rexec-vm >"$tree/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 rexec-vm\n::1 localhost\n' >"$tree/etc/hosts"
install -m 0755 "$here/guest/runner.sh" "$tree/usr/local/sbin/rexec-vm-runner"
cat >"$tree/etc/systemd/system/rexec-vm-runner.service" <<'UNIT'
[Unit]
Description=rexec system tests: run the host's boot.sh
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rexec-vm-runner
StandardOutput=journal+console
StandardError=journal+console
FailureAction=poweroff-force
[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../rexec-vm-runner.service "$tree/etc/systemd/system/multi-user.target.wants/"
# Nothing that wakes up on its own and competes with the tests for the emulated CPU.
for unit in apt-daily.timer apt-daily-upgrade.timer fstrim.timer e2scrub_all.timer \
            systemd-timesyncd.service getty@tty1.service; do
  ln -sf /dev/null "$tree/etc/systemd/system/$unit"
done
# The journal stays in memory: one boot's worth is what the tests read.
mkdir -p "$tree/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' >"$tree/etc/systemd/journald.conf.d/rexec-vm.conf"
rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
# QEMU boots the kernel directly.
cp "$(find "$tree/boot" -name 'vmlinuz-*' | sort | tail -n 1)" "$work/vmlinuz"
cp "$(find "$tree/boot" -name 'initrd.img-*' | sort | tail -n 1)" "$work/initrd.img"
truncate -s 3G "$work/disk.img"
mkfs.ext4 -q -F -L rexec-root -d "$tree" "$work/disk.img"
du -sm "$tree" | cut -f 1 >"$work/tree-mib"
echo "$(( $(date +%s) - start ))" >"$work/build-seconds"
touch "$work/complete"
for old in "$cache"/*; do
  [ "$old" = "$work" ] || remove_dir "$old"
done
mv "$work" "$dir"
trap - EXIT
echo "image.sh: built in $(cat "$dir/build-seconds") s ($(cat "$dir/tree-mib") MiB)" >&2
echo "$dir"
