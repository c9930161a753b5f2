#!/usr/bin/env bash
# What the Matrix federation test (tests/cluster/test_matrix_federation.py) needs, once:
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres): Debian's `postgresql` package;
#   - nginx: Debian's `nginx` package, to serve Element Web's rendered server block
#     and to terminate TLS for the tenants' hostnames as the ingress would;
#   - iproute2 (`ip netns`) and util-linux (`unshare`): the test's private network and mount namespaces;
#   - redis-server (redis-server and redis-cli): the Synapse workers' Redis, started from its rendered command
#     (tests/components/test_matrix_redis.py), and Docs' Redis (tests/components/test_redis_secret.py,
#     test_redis_tls.py).
#
#   hack/install-federation-tools.sh            install what is missing (quiet; idempotent)
#   hack/install-federation-tools.sh --print    print the PostgreSQL bin folder
#
# The Debian services are never started: the test runs its own servers as an unprivileged user, inside a network
# namespace of its own. Service starts are held back during the install (policy-rc.d), and the services are
# stopped and disabled afterwards if the system runs systemd (Debian's postgresql creates a cluster on install).
set -euo pipefail

log() { echo "[install-federation-tools] $*" >&2; }

pg_bin() {
  # Debian installs server binaries per major version under /usr/lib/postgresql/<major>/bin; take the newest.
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]] && echo "$d"
}

if [[ "${1:-}" == "--print" ]]; then pg_bin || exit 1; exit 0; fi

missing=()
pg_bin >/dev/null || missing+=(postgresql)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v openssl >/dev/null || missing+=(openssl)
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || missing+=(redis-server)
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || {
  log "missing: ${missing[*]}, and this is not a Debian-like system: install PostgreSQL (initdb, pg_ctl), nginx,"
  log "iproute2 and util-linux yourself"; exit 1; }
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
if [[ ${#sudo[@]} -gt 0 ]] && ! command -v sudo >/dev/null; then
  log "root (or sudo) is needed to apt-get install ${missing[*]}"; exit 1
fi

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
# flock: parallel installs on one machine (another script's, a second checkout's) wait instead of failing on dpkg's lock
apt() { "${sudo[@]}" flock /tmp/apt.lock env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out" 2>&1 || {
  cat "$out" >&2; log "apt-get $* failed"; exit 1; }; }

log "installing Debian's ${missing[*]}"
apt update -qq
apt install -y -qq --no-install-recommends "${missing[@]}"
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  for unit in postgresql.service nginx.service redis-server.service; do
    "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
pg_bin >/dev/null || { log "postgresql was installed but no /usr/lib/postgresql/*/bin/initdb"; exit 1; }
log "installed: $(pg_bin) and $(/usr/sbin/nginx -v 2>&1)"
