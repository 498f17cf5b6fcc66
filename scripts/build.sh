#!/usr/bin/env bash
# Configures and builds reelfarm into build/ (kept between runs). Extra arguments are
# passed to the build tool, e.g. target names.
#   REELFARM_CMAKE_ARGS  extra configure arguments (e.g. -DCMAKE_PREFIX_PATH=/opt/libtorch)
#   REELFARM_JOBS        parallel compile jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${CI:-}" = "true" ]; then args+=(-DREELFARM_WERROR=ON); fi
# A compiler cache (Debian's ccache) when installed: a rebuild, or a fresh clone built on
# a machine that built the project before (CI), recompiles only what changed. Paths are
# taken relative to the checkout, so clones in other folders share the cache.
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1 CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-10G}"
  args+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# shellcheck disable=SC2206
args+=(${REELFARM_CMAKE_ARGS:-})
cmake -S . -B build "${args[@]}" >/dev/null
cmake --build build -j "${REELFARM_JOBS:-2}" -- "$@"
