#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (-fsanitize=fuzzer,address,undefined)
# into build-fuzz/ and runs each for a fixed time, starting from the kept inputs in
# fuzz/corpus/<target>/ (plus media made here with ffmpeg for media_probe). A crash
# stops that target and leaves its input in build-fuzz/crashes/<target>/: fix the bug,
# then copy the input into fuzz/corpus/<target>/, where ctest's fuzz_regress_<target>
# runs it in every build.
#   scripts/fuzz.sh [TARGET...]       job_spec path_resolver frame_pattern media_probe
#   REELFARM_FUZZ_SECONDS             seconds per target (default 60)
#   REELFARM_JOBS                     parallel compile jobs (default 2)
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${REELFARM_FUZZ_SECONDS:-60}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(job_spec path_resolver frame_pattern media_probe)
fi
set -e
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DREELFARM_FUZZ=ON -DREELFARM_BUILD_TESTS=OFF \
  -DREELFARM_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-fuzz -j "${REELFARM_JOBS:-2}" -- "${targets[@]/#/fuzz_}"
set +e

# Media seeds for the probe: small files of the kinds the farm reads.
seed_media() {
  local d=$1 lavfi="testsrc2=s=32x18:r=24"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 3 -c:v libx264 "$d/a.mp4"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 3 -c:v prores_ks "$d/b.mov"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 2 -c:v ffv1 "$d/c.mkv"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 1 "$d/d.png"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 1 -c:v exr -pix_fmt gbrpf32le "$d/e.exr"
  ffmpeg -nostdin -v error -y -f lavfi -i "$lavfi" -frames:v 2 -c:v mpeg4 "$d/f.avi"
}

failed=0
summary=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  crashes=build-fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
  if [ "$t" = media_probe ]; then seed_media "$corpus"; fi
  extra=()
  if [ "$t" = media_probe ]; then extra=(-max_len=65536); fi
  log=build-fuzz/fuzz_$t.log
  echo "== fuzz_$t for ${seconds}s (log: $log)"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    build-fuzz/fuzz/fuzz_"$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$crashes"/ "${extra[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  line="fuzz_$t: ${execs:-?} runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
  if [ $rc -ne 0 ]; then
    failed=1
    line="$line; CRASH (exit $rc): $(ls "$crashes" | head -3 | tr '\n' ' ')"
    grep -m3 -E 'ERROR: |runtime error|==ERROR' "$log"
  fi
  summary+=("$line")
done
printf '%s\n' "${summary[@]}"
exit $failed
