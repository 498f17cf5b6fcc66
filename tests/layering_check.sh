#!/usr/bin/env bash
# Layering (a ctest test, `layering_check`): the server side of the farm needs neither the
# worker nor LibTorch. Fails, naming the file, when
#   - a file under server/ includes anything under worker/;
#   - a file of the server's libraries (server/, scheduler/, media/, common/, proto/)
#     includes a LibTorch header (torch/, ATen/, c10/);
#   - a file under server/web/ (the monitor) includes the scheduler's state or the services'
#     implementations (it goes through the JobService, as gRPC clients do);
#   - a file under media/ includes worker/, server/, scheduler/ or cli/ (media knows no farm);
#   - the built reelfarm-server binary has libtorch*/libc10* among its shared libraries (ldd).
# Usage: layering_check.sh SOURCE_DIR SERVER_BINARY
set -uo pipefail
ROOT=${1:?source dir}
SERVER_BIN=${2:?reelfarm-server binary}
failed=0
fail() { echo "layering_check: $*" >&2; failed=1; }

# grep -n over C++ sources; prints file:line:text for each hit.
includes() {  # includes REGEX DIR...
  local re=$1; shift
  grep -rnE --include='*.cc' --include='*.h' --include='*.proto' \
    "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]($re)" "$@" 2>/dev/null
}

cd "$ROOT" || { echo "layering_check: no source dir $ROOT" >&2; exit 1; }
for d in server scheduler media common proto worker; do
  [ -d "$d" ] || fail "no $d/ under $ROOT"
done

while IFS= read -r hit; do
  [ -n "$hit" ] && fail "server/ includes worker/: $hit"
done < <(includes 'worker/' server)

while IFS= read -r hit; do
  [ -n "$hit" ] && fail "the server's libraries include LibTorch: $hit"
done < <(includes 'torch/|ATen/|c10/' server scheduler media common proto)

# The monitor (server/web/) is a front end over the JobService, as gRPC clients are: it
# includes neither the scheduler's state nor the service's implementation.
while IFS= read -r hit; do
  [ -n "$hit" ] && fail "server/web/ reaches past the JobService: $hit"
done < <(includes 'scheduler/(scheduler|job_store|commit_queue|scheduler_control)\.h|server/(job_service|worker_service|server|admission)\.h' server/web)

while IFS= read -r hit; do
  [ -n "$hit" ] && fail "media/ includes a farm component: $hit"
done < <(includes 'worker/|server/|scheduler/|cli/' media)

if [ ! -x "$SERVER_BIN" ]; then
  fail "no server binary at $SERVER_BIN"
else
  deps=$(ldd "$SERVER_BIN") || fail "ldd $SERVER_BIN failed"
  torch=$(printf '%s\n' "$deps" | grep -E '(^|[[:space:]/])lib(torch|c10)[^[:space:]]*\.so' || true)
  if [ -n "$torch" ]; then
    fail "$SERVER_BIN links LibTorch:"
    printf '%s\n' "$torch" >&2
  fi
  # A sanity check of the check: the binary does link libraries we know of.
  printf '%s\n' "$deps" | grep -q 'libgrpc' ||
    fail "ldd of $SERVER_BIN lists no libgrpc (is it the server binary?)"
fi

if [ "$failed" -ne 0 ]; then exit 1; fi
echo "layering_check: server/ includes no worker/, the server libraries no LibTorch," \
  "reelfarm-server links no libtorch/libc10"
