#!/usr/bin/env bash
# GPU readiness: builds worker/inference alone (the inference core needs only LibTorch,
# Abseil, nlohmann-json, OpenSSL) into build-inference/, runs the [gpu] tests, and
# prints model-only fps for every imported model (scripts/fetch-models.sh) at every
# scale: at 1080p in fp32 and fp16, with the fp16 output's PSNR against fp32. On a
# machine without CUDA it runs the same on the CPU at a small size and says so (CI runs
# this mode).
#   LIBTORCH=/opt/libtorch bash scripts/gpu-check.sh     # a CUDA LibTorch (pytorch.org)
#   REELFARM_CMAKE_ARGS    extra configure arguments for both builds
set -euo pipefail
cd "$(dirname "$0")/.."
args=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ -n "${LIBTORCH:-}" ]; then args+=("-DCMAKE_PREFIX_PATH=$LIBTORCH"); fi
# shellcheck disable=SC2206
args+=(${REELFARM_CMAKE_ARGS:-})
echo "== building worker/inference alone into build-inference/"
cmake -S worker/inference -B build-inference "${args[@]}" >/dev/null
cmake --build build-inference -j "${REELFARM_JOBS:-2}" -- reelfarm-gpu-check
if grep -q "REELFARM_WITH_CUDA" build-inference/build.ninja; then
  echo "== CUDA LibTorch: 1080p, fp32 and fp16"
else
  echo "== this LibTorch has no CUDA: CPU mode, small frames, fp32 only"
fi

echo "== the [gpu] tests"
if [ -n "${LIBTORCH:-}" ]; then export REELFARM_CMAKE_ARGS="${REELFARM_CMAKE_ARGS:-} -DCMAKE_PREFIX_PATH=$LIBTORCH"; fi
bash scripts/build.sh test_inference test_esrgan reelfarm-models
# Without CUDA they skip themselves (and say so).
for t in test_inference test_esrgan; do build/tests/$t "[gpu]" 2>&1 | tail -n 3; done

echo "== model-only throughput of every imported model"
bash scripts/fetch-models.sh
build-inference/reelfarm-gpu-check models "$@"
