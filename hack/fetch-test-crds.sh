#!/usr/bin/env bash
# CustomResourceDefinitions of the operators the suite integrates with, for the tests on the local control plane,
# taken from their Go modules through the Go module proxy (the same way as the Prometheus Operator's in
# hack/install-prometheus.sh) into the cache, once per pinned release:
#   cnpg          CloudNativePG's Cluster CRD
#   cnpg-backup   CloudNativePG's ScheduledBackup CRD and the Barman Cloud plugin's ObjectStore CRD: what a suite
#                 backing up a cloudnative-pg database applies (tests/cluster/test_restore_cnpg_live.py)
#   cert-manager  cert-manager's CRDs (Certificate, CertificateRequest, Issuer, ClusterIssuer, Order, Challenge):
#                 the schema the Certificates of ingress-shim are checked against (tests/cluster/test_cert_manager.py)
#
#   hack/fetch-test-crds.sh                fetch what is missing (quiet; idempotent)
#   hack/fetch-test-crds.sh --print [SET]  print the CRD folder of SET only (default: cnpg)
set -euo pipefail

CNPG_MODULE=github.com/cloudnative-pg/cloudnative-pg
CNPG_VERSION=v1.27.1
# The Barman Cloud plugin: the release the Go module proxy serves (the project pins none; the platform team
# installs the plugin); its ObjectStore CRD is in config/crd/bases at that tag.
BARMAN_MODULE=github.com/cloudnative-pg/plugin-barman-cloud
BARMAN_VERSION=v0.15.0
CERT_MANAGER_MODULE=github.com/cert-manager/cert-manager
CERT_MANAGER_VERSION=v1.21.2
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
cnpg_dir="$cache/test-crds-cnpg-$CNPG_VERSION"
# two modules, two folders (each fetch marks its folder complete); `--print cnpg-backup` prints both
cnpg_backup_dir="$cache/test-crds-cnpg-scheduledbackup-$CNPG_VERSION"
barman_dir="$cache/test-crds-barman-cloud-$BARMAN_VERSION"
cert_manager_dir="$cache/test-crds-cert-manager-$CERT_MANAGER_VERSION"

if [[ "${1:-}" == "--print" ]]; then
  case "${2:-cnpg}" in
    cnpg) echo "$cnpg_dir" ;;
    cnpg-backup) echo "$cnpg_backup_dir"; echo "$barman_dir" ;;
    cert-manager) echo "$cert_manager_dir" ;;
    *) echo "unknown CRD set ${2}: cnpg, cnpg-backup or cert-manager" >&2; exit 2 ;;
  esac
  exit 0
fi
[[ -f "$cnpg_dir/.complete" && -f "$cnpg_backup_dir/.complete" && -f "$barman_dir/.complete" \
   && -f "$cert_manager_dir/.complete" ]] && exit 0
log() { echo "[fetch-test-crds] $*" >&2; }
command -v go >/dev/null || { log "Go is needed to fetch CRDs from the module proxy (as for \`make tools\`)"; exit 1; }
work="$(mktemp -d)"; out="$(mktemp)"
trap 'rm -rf "$work" "$out"' EXIT

# fetch MODULE VERSION DEST FILE...: the module's FILEs (paths inside it) into DEST
fetch() {
  local module="$1" version="$2" dest="$3" src f; shift 3
  [[ -f "$dest/.complete" ]] && return 0
  log "fetching $module $version's CRDs (Go module proxy)"
  src="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$version" 2>"$out" \
         | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
  for f in "$@"; do
    [[ -n "$src" && -f "$src/$f" ]] || { cat "$out" >&2; log "go mod download $module@$version: no $f"; exit 1; }
  done
  mkdir -p "$dest"
  for f in "$@"; do install -m 644 "$src/$f" "$dest/"; done
  touch "$dest/.complete"
}

fetch "$CNPG_MODULE" "$CNPG_VERSION" "$cnpg_dir" config/crd/bases/postgresql.cnpg.io_clusters.yaml
fetch "$CNPG_MODULE" "$CNPG_VERSION" "$cnpg_backup_dir" config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml
fetch "$BARMAN_MODULE" "$BARMAN_VERSION" "$barman_dir" config/crd/bases/barmancloud.cnpg.io_objectstores.yaml
# deploy/crds holds plain CRDs (controller-gen output, no Helm templating) at this release.
fetch "$CERT_MANAGER_MODULE" "$CERT_MANAGER_VERSION" "$cert_manager_dir" \
  deploy/crds/cert-manager.io_certificates.yaml deploy/crds/cert-manager.io_certificaterequests.yaml \
  deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_clusterissuers.yaml \
  deploy/crds/acme.cert-manager.io_orders.yaml deploy/crds/acme.cert-manager.io_challenges.yaml
