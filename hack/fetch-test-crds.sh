#!/usr/bin/env bash
# CustomResourceDefinitions of the operators the suite integrates with, for the tests on the local control plane:
# CloudNativePG's Cluster CRD of a pinned release, taken from its Go module through the Go module proxy (the same
# way as the Prometheus Operator's in hack/install-prometheus.sh) into the cache, once.
#
#   hack/fetch-test-crds.sh           fetch what is missing (quiet; idempotent)
#   hack/fetch-test-crds.sh --print   print the CRD folder only
set -euo pipefail

CNPG_MODULE=github.com/cloudnative-pg/cloudnative-pg
CNPG_VERSION=v1.27.1
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
dir="$cache/test-crds-cnpg-$CNPG_VERSION"

if [[ "${1:-}" == "--print" ]]; then echo "$dir"; exit 0; fi
[[ -f "$dir/.complete" ]] && exit 0
log() { echo "[fetch-test-crds] $*" >&2; }
command -v go >/dev/null || { log "Go is needed to fetch CRDs from the module proxy (as for \`make tools\`)"; exit 1; }
work="$(mktemp -d)"; out="$(mktemp)"
trap 'rm -rf "$work" "$out"' EXIT
log "fetching CloudNativePG $CNPG_VERSION's Cluster CRD (Go module proxy)"
src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$CNPG_MODULE@$CNPG_VERSION" 2>"$out" \
       | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
[[ -n "$src" && -f "$src/config/crd/bases/postgresql.cnpg.io_clusters.yaml" ]] || {
  cat "$out" >&2; log "go mod download $CNPG_MODULE@$CNPG_VERSION failed"; exit 1; }
mkdir -p "$dir"
install -m 644 "$src/config/crd/bases/postgresql.cnpg.io_clusters.yaml" "$dir/"
touch "$dir/.complete"
