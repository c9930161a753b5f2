#!/usr/bin/env bash
# `make run`: the local cluster with the simulated national clouds, the CRDs, the example suite, and the
# operator in the foreground. Ctrl-C stops the operator; the cluster keeps running (`make cluster-down`).
set -euo pipefail
venv="$1"; example="$2"; clouds="$3"
cli="$venv/bin/sovereign-suite"
name="${CLUSTER_NAME:-sovereign-suite}"
metrics_port="${METRICS_PORT:-9090}"

"$cli" cluster up --name "$name"
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
export KUBECONFIG="$cache/kubeconfig-$name.yaml"
kubectl="$(hack/build-tools.sh --print)/kubectl"
ns="$(awk '/^  namespace:/{print $2; exit}' "$example")"

"$kubectl" apply --server-side -f "$clouds" >/dev/null
hack/demo-secrets.sh "$kubectl" "$ns"
"$kubectl" apply --server-side -f "$example"

cat <<MSG

  The cluster is up with the simulated national clouds (FR, DE, LU, SE) and $example applied.
  In another terminal:
    export KUBECONFIG=$KUBECONFIG
    export PATH=$(dirname "$kubectl"):\$PATH
    kubectl get suites -A -o wide
    kubectl get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product
    $cli status
    curl -s localhost:$metrics_port/metrics | grep ^sovereign_suite
  Ctrl-C stops the operator; \`make cluster-down\` deletes the cluster.

MSG
exec "$cli" run --metrics-port "$metrics_port"
