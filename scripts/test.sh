#!/usr/bin/env bash
# Runs every test: installs the dependencies (apt-get), builds into build/, fetches and
# imports the ESRGAN models (scripts/fetch-models.sh: npm, cached in models/.packages),
# runs ctest, then scripts/gpu-check.sh (CPU mode without CUDA).
# The format check (scripts/check-format.sh) runs before the build, the thread-safety
# analysis (scripts/check-thread-safety.sh: clang -Wthread-safety -Werror) after it.
# [gpu] tests are left out (CI has no GPU); they skip themselves without CUDA anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/check-format.sh
bash scripts/build.sh
bash scripts/check-thread-safety.sh
bash scripts/fetch-models.sh
ctest --test-dir build --output-on-failure -j "${REELFARM_TEST_JOBS:-2}" --timeout 900
bash scripts/gpu-check.sh
