#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fails when clang-format (the repo's .clang-format) would change any of our C++ files.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cpp' '*.cc' '*.hpp' | grep -v '^build/')
[ ${#files[@]} -gt 0 ] || exit 0
clang-format --dry-run -Werror "${files[@]}"
echo "format-check: ${#files[@]} files clean"
