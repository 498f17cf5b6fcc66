#!/usr/bin/env bash
# The whole test suite under AddressSanitizer and UndefinedBehaviorSanitizer: builds
# everything into build-asan/ with -fsanitize=address,undefined (UB is fatal:
# -fno-sanitize-recover=all) and runs ctest there. Server and worker processes that the
# integration tests start are the sanitized binaries, so an error in them fails the
# test that started them. Takes far longer than scripts/test.sh; not part of CI's
# default run.
#   REELFARM_JOBS       parallel compile jobs (default 1: leaves a core to others)
#   REELFARM_TEST_JOBS  parallel tests (default 1)
#   ASAN_OPTIONS        default detect_leaks=0 (LibTorch, gRPC and FFmpeg keep global
#                       allocations to exit); set detect_leaks=1 to look at leaks too
#   extra arguments go to ctest, e.g. -R test_common
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${REELFARM_SKIP_DEPS:-}" != 1 ]; then bash scripts/setup-deps.sh; fi
# -O1 with line tables: sanitizer builds compile far slower than plain ones, and the
# stack traces need no more.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
  -DREELFARM_SANITIZE=address,undefined -DREELFARM_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-asan -j "${REELFARM_JOBS:-1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j "${REELFARM_TEST_JOBS:-1}" \
  --timeout 1800 "$@"
