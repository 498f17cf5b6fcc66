#!/usr/bin/env bash
# Installs what benchmarks/ needs beyond the build and test dependencies: Debian's
# python3-torch (large), for the Python + ffmpeg-pipe baseline, and the peers of
# benchmarks/peer_bench.py (Celery 5.2 with its Redis transport, redis-server 7).
# Not part of test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
PKGS=(python3-torch python3-celery python3-redis redis-server)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  # redis-server's package starts a daemon on install; the benchmark runs its own.
  POLICY=/usr/sbin/policy-rc.d
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
