#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (the `fuzz` preset: clang, ASan + UBSan) and runs each for a while
# on a scratch copy of its corpus (the repository's corpus is not modified). Prints, per target,
# the executions reached and the corpus size; exits non-zero on the first crash, leak or time-out.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 20; CI uses the default)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
targets=(decode_message binary_frame proc_parsers auth_header route_body)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  log="$work/$t.log"
  if ! "build/fuzz/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$t-" "$work/$t" \
      >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (artifacts in $work; kept)" >&2
    trap - EXIT
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $t: ${runs:-?} executions in ${secs} s, 0 crashes, corpus $(find "$work/$t" -type f | wc -l) inputs"
done
