#!/usr/bin/env bash
# Demo values for the Secrets the examples reference (a real platform team brings its own), in namespace $2 of
# the cluster $KUBECONFIG names, created once; used by `make run` and `make run-multicluster`.
set -euo pipefail
kubectl="$1"; ns="$2"
"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply --server-side -f - >/dev/null
for s in "oidc-client client-secret" "docs-s3 AWS_S3_ACCESS_KEY_ID AWS_S3_SECRET_ACCESS_KEY" "hf-token token"; do
  set -- $s; secret="$1"; shift
  args=(); for key in "$@"; do args+=("--from-literal=$key=demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"); done
  "$kubectl" -n "$ns" get secret "$secret" >/dev/null 2>&1 || "$kubectl" -n "$ns" create secret generic "$secret" "${args[@]}" >/dev/null
  # the Secret's owner opts in to letting suites read it (docs/security.md)
  "$kubectl" -n "$ns" label --overwrite secret "$secret" sovereignsuite.io/referenceable=true >/dev/null
done
