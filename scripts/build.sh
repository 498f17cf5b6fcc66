#!/usr/bin/env bash
# Configures and builds reelfarm into build/ (kept between runs). Extra arguments are
# passed to the build tool, e.g. target names.
#   REELFARM_CMAKE_ARGS  extra configure arguments (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch)
#   REELFARM_JOBS        parallel compile jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${CI:-}" = "true" ]; then args+=(-DREELFARM_WERROR=ON); fi
# shellcheck disable=SC2206
args+=(${REELFARM_CMAKE_ARGS:-})
cmake -S . -B build "${args[@]}" >/dev/null
cmake --build build -j "${REELFARM_JOBS:-2}" -- "$@"
