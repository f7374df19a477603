#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs inside the test machine at each boot (started by rexec-vm-runner, guest/runner.sh): the
# scenarios the host listed in /mnt/rexec/plan, each in a subshell of its own, one result line
# each in results/results.txt; then powers the machine off, or reboots it when a scenario asked
# for a reboot (scenario 7 goes on at the next boot).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"  # the runner starts it with sh
share=/mnt/rexec
mkdir -p "$share/results"
boots=$(( $(cat "$share/results/boots" 2>/dev/null || echo 0) + 1 ))
echo "$boots" > "$share/results/boots"
exec >>"$share/results/guest.log" 2>&1
echo "=== boot $boots: $(uname -r), systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$share/guest/lib.sh"
# shellcheck source-path=SCRIPTDIR source=scenarios.sh
. "$share/guest/scenarios.sh"

reboot=0
read -r -a plan < "$share/plan"
for id in "${plan[@]}"; do
  grep -q "^[A-Z]* $id " "$share/results/results.txt" 2>/dev/null && continue  # done at a boot before
  echo "--- scenario $id (boot $boots)"
  rm -f "$work/skip-reason"
  start=$(date +%s)
  ( set -u; "scenario_$id" )
  rc=$?
  took=$(( $(date +%s) - start ))
  case $rc in
    0) echo "PASS $id (${took} s)" >> "$share/results/results.txt" ;;
    77) echo "SKIP $id $(cat "$work/skip-reason" 2>/dev/null)" >> "$share/results/results.txt" ;;
    100) reboot=1; echo "--- scenario $id goes on after a reboot"; break ;;
    *) echo "FAIL $id $(cat "$work/fail-reason" 2>/dev/null) (${took} s)" >> "$share/results/results.txt" ;;
  esac
  rm -f "$work/fail-reason"
done
sync
if [ "$reboot" -eq 1 ]; then systemctl reboot; else systemctl poweroff; fi
