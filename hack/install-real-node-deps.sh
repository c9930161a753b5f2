#!/usr/bin/env bash
# What the real node (sovereign-suite cluster up --real-node) needs from Debian, once:
#   - runc (the OCI runtime containerd's runc shim calls), containernetworking-plugins (bridge, host-local, portmap,
#     loopback in /usr/lib/cni), iptables and ipset (kube-proxy's Services, kube-router's NetworkPolicies),
#     conntrack (kube-proxy clears stale UDP entries with it), iproute2 (the bridge and the pods' addresses);
#   - mmdebstrap: the Debian root filesystems of the stand-in images (hack/build-images.py).
# kubelet, kube-proxy, containerd and kube-router are built from Go modules by `hack/build-tools.sh node`.
#
#   hack/install-real-node-deps.sh     install what is missing (quiet; idempotent)
set -euo pipefail

log() { echo "[install-real-node-deps] $*" >&2; }

missing=()
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback && -x /usr/lib/cni/portmap ]] \
  || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v conntrack >/dev/null || missing+=(conntrack)
command -v ip >/dev/null || missing+=(iproute2)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || {
  log "missing: ${missing[*]}, and this is not a Debian-like system: install them yourself"; exit 1; }
sudo=()
[[ "$(id -u)" == 0 ]] || sudo=(sudo)
if [[ ${#sudo[@]} -gt 0 ]] && ! command -v sudo >/dev/null; then
  log "root (or sudo) is needed to apt-get install ${missing[*]}"; exit 1
fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
apt() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$out" 2>&1 || {
  cat "$out" >&2; log "apt-get $* failed"; exit 1; }; }
log "installing Debian's ${missing[*]}"
apt update -qq
apt install -y -qq --no-install-recommends "${missing[@]}"
log "installed: $(runc --version | head -1), $(iptables --version), $(ipset --version | head -1)"
