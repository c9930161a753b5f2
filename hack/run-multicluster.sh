#!/usr/bin/env bash
# `make run-multicluster`: a hub and two member clusters (France, Germany) side by side, each member joined to the
# hub with `sovereign-suite cloud join`, the two-country example applied on the hub, and the operator (push mode)
# in the foreground. Ctrl-C stops the operator; `make cluster-down-multicluster` deletes the three clusters.
set -euo pipefail
venv="$1"; example="$2"; clouds="$3"
cli="$venv/bin/sovereign-suite"
hub="${HUB_NAME:-suite-hub}"
metrics_port="${METRICS_PORT:-9090}"
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
kubectl="$(hack/build-tools.sh --print)/kubectl"

"$cli" cluster up --name "$hub"
"$cli" cluster up --name "$hub-fr" --countries FR
"$cli" cluster up --name "$hub-de" --countries DE
export KUBECONFIG="$cache/kubeconfig-$hub.yaml"
"$kubectl" apply --server-side -f "$clouds" >/dev/null
"$cli" cloud join fr-secnumcloud --member-kubeconfig "$cache/kubeconfig-$hub-fr.yaml"
"$cli" cloud join de-c5 --member-kubeconfig "$cache/kubeconfig-$hub-de.yaml"

ns="$(awk '/^  namespace:/{print $2; exit}' "$example")"
hack/demo-secrets.sh "$kubectl" "$ns"
"$kubectl" apply --server-side -f "$example"

cat <<MSG

  Three clusters: the hub ($hub) and the members of France ($hub-fr) and Germany ($hub-de).
  $example is applied on the hub; its tenants live in the members. In another terminal:
    export PATH=$(dirname "$kubectl"):\$PATH
    kubectl --kubeconfig $cache/kubeconfig-$hub.yaml get suites -A -o wide     # the whole suite, per tenant
    kubectl --kubeconfig $cache/kubeconfig-$hub.yaml get suite -n $ns -o jsonpath='{.items[0].status.tenants[*].cluster}'
    kubectl --kubeconfig $cache/kubeconfig-$hub-fr.yaml get all -A -l app.kubernetes.io/managed-by=sovereign-suite-operator
    kubectl --kubeconfig $cache/kubeconfig-$hub-de.yaml get all -A -l app.kubernetes.io/managed-by=sovereign-suite-operator
    curl -s localhost:$metrics_port/metrics | grep member_cluster_up
  Ctrl-C stops the operator; \`make cluster-down-multicluster\` deletes the three clusters.

MSG
exec "$cli" run --metrics-port "$metrics_port"
