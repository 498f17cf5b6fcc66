#!/usr/bin/env bash
# Checks that every tracked C++ file is formatted as .clang-format says (Google style,
# 100 columns). Fix with: git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z '*.cc' '*.h' | xargs -0 clang-format --dry-run --Werror
echo "check-format: $(git ls-files '*.cc' '*.h' | wc -l) files formatted"
