#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The stripped static agent must not grow past its budget: every byte is paid on every host of
# every fleet (docs/install.md, "Size"). A size is deterministic, so this is a test, not a
# benchmark.
#   size_budget_test.sh PATH/TO/rexec-agent BUDGET_BYTES
set -euo pipefail
bin=${1:?usage: size_budget_test.sh BINARY BUDGET_BYTES}
budget=${2:?usage: size_budget_test.sh BINARY BUDGET_BYTES}

size=$(stat -c %s "$bin")
if readelf -SW "$bin" | grep -q '\.symtab'; then
  echo "FAIL: $bin is not stripped" >&2
  exit 1
fi
echo "rexec-agent: $size bytes, budget $budget bytes ($(( (budget - size) / 1024 )) KiB left)"
if [ "$size" -gt "$budget" ]; then
  echo "FAIL: the agent grew past its budget by $(( size - budget )) bytes; see docs/install.md" \
       "(\"Size\") for where the bytes go and how to measure a change" >&2
  exit 1
fi
