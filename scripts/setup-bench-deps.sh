#!/usr/bin/env bash
# Installs what benchmarks/ needs beyond the build and test dependencies: Debian's
# python3-torch (large), for the Python + ffmpeg-pipe baseline. Not part of test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
if ! dpkg-query -W -f='${Status}' python3-torch 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-torch
fi
