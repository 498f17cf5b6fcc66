#!/usr/bin/env bash
# Installs reelfarm's build and test dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtorch-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libavfilter-dev ffmpeg
  prometheus-cpp-dev
  catch2
  libsqlite3-dev libssl-dev
  # reelfarm-server's allocator (server/malloc_conf.cc).
  libjemalloc-dev
  # PostgreSQL state: libpq for the store; the server binaries (initdb, pg_ctl) for
  # tests/pg_server.sh, which runs a throwaway server per test run.
  libpq-dev postgresql
  libabsl-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev
  # The model importer reads npm .tgz packages (libarchive).
  libarchive-dev
  # Webhooks (server/notifier.cc): libcurl; the webhook test's receiver: cpp-httplib.
  libcurl4-openssl-dev libcpp-httplib-dev
  python3 python3-grpcio python3-protobuf python3-pytest python3-numpy
  python3-pip python3-venv python3-setuptools python3-wheel
  # Operations checks: promtool (prometheus), YAML parsing, scraping /metrics.
  prometheus python3-yaml curl
  # Security: test certificates (openssl), libFuzzer targets (clang and its runtimes,
  # scripts/fuzz.sh).
  openssl clang libclang-rt-dev
  # Style: clang-format (scripts/check-format.sh, run by scripts/test.sh).
  clang-format
  # Colour management (issue 20): OpenColorIO 2.1 and its tools (ocioconvert, the tests'
  # reference), OpenEXR for EXR attributes (chromaticities).
  libopencolorio-dev opencolorio-tools libopenexr-dev
  # The web monitor's tests drive a real headless browser.
  chromium chromium-driver python3-selenium
  # The web monitor's HTTP server (cpp-httplib, with OpenSSL).
  libcpp-httplib-dev
)
# kubectl (for `kubectl kustomize` in the deploy check): Debian's kubernetes-client,
# unless some kubectl is already installed (e.g. Google Cloud SDK's, which conflicts).
if ! command -v kubectl >/dev/null 2>&1; then PKGS+=(kubernetes-client); fi
# npm (`npm pack` in scripts/fetch-models.sh): Debian's, unless some npm is already
# installed (e.g. NodeSource's nodejs, which conflicts with it).
if ! command -v npm >/dev/null 2>&1; then PKGS+=(npm); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The prometheus and postgresql packages start their daemons on install (init script or
# systemd). Only promtool and PostgreSQL's programs are wanted (the tests run their own
# server): without a policy-rc.d already in place, one that forbids starting services is
# put there for the install and removed afterwards.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# reelfarm setup-deps: no service starts during install\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
