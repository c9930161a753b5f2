#!/usr/bin/env bash
# Debian's redis-server for the TLS tests of Docs' Redis (tests/components/test_redis_tls.py): the rendered
# redis-server arguments and certificates run on a real server, on loopback, started by the test itself.
#
#   hack/install-redis.sh    install it when missing (quiet; idempotent)
#
# The Debian service is never used: its start is held back during the install (policy-rc.d), and it is stopped
# and disabled afterwards if the system runs systemd. apt runs under flock /tmp/apt.lock, so that parallel
# installs on one machine wait for each other instead of failing on dpkg's lock.
set -euo pipefail

log() { echo "[install-redis] $*" >&2; }

command -v redis-server >/dev/null && command -v redis-cli >/dev/null && exit 0
command -v apt-get >/dev/null || { log "redis-server is missing and this is not a Debian-like system: install it"; exit 1; }
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)

out="$(mktemp)"
own_policy=false
policy=/usr/sbin/policy-rc.d
cleanup() { rm -f "$out"; if $own_policy; then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  own_policy=true
fi
apt() { "${sudo[@]}" flock /tmp/apt.lock env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out" 2>&1 || {
  cat "$out" >&2; log "apt-get $* failed"; exit 1; }; }

log "installing Debian's redis-server"
apt update -qq
apt install -y -qq --no-install-recommends redis-server
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  "${sudo[@]}" systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi
log "installed: $(redis-server --version)"
