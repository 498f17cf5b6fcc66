#!/usr/bin/env bash
# The main job on the embedded default: installs the dependencies, builds, starts a
# local farm (server + 2 workers, SQLite state, a local storage root), makes a sample
# clip, upscales it ×2 through the farm with the learned esrgan-slim (fetched from npm
# and imported by scripts/fetch-models.sh), prints the output, and stops the farm.
# `--model bicubic` stays available.
#   REELFARM_DEMO_DIR  data folder (default ./reelfarm-data)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/build.sh reelfarm-server reelfarm-worker reelctl reelfarm-models
REELFARM_FETCH_MODELS="${REELFARM_FETCH_MODELS:-esrgan-slim}" bash scripts/fetch-models.sh

DATA=$(realpath -m "${REELFARM_DEMO_DIR:-reelfarm-data}")
mkdir -p "$DATA/storage/samples"
rm -f "$DATA/server.port"
echo "== starting the local farm (state and storage under $DATA)"
# One workstation, loopback only: plaintext and no tokens, chosen explicitly (see README,
# "Security", for TLS and tokens on a shared network).
build/server/reelfarm-server --data-dir "$DATA" --listen 127.0.0.1:0 --insecure --no-auth \
  --port-file "$DATA/server.port" --local-workers 2 --metrics-listen "" --model-path models \
  >"$DATA/server.log" 2>&1 &
SERVER_PID=$!
stop_farm() {
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}
trap stop_farm EXIT
for _ in $(seq 1 100); do [ -s "$DATA/server.port" ] && break; sleep 0.1; done
if [ ! -s "$DATA/server.port" ]; then cat "$DATA/server.log"; exit 1; fi
export REELFARM_SERVER="127.0.0.1:$(cat "$DATA/server.port")"

echo "== making a sample clip: 96 frames of testsrc2, 320x180 at 24 fps"
ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc2=s=320x180:r=24 \
  -frames:v 96 -c:v libx264 -pix_fmt yuv420p "$DATA/storage/samples/sample.mp4"

echo "== upscaling it x2 through the farm with esrgan-slim"
build/cli/reelctl --insecure submit upscale --input samples/sample.mp4 \
  --output renders/sample_x2.mp4 --scale 2 --model esrgan-slim --chunk 24 --overwrite --watch

OUT="$DATA/storage/renders/sample_x2.mp4"
IFS=, read -r W H N < <(ffprobe -v error -select_streams v:0 -count_frames \
  -show_entries stream=width,height,nb_read_frames -of csv=p=0 "$OUT")
echo "== output: $OUT"
echo "   resolution ${W}x${H}, ${N} frames (provenance: $OUT.json)"
# Frame 48 before (the input, pixels doubled) and after, side by side.
ffmpeg -nostdin -v error -y -i "$DATA/storage/samples/sample.mp4" -i "$OUT" -filter_complex \
  "[0:v]select=eq(n\,48),scale=iw*2:ih*2:flags=neighbor[a];[1:v]select=eq(n\,48)[b];[a][b]hstack" \
  -frames:v 1 "$DATA/before_after.png"
echo "   frame 48 before (left, pixels doubled) and after (right): $DATA/before_after.png"
