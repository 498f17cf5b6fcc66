#!/usr/bin/env bash
# CI checks of deploy/ (a ctest test): alert rules and scrape config pass promtool; the
# Grafana dashboard parses and every reelfarm_* metric it (or an alert) uses is one the
# server or worker defines; the Kubernetes overlay builds with kustomize and holds the
# expected objects; every YAML file parses. Exits non-zero with the reason on failure.
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
D="$ROOT/deploy"
fail() { echo "deploy_check: $*" >&2; exit 1; }

command -v promtool >/dev/null || fail "promtool not found; run scripts/setup-deps.sh"
command -v kubectl >/dev/null || fail "kubectl not found; run scripts/setup-deps.sh"

promtool check rules "$D/prometheus/alerts.yml" || fail "alert rules rejected by promtool"
promtool test rules "$D/prometheus/alerts_test.yml" || fail "alert rule unit tests failed"
promtool check config "$D/prometheus/prometheus.yml" || fail "scrape config rejected"

# Metric families the processes define: names registered in server/ and worker/.
EXPORTED=$(grep -rhoE '"reelfarm_[a-z0-9_]+"' "$ROOT/server" "$ROOT/worker" --include='*.cc' \
  | tr -d '"' | sort -u)
[ -n "$EXPORTED" ] || fail "found no metric names in server/ and worker/"
/usr/bin/python3 - "$D" "$EXPORTED" <<'PY'
import json, re, sys, yaml
d, exported = sys.argv[1], set(sys.argv[2].split())
def family(name):
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in exported:
            return name[: -len(suffix)]
    return name
with open(f"{d}/grafana/reelfarm-dashboard.json") as f:
    dash = json.load(f)  # raises on invalid JSON
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
assert exprs, "the dashboard has no queries"
with open(f"{d}/prometheus/alerts.yml") as f:
    rules = yaml.safe_load(f)
exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
unknown = sorted({family(m) for e in exprs for m in re.findall(r"reelfarm_[a-z0-9_]+", e)}
                 - exported)
if unknown:
    sys.exit(f"deploy_check: dashboard/alerts use metrics no process exports: {unknown}")
used = {family(m) for e in exprs for m in re.findall(r"reelfarm_[a-z0-9_]+", e)}
print(f"dashboard and alerts use {len(used)} of {len(exported)} exported metric families")
PY

# Every YAML file parses (multi-document files included).
/usr/bin/python3 - "$D" <<'PY'
import pathlib, sys, yaml
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.yaml")) + sorted(pathlib.Path(sys.argv[1]).rglob("*.yml")):
    list(yaml.safe_load_all(p.read_text()))
PY

OUT=$(kubectl kustomize "$D/k8s/overlays/example" 2>/dev/null) \
  || fail "kubectl kustomize deploy/k8s/overlays/example failed"
for want in "kind: Deployment" "kind: Service" "kind: PersistentVolumeClaim" \
            "kind: ServiceMonitor" "kind: ConfigMap" "kind: Secret" "nvidia.com/gpu: 1" \
            "namespace: farm" "registry.example.com/reelfarm/worker-cuda:0.1.0" \
            "replicas: 8"; do
  grep -qF "$want" <<<"$OUT" || fail "kustomize output lacks '$want'"
done
[ "$(grep -c '^kind: Deployment' <<<"$OUT")" -eq 2 ] || fail "expected 2 Deployments"

# Images and units start the binaries with flags they accept.
for f in "$D"/docker/*.Dockerfile "$D"/systemd/*.service "$D"/k8s/base/*.yaml; do
  for flag in $(grep -v '^\s*#' "$f" | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    case "$flag" in
      --from|--no-install-recommends|--interval|--timeout|--start-period|--retries|--home-dir|--create-home|--system|--uid|--gpus) continue ;;
    esac
    grep -rqF -- "\"$flag" "$ROOT/server/main.cc" "$ROOT/worker/worker_main.cc" "$ROOT/cli/reelctl.cc" \
      || fail "$(basename "$f") uses $flag, which no binary defines"
  done
done
echo "deploy_check: OK"
