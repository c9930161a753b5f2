#!/usr/bin/env bash
# Builds the local control plane's binaries, the GitOps test tools (luahealth, kstatus) and the NetworkPolicy
# evaluator (cyclonus) from the Go modules under hack/tools/ into a cache outside the repository, once. Prints the
# bin directory on stdout.
#
#   hack/build-tools.sh            build what is missing, print the bin dir
#   hack/build-tools.sh --print    print the bin dir only (no build)
#   hack/build-tools.sh node       build only the real node's binaries (not part of `all`; `make real-node-tools`):
#                                  kubelet, kube-proxy, containerd, containerd-shim-runc-v2, ctr, kube-router, pause
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/tools"
modver() { grep -oE "^[[:space:]]*(require )?$2 v[^ ]+" "$tools/$1/go.mod" | awk '{print $NF}'; }
k8s_version="$(modver kubernetes k8s.io/kubernetes)"
etcd_version="$(modver etcd go.etcd.io/etcd/server/v3)"
kwok_version="$(modver kwok sigs.k8s.io/kwok)"
helm_version="$(modver helm helm.sh/helm/v3)"
# The bin folder's key changes whenever a pinned version, a go.sum or the own source of a control-plane or GitOps
# tool changes (all of them are rebuilt then: they share module versions). A tool added later carries a key of its
# own (a stamp beside its binary, see `build`), so that adding one never rebuilds the Kubernetes binaries.
core=(etcd helm kstatus kubernetes kwok luahealth)
core_files=()
for ext in go.mod go.sum; do for m in "${core[@]}"; do core_files+=("$tools/$m/$ext"); done; done
for m in "${core[@]}"; do for f in "$tools/$m"/*.go; do [[ -e "$f" ]] && core_files+=("$f"); done; done
key="$(cat "${core_files[@]}" | sha256sum | cut -c1-10)"
cache="${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign-suite}"
bin="$cache/bin/${k8s_version}-${key}"

if [[ "${1:-}" == "--print" ]]; then echo "$bin"; exit 0; fi

log() { echo "[make tools] $*" >&2; }
command -v go >/dev/null || { log "Go is required (https://go.dev); none found on PATH"; exit 1; }
mkdir -p "$bin"
# One build at a time per cache: two `make` runs (or a test session's build) started together would otherwise
# write the same $bin/<tool>.tmp and one of them fail on the other's rename.
exec 9>"$cache/bin/.build.lock"
flock 9
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod"
build_date="2026-01-01T00:00:00Z" # fixed: reproducible binaries
minor="$(echo "$k8s_version" | cut -d. -f2)"

[[ -n "$k8s_version" && -n "$etcd_version" && -n "$kwok_version" && -n "$helm_version" ]] || { log "cannot read pinned versions from hack/tools/*/go.mod"; exit 1; }

build() { # name module package ldflags...
  local name="$1" mod="$2" pkg="$3"; shift 3
  local stamp=""
  if [[ ! " ${core[*]} " == *" $mod "* ]]; then  # a tool outside the bin folder's key: a stamp of its own
    stamp="$bin/.$name-$(cat "$tools/$mod"/go.mod "$tools/$mod"/go.sum | sha256sum | cut -c1-10)"
  fi
  if [[ -x "$bin/$name" && ( -z "$stamp" || -e "$stamp" ) ]]; then log "$name: cached"; return; fi
  local start=$SECONDS
  log "$name: building $pkg (first build of the Kubernetes binaries takes 10-30 min on 2 cores)"
  (cd "$tools/$mod" && go build -trimpath -tags selinux,notest -ldflags "-s -w $*" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  [[ -z "$stamp" ]] || { rm -f "$bin/.$name"-*; touch "$stamp"; }
  log "$name: built in $((SECONDS - start)) s"
}

kv=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kv="$kv -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kv="$kv -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done

only="${1:-all}"
if [[ "$only" == all || "$only" == k8s ]]; then
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    build "$c" kubernetes "k8s.io/kubernetes/cmd/$c" "$kv"
  done
fi
if [[ "$only" == all || "$only" == etcd ]]; then
  build etcd etcd . "-X go.etcd.io/etcd/api/v3/version.GitSHA=${etcd_version}"
fi
if [[ "$only" == all || "$only" == kwok ]]; then
  kwv="-X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}"
  build kwok kwok sigs.k8s.io/kwok/cmd/kwok "$kwv"
  build kwokctl kwok sigs.k8s.io/kwok/cmd/kwokctl "$kwv"
fi
if [[ "$only" == all || "$only" == helm ]]; then
  build helm helm helm.sh/helm/v3/cmd/helm "-X helm.sh/helm/v3/internal/version.version=$helm_version"
fi
if [[ "$only" == all || "$only" == gitops ]]; then
  # Argo CD's Lua health check through Argo CD's own code, and Flux's kstatus (tests/test_gitops.py)
  build luahealth luahealth .
  build kstatus kstatus .
fi
if [[ "$only" == all || "$only" == netpol ]]; then
  # Cyclonus evaluates the rendered NetworkPolicies offline (tests/test_network_matrix.py)
  build cyclonus cyclonus github.com/mattfenwick/cyclonus/cmd/cyclonus
fi
if [[ "$only" == node ]]; then
  # The real node (sovereign-suite cluster up --real-node). kubelet and kube-proxy: hack/tools/node has the same
  # Kubernetes release and staging replacements as hack/tools/kubernetes (checked here, so they cannot drift).
  node_version="$(modver node k8s.io/kubernetes)"
  [[ "$node_version" == "$k8s_version" ]] || { log "hack/tools/node pins $node_version, hack/tools/kubernetes $k8s_version"; exit 1; }
  diff <(sed -n '/^replace (/,/^)/p' "$tools/kubernetes/go.mod") <(sed -n '/^replace (/,/^)/p' "$tools/node/go.mod") >/dev/null \
    || { log "hack/tools/node's replace block differs from hack/tools/kubernetes's"; exit 1; }
  build kubelet node k8s.io/kubernetes/cmd/kubelet "$kv"
  build kube-proxy node k8s.io/kubernetes/cmd/kube-proxy "$kv"
  ctd_version="$(modver containerd github.com/containerd/containerd/v2)"
  ctdv="-X github.com/containerd/containerd/v2/version.Version=$ctd_version"
  for c in containerd containerd-shim-runc-v2 ctr; do
    build "$c" containerd "github.com/containerd/containerd/v2/cmd/$c" "$ctdv"
  done
  kr_version="$(modver kube-router github.com/cloudnativelabs/kube-router/v2)"
  build pause pause .  # the sandbox image's program (hack/build-images.py packs it)
  build kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kr_version"
fi
echo "$bin"
