#!/usr/bin/env bash
# Clang's thread-safety analysis over the components that hold locks: every .cc under
# scheduler/, server/ and worker/ is parsed (-fsyntax-only, no second build) with
# -Wthread-safety -Werror, so an ABSL_GUARDED_BY member touched without its mutex, or an
# ABSL_EXCLUSIVE_LOCKS_REQUIRED function called without it, fails the run. The include
# paths and defines come from the build's compile_commands.json (scripts/build.sh first);
# the project's own warning flags are gcc's business and are left out.
# Usage: bash scripts/check-thread-safety.sh [BUILD_DIR]   (default build/)
#   CLANGXX  the compiler (default clang++-14, Debian's clang 14, else clang++)
#   REELFARM_TSA_JOBS  parallel clang processes (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
db="$build/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "check-thread-safety: no $db; run scripts/build.sh first" >&2
  exit 2
fi
clangxx="${CLANGXX:-}"
if [ -z "$clangxx" ]; then
  clangxx=clang++-14
  command -v "$clangxx" >/dev/null 2>&1 || clangxx=clang++
fi
start=$(date +%s%N)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One clang response file per translation unit: the build's flags less the gcc-only,
# output and warning ones, plus the analysis.
/usr/bin/python3 - "$db" "$tmp" "$PWD" scheduler server worker <<'PY'
import json, os, shlex, sys

db, out, root, dirs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
drop_with_value = {"-o", "-MT", "-MF", "-MQ"}
drop = {"-c", "-MD", "-MMD", "-g", "-pipe"}
# gcc accepts these, clang 14 rejects or warns about them.
gcc_only_prefixes = ("-fno-fat-lto-objects", "-fconcepts-diagnostics-depth",
                     "-fdiagnostics-color", "-fmax-errors", "-fno-semantic-interposition",
                     "-fstack-clash-protection", "-fcf-protection")
n = 0
for entry in json.load(open(db)):
    path = os.path.relpath(os.path.join(entry["directory"], entry["file"]), root)
    if not path.endswith(".cc") or path.split(os.sep)[0] not in dirs:
        continue
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    # Past the launcher (ccache) and the compiler.
    if "ccache" in os.path.basename(args[0]):
        args = args[1:]
    args = args[1:]
    source = os.path.normpath(os.path.join(entry["directory"], entry["file"]))
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in drop_with_value:
            skip = True
            continue
        if a in drop or a.startswith("-W") or a.startswith(gcc_only_prefixes):
            continue
        if os.path.normpath(os.path.join(entry["directory"], a)) == source:
            continue
        kept.append(a)
    kept += ["-fsyntax-only", "-Wthread-safety", "-Werror", source]
    quoted = ['"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in kept]
    with open(os.path.join(out, "%04d.rsp" % n), "w") as f:
        f.write("-working-directory=" + '"' + entry["directory"] + '"\n' + "\n".join(quoted) + "\n")
    n += 1
print(n, file=open(os.path.join(out, "count"), "w"))
PY
count=$(cat "$tmp/count")
if [ "$count" -eq 0 ]; then
  echo "check-thread-safety: no scheduler/server/worker sources in $db" >&2
  exit 2
fi
status=0
find "$tmp" -name '*.rsp' -print0 | sort -z |
  xargs -0 -P "${REELFARM_TSA_JOBS:-2}" -n 1 sh -c '"$0" "@$1"' "$clangxx" || status=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
elapsed="$((elapsed_ms / 1000)).$(((elapsed_ms % 1000) / 100))"
if [ "$status" -ne 0 ]; then
  echo "check-thread-safety: FAILED ($count files, ${elapsed} s)" >&2
  exit 1
fi
echo "check-thread-safety: $count files clean with $clangxx -Wthread-safety -Werror in ${elapsed} s"
