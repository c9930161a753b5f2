#!/usr/bin/env bash
# Installs Prometheus and promtool (Debian's `prometheus` package) for the alert and dashboard tests, once.
#
# Idempotent and quiet: does nothing when both binaries are already on PATH. The tests start their own
# Prometheus on 127.0.0.1 (a free port, a temporary data directory), so the Debian service is never started:
# services are held back during the install, and stopped and disabled afterwards if the system runs systemd.
set -euo pipefail

log() { echo "[install-prometheus] $*" >&2; }

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
command -v apt-get >/dev/null || {
  log "prometheus/promtool are missing and this is not a Debian-like system: install Prometheus (>= 2.42) so"
  log "that 'prometheus' and 'promtool' are on PATH"; exit 1; }

sudo=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null || { log "root (or sudo) is needed to apt-get install prometheus"; exit 1; }
  sudo=(sudo)
fi

# Hold back service starts during the install (the standard policy-rc.d hook), unless a policy already exists.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

log "installing Debian's prometheus package (prometheus + promtool)"
out="$(mktemp)"
trap 'cleanup; rm -f "$out"' EXIT
apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out" 2>&1 || {
  cat "$out" >&2; log "apt-get $* failed"; exit 1; }; }
apt update -qq
apt install -y -qq --no-install-recommends prometheus

# systemd ignores policy-rc.d for `enable`: make sure the Debian service is neither running nor enabled.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  "${sudo[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

command -v prometheus >/dev/null && command -v promtool >/dev/null || {
  log "the prometheus package was installed but prometheus/promtool are not on PATH"; exit 1; }
log "installed $(prometheus --version 2>&1 | head -1)"
