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
"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply --server-side -f - >/dev/null
# Demo values for the Secrets the example references (a real platform team brings its own).
for s in "oidc-client client-secret" "docs-s3 AWS_S3_ACCESS_KEY_ID AWS_S3_SECRET_ACCESS_KEY" "hf-token token"; do
  set -- $s; secret="$1"; shift
  args=(); for key in "$@"; do args+=("--from-literal=$key=demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"); done
  "$kubectl" -n "$ns" get secret "$secret" >/dev/null 2>&1 || "$kubectl" -n "$ns" create secret generic "$secret" "${args[@]}" >/dev/null
  # the Secret's owner opts in to letting suites read it (docs/security.md)
  "$kubectl" -n "$ns" label --overwrite secret "$secret" sovereignsuite.io/referenceable=true >/dev/null
done
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
