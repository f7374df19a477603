#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# System tests on real hosts (issue 19): the agent installed and run as a systemd unit under
# Debian 12's own systemd (252) as PID 1, and under Debian 12's own kernel (6.1, cgroup v2), in a
# machine built by image.sh. Scenarios 1-6 and 8 each boot a fresh systemd-nspawn container of
# that image (under a second; read-only tree, tmpfs overlay, no network but its own loopback);
# 9 (cgroup limits) and 7 (reboot) need a real kernel and boot it in QEMU (TCG: this machine's
# /dev/kvm cannot boot a stock kernel), with no network device. The server runs inside, on the
# machine's loopback; binaries, scripts and results pass through a shared directory (a bind
# mount, or 9p). The tests themselves are guest/scenarios.sh; each scenario ends in one line,
# PASS, FAIL or SKIP (with the reason), and the run in `N passed, M failed[, K skipped]`.
#
#   bash tests/vm/run.sh [SCENARIO...]     e.g. 2_restart 9_cgroups (default: all)
#
# Environment:
#   REXEC_VM_BUILD    build with a static rexec-agent, rexec-server and rexec
#                     (default: build/release-static)
#   REXEC_REQUIRE_VM  set (CI): a scenario that cannot run here fails instead of being skipped
#   REXEC_VM_CACHE    where image.sh keeps the image (default /var/cache/rexec-vm)
#   REXEC_VM_KEEP     set: keep the work directory (logs of every machine) for a look afterwards
# Needs root, debootstrap, qemu-system-x86 and qemu-utils (scripts/install-deps.sh). It installs
# nothing on this machine: systemd-nspawn comes from the image (Debian's systemd-container,
# inside the tree), so the machine's own systemd stays as it is.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${REXEC_VM_BUILD:-$repo/build/release-static}

nspawn_scenarios=(1_install 2_restart 3a_upgrade_install_sh 3b_upgrade_deb 4_crash 5_revoked
                  6a_stop 6b_disable_now 8a_uninstall 8b_purge)
# One QEMU machine, booted twice: 9 first, then 7 reboots it.
qemu_scenarios=(9a_pids_max 9b_memory_max 9c_cpu_max 9d_stats 7_reboot)
wanted=("$@")

passed=0 failed=0 skipped=0
declare -A result_of=()
record() {  # record PASS|FAIL|SKIP ID TEXT
  case $1 in
    PASS) passed=$((passed + 1)) ;;
    FAIL) failed=$((failed + 1)) ;;
    SKIP)
      if [ -n "${REXEC_REQUIRE_VM:-}" ]; then
        failed=$((failed + 1))
        set -- FAIL "$2" "could not run (REXEC_REQUIRE_VM is set): $3"
      else
        skipped=$((skipped + 1))
      fi ;;
  esac
  result_of[$2]=$1
  printf '%s %s %s\n' "$1" "$2" "$3"
}
is_wanted() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}
finish() {
  echo "$passed passed, $failed failed$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")"
  [ "$failed" -eq 0 ]
  exit
}
skip_all() {  # skip_all REASON: every wanted scenario skips
  local s
  for s in "${nspawn_scenarios[@]}" "${qemu_scenarios[@]}"; do
    is_wanted "$s" && record SKIP "$s" "$1"
  done
  finish
}

[ "$(id -u)" -eq 0 ] || skip_all "needs root (debootstrap, containers, QEMU)"
for b in agent/rexec-agent server/rexec-server client/rexec; do
  [ -x "$build/$b" ] || skip_all "no $build/$b (build the release-static preset first)"
done
file "$build/agent/rexec-agent" | grep -q 'static' || skip_all "$build/agent/rexec-agent is not static"
for tool in debootstrap qemu-system-x86_64 qemu-img mkfs.ext4 python3 dpkg-deb; do
  command -v "$tool" >/dev/null || skip_all "$tool is not installed (scripts/install-deps.sh)"
done

t_start=$(date +%s)
work=$(mktemp -d /tmp/rexec-vm-XXXXXX)
# shellcheck disable=SC2317 # run by the trap
cleanup() {
  if [ -n "${REXEC_VM_KEEP:-}" ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

img=$("$here/image.sh") || skip_all "image.sh could not build the image"
echo "image: $img (built in $(cat "$img/build-seconds") s, $(cat "$img/tree-mib") MiB); setup took $(( $(date +%s) - t_start )) s"

# What every machine gets: the binaries, a newer build of the agent (the same build with its
# version string raised: an upgrade changes the file, its version and the running process), the
# two .debs, and the scripts.
common=$work/common
mkdir -p "$common/bin" "$common/deb" "$common/guest"
cp "$build/agent/rexec-agent" "$build/server/rexec-server" "$build/client/rexec" "$common/bin/"
version=$(sed -n 's/^project(rexec VERSION \([0-9.]*\) .*/\1/p' "$repo/CMakeLists.txt")
next=$(python3 - "$common/bin/rexec-agent" "$common/bin/rexec-agent-next" "$version" <<'PY'
import sys
src, dst, v = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, 'rb').read()
old = b'\0' + v.encode() + b'\0'
head, last = v.rsplit('.', 1)
new_v = head + '.' + str((int(last) + 1) % 10)
if data.count(old) != 1:
    sys.exit('version string %r found %d times' % (v, data.count(old)))
open(dst, 'wb').write(data.replace(old, b'\0' + new_v.encode() + b'\0'))
print(new_v)
PY
) || skip_all "cannot make the newer build of the agent"
chmod 0755 "$common/bin/rexec-agent-next"
for v in "$version:rexec-agent" "$next:rexec-agent-next"; do
  sh "$repo/packaging/deb/build-deb.sh" "$common/bin/${v#*:}" "${v%%:*}" "$common/deb" >/dev/null ||
    skip_all "cannot build the .deb of version ${v%%:*}"
done
cp "$here"/guest/*.sh "$here"/guest/*.py "$common/guest/"
cp "$here/guest/boot.sh" "$common/boot.sh"

# A machine's shared directory: the common files (hard links) and its own plan and results.
new_share() {  # new_share NAME SCENARIO... → prints the directory
  local dir=$work/$1
  shift
  mkdir -p "$dir"
  cp -al "$common/." "$dir/"
  mkdir -p "$dir/results"
  echo "$*" > "$dir/plan"
  echo "$dir"
}
# Results of a machine: one line per scenario it ran; those it did not finish fail.
collect() {  # collect DIR WHY-IF-MISSING SCENARIO...
  local dir=$1 why=$2 s line
  shift 2
  for s in "$@"; do
    line=$(grep "^[A-Z]* $s\( \|$\)" "$dir/results/results.txt" 2>/dev/null | tail -n 1)
    if [ -n "$line" ]; then
      record "${line%% *}" "$s" "$(echo "$line" | cut -d ' ' -f 3-)"
    else
      record FAIL "$s" "$why"
    fi
    if [ "${result_of[$s]}" = FAIL ]; then
      echo "----- guest log of $s"
      sed -n "/^--- scenario $s /,/^--- scenario /p" "$dir/results/guest.log" | tail -n 40
    fi
  done
}

# ---- systemd-nspawn: one fresh container per scenario ----
tree=$img/tree
# This machine's init is not systemd: nspawn runs with --keep-unit and --register=no (no bus to
# ask for a scope), in a cgroup v2 directory of our own (it puts the container's "payload" and
# its own "supervisor" there), which goes when the container has; and the directory it leaves in
# /run/systemd/nspawn/propagate (it will not delete it where /run is not a tmpfs) goes too.
cg2=$(findmnt -rn -t cgroup2 -o TARGET | head -n 1)
own_cg=$cg2$(sed -n 's/^0:://p' /proc/self/cgroup)
had_nspawn_run=0
if [ -d /run/systemd/nspawn ]; then had_nspawn_run=1; fi
nspawn() {  # nspawn NAME ARGS...: Debian's systemd-nspawn from the image, on its own library
  local name=$1 rc=0
  shift
  local cg=${own_cg%/}/rexec-vm-$$-$name
  mkdir -p "$cg"
  (
    echo "$BASHPID" > "$cg/cgroup.procs"
    SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 LD_LIBRARY_PATH="$tree/usr/lib/x86_64-linux-gnu/systemd" \
      exec timeout --kill-after=10 300 "$tree/usr/bin/systemd-nspawn" --quiet --boot \
      --directory="$tree" --volatile=overlay --register=no --keep-unit --machine="$name" \
      --private-network --console=pipe "$@" < /dev/null
  ) || rc=$?
  find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
  rm -rf "/run/systemd/nspawn/propagate/$name"
  return "$rc"
}
nspawn_ok=0
if [ -z "$cg2" ]; then
  nspawn_why="no cgroup v2 hierarchy is mounted here"
elif ! LD_LIBRARY_PATH="$tree/usr/lib/x86_64-linux-gnu/systemd" "$tree/usr/bin/systemd-nspawn" \
       --version >/dev/null 2>&1; then
  nspawn_why="systemd-nspawn from the image does not run here"
else
  nspawn_ok=1
fi
for s in "${nspawn_scenarios[@]}"; do
  is_wanted "$s" || continue
  if [ "$nspawn_ok" -eq 0 ]; then
    record SKIP "$s" "$nspawn_why"
    continue
  fi
  t0=$(date +%s)
  dir=$(new_share "nspawn-$s" "$s")
  nspawn "rexec-vm-$$-${s//_/-}" --bind="$dir:/mnt/rexec" > "$dir/console.log" 2>&1
  rc=$?
  collect "$dir" "the container did not finish it (exit $rc after $(( $(date +%s) - t0 )) s)" "$s"
  if [ "${result_of[$s]}" = FAIL ]; then tail -n 15 "$dir/console.log"; fi
done
[ "$had_nspawn_run" -eq 1 ] || rm -rf /run/systemd/nspawn

# ---- QEMU (TCG): the real kernel ----
qemu_wanted=()
for s in "${qemu_scenarios[@]}"; do is_wanted "$s" && qemu_wanted+=("$s"); done
if [ ${#qemu_wanted[@]} -gt 0 ]; then
  t0=$(date +%s)
  dir=$(new_share qemu "${qemu_wanted[@]}")
  qemu-img create -q -f qcow2 -F raw -b "$img/disk.img" "$work/qemu.qcow2"
  timeout --kill-after=10 1500 qemu-system-x86_64 \
    -machine q35,accel=tcg -cpu max -smp 2 -m 1536 -nodefaults -no-user-config -display none \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 mitigations=off" \
    -drive "file=$work/qemu.qcow2,if=virtio,format=qcow2,cache=unsafe" \
    -virtfs "local,path=$dir,mount_tag=rexec,security_model=none,id=rexec" \
    -device virtio-rng-pci -serial "file:$dir/console.log" -nic none \
    > "$dir/qemu.log" 2>&1 < /dev/null
  rc=$?
  echo "qemu: $(cat "$dir/results/boots" 2>/dev/null || echo 0) boot(s) in $(( $(date +%s) - t0 )) s"
  collect "$dir" "the QEMU guest did not finish it (exit $rc after $(( $(date +%s) - t0 )) s)" "${qemu_wanted[@]}"
  if [ "$failed" -gt 0 ]; then tail -n 15 "$dir/console.log" "$dir/qemu.log"; fi
fi
echo "total: $(( $(date +%s) - t_start )) s"
finish
