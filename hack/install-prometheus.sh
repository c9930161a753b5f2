#!/usr/bin/env bash
# What the monitoring tests need, once:
#   1. Prometheus and promtool: Debian's `prometheus` package (tests/test_alerts.py, tests/cluster/test_prometheus.py).
#   2. The Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs of a pinned release, taken from
#      its Go module through the Go module proxy into the cache (tests/cluster/test_prometheus.py installs them in
#      its throwaway cluster to check the rendered monitors against the real schemas).
#
#   hack/install-prometheus.sh               install what is missing (quiet; idempotent)
#   hack/install-prometheus.sh --print-crds  print the CRD folder only
#
# The Debian service is never started: the tests run their own Prometheus on 127.0.0.1. Service starts are held
# back during the install, and the service is stopped and disabled afterwards if the system runs systemd.
set -euo pipefail

OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
OPERATOR_VERSION=v0.85.0
CRDS=(servicemonitors podmonitors prometheusrules)
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
crds_dir="$cache/prometheus-operator-$OPERATOR_VERSION-crds"

if [[ "${1:-}" == "--print-crds" ]]; then echo "$crds_dir"; exit 0; fi

log() { echo "[install-prometheus] $*" >&2; }
out="$(mktemp)"
work="$(mktemp -d)"
own_policy=false
policy=/usr/sbin/policy-rc.d
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
cleanup() { rm -rf "$out" "$work"; if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

install_prometheus() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  command -v apt-get >/dev/null || {
    log "prometheus/promtool are missing and this is not a Debian-like system: install Prometheus (>= 2.42) so"
    log "that 'prometheus' and 'promtool' are on PATH"; exit 1; }
  if [[ ${#sudo[@]} -gt 0 ]] && ! command -v sudo >/dev/null; then
    log "root (or sudo) is needed to apt-get install prometheus"; exit 1
  fi
  # Hold back service starts during the install (the standard policy-rc.d hook), unless a policy already exists.
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=true
  fi
  log "installing Debian's prometheus package (prometheus + promtool)"
  apt update -qq
  apt install -y -qq --no-install-recommends prometheus
  # systemd ignores policy-rc.d for `enable`: make sure the Debian service is neither running nor enabled.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  command -v prometheus >/dev/null && command -v promtool >/dev/null || {
    log "the prometheus package was installed but prometheus/promtool are not on PATH"; exit 1; }
  log "installed $(prometheus --version 2>&1 | head -1)"
}

apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out" 2>&1 || {
  cat "$out" >&2; log "apt-get $* failed"; exit 1; }; }

install_crds() {
  [[ -f "$crds_dir/.complete" ]] && return
  command -v go >/dev/null || { log "Go is needed to fetch the Prometheus Operator CRDs (as for \`make tools\`)"; exit 1; }
  log "fetching the Prometheus Operator $OPERATOR_VERSION CRDs (Go module proxy)"
  local dir
  dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$OPERATOR_MODULE@$OPERATOR_VERSION" 2>"$out" \
         | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" || true
  [[ -n "$dir" && -d "$dir/example/prometheus-operator-crd" ]] || {
    cat "$out" >&2; log "go mod download $OPERATOR_MODULE@$OPERATOR_VERSION failed"; exit 1; }
  mkdir -p "$crds_dir"
  for crd in "${CRDS[@]}"; do
    install -m 644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$crds_dir/"
  done
  touch "$crds_dir/.complete"
}

install_prometheus
install_crds
