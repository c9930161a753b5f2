"""What a real node changes on the machine, recorded before it starts and put back when it stops.

A snapshot holds: the iptables rules of both families (``iptables-save`` without counters), the ipsets, the
network links, the mount points, the ``kubepods`` cgroups, the sysctls kubelet, kube-proxy and the CNI bridge
plugin change, and the paths the node's programs create outside its own folders. ``restore`` puts the machine
back to a snapshot; ``diff`` tells what differs (the teardown test asserts it is empty).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

# kubelet sets these (pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables), the bridge plugin turns
# on ip_forward, kube-proxy sets route_localnet (NodePorts on 127.0.0.1) and the bridge-nf calls; node.py raises
# the inotify instances (kubelet's cAdvisor needs some, and each local kube-apiserver holds 4 of the default 128).
SYSCTLS = (
    "fs.inotify.max_user_instances",
    "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.netfilter.nf_conntrack_max", "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.ipv4.conf.all.rp_filter",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")
# paths created by containerd, runc and CNI outside the node's own folders (shim sockets, network namespaces,
# runc's state, host-local's default data folder)
STRAY_PATHS = ("/run/containerd", "/run/netns", "/run/runc", "/var/lib/cni", "/run/flannel", "/var/run/kube-router",
               "/var/lib/kube-router", "/var/lib/kubelet", "/etc/cni")
TABLES = ("filter", "nat", "mangle", "raw", "security")


def _run(*cmd: str, check: bool = False) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def _rules(family: str) -> dict[str, list[str]]:
    """Per table, its chain declarations (policy, no counters) and rules, in order."""
    tool = "iptables-save" if family == "4" else "ip6tables-save"
    if not shutil.which(tool):
        return {}
    tables: dict[str, list[str]] = {}
    current = None
    for line in _run(tool).splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif line.startswith(":") and current is not None:
            current.append(re.sub(r"\s*\[\d+:\d+\]$", "", line))
        elif line.startswith("-A") and current is not None:
            current.append(line)
    # a table with nothing but its built-in chains at ACCEPT is the same as no table
    return {t: lines for t, lines in tables.items() if any(not re.fullmatch(r":[A-Z]+ ACCEPT", ln) for ln in lines)}


def _ipsets() -> list[str]:
    return sorted(_run("ipset", "list", "-n").split()) if shutil.which("ipset") else []


def _links() -> list[str]:
    return sorted(re.sub(r"@.*", "", line.split(":")[1].strip()) for line in _run("ip", "-o", "link").splitlines())


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return sorted({line.split()[4] for line in f})


def kubepods_cgroups() -> list[str]:
    """Every cgroup folder named kubepods (and below) in every hierarchy, v1 or unified."""
    found = []
    if CGROUP_ROOT.exists():
        for hierarchy in sorted(CGROUP_ROOT.iterdir()):
            for name in ("kubepods", "kubepods.slice"):
                path = hierarchy / name
                if path.is_dir():
                    found.append(str(path))
    return found


def _sysctls() -> dict[str, str]:
    values = {}
    for key in SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            values[key] = path.read_text().strip()
        except OSError:
            continue
    return values


@dataclass
class Snapshot:
    iptables: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    ipsets: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            iptables={fam: _rules(fam) for fam in ("4", "6")}, ipsets=_ipsets(), links=_links(), mounts=_mounts(),
            cgroups=kubepods_cgroups(), sysctls=_sysctls(), paths=[p for p in STRAY_PATHS if os.path.lexists(p)],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Snapshot:
        return cls(**json.loads(path.read_text()))


def diff(before: Snapshot, after: Snapshot, ignore_links: set[str] | frozenset[str] = frozenset(),
         ignore_mounts: tuple[str, ...] = ()) -> dict[str, object]:
    """What ``after`` has that ``before`` had not, or the other way round (empty: the same machine).
    ``ignore_links``/``ignore_mounts``: names and path prefixes that other programs on the machine may change."""
    out: dict[str, object] = {}
    for fam in ("4", "6"):
        b, a = before.iptables.get(fam, {}), after.iptables.get(fam, {})
        for table in sorted(set(a) | set(b)):
            added = [r for r in a.get(table, []) if r not in b.get(table, [])]
            removed = [r for r in b.get(table, []) if r not in a.get(table, [])]
            if added or removed:
                out[f"iptables{'' if fam == '4' else '6'} {table}"] = {"added": added, "removed": removed}
    for name in ("ipsets", "links", "mounts", "cgroups", "paths"):
        b, a = set(getattr(before, name)), set(getattr(after, name))
        if name == "links":
            b, a = b - ignore_links, a - ignore_links
        if name == "mounts":
            b = {m for m in b if not m.startswith(ignore_mounts)} if ignore_mounts else b
            a = {m for m in a if not m.startswith(ignore_mounts)} if ignore_mounts else a
        if a != b:
            out[name] = {"added": sorted(a - b), "removed": sorted(b - a)}
    changed = {k: (before.sysctls.get(k), after.sysctls.get(k)) for k in set(before.sysctls) | set(after.sysctls)
               if before.sysctls.get(k) != after.sysctls.get(k)}
    if changed:
        out["sysctls"] = changed
    return out


def _restore_rules(fam: str, saved: dict[str, list[str]]) -> None:
    """Rewrite every table the node touched as it was (a table that was empty is emptied; its chains deleted)."""
    tool = "iptables-restore" if fam == "4" else "ip6tables-restore"
    now = _rules(fam)
    if not shutil.which(tool) or now == saved:
        return
    lines = []
    for table in sorted(set(now) | set(saved)):
        if now.get(table) == saved.get(table):
            continue
        lines.append(f"*{table}")
        lines += saved.get(table) or [f":{c} ACCEPT" for c in _builtin_chains(table)]
        lines.append("COMMIT")
    subprocess.run([tool], input="\n".join(lines) + "\n", text=True, check=True, capture_output=True)


def _builtin_chains(table: str) -> list[str]:
    return {
        "filter": ["INPUT", "FORWARD", "OUTPUT"], "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"], "raw": ["PREROUTING", "OUTPUT"],
        "security": ["INPUT", "FORWARD", "OUTPUT"],
    }[table]


def unmount_under(prefixes: list[str]) -> None:
    """Unmount every mount point below the given folders, deepest first (lazy: a busy one goes when freed)."""
    for point in sorted((m for m in _mounts() if any(m == p or m.startswith(p.rstrip("/") + "/") for p in prefixes)),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def remove_cgroups(paths: list[str]) -> None:
    """rmdir cgroup folders depth first (a cgroup folder is removed with rmdir once it holds no process)."""
    for top in paths:
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


# containerd's CRI names the pod network namespaces it creates cni-<random uuid> (containerd pkg/netns/netns_linux.go,
# newNS): only those are the node's; another program may add namespaces of its own meanwhile (the Matrix labs'
# `ip netns add`), which restore must leave alone
NETNS_DIRS = ("/run/netns", "/var/run/netns")
CNI_NETNS = "cni-"


def _node_netns(mount: str) -> bool:
    return any(mount.startswith(f"{d}/{CNI_NETNS}") for d in NETNS_DIRS)


def restore(before: Snapshot, own_links: tuple[str, ...]) -> None:
    """Put back what the node changed. ``own_links``: prefixes of the links the node may have created."""
    after = Snapshot.take()
    for fam in ("4", "6"):
        _restore_rules(fam, before.iptables.get(fam, {}))
    for name in sorted(set(after.ipsets) - set(before.ipsets)):
        subprocess.run(["ipset", "destroy", name], capture_output=True)
    for link in sorted(set(after.links) - set(before.links)):
        if link.startswith(own_links):
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
    for mount in sorted(set(after.mounts) - set(before.mounts), key=len, reverse=True):
        if _node_netns(mount) or mount.startswith(("/run/containerd/", "/var/lib/kubelet")):
            subprocess.run(["umount", "-l", mount], capture_output=True)
    remove_cgroups(sorted(set(after.cgroups) - set(before.cgroups)))
    for key, value in before.sysctls.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            if path.read_text().strip() != value:
                path.write_text(value)
        except OSError:
            continue
    for p in sorted(set(after.paths) - set(before.paths), key=len, reverse=True):
        if p in NETNS_DIRS and any(not n.startswith(CNI_NETNS) for n in os.listdir(p)):
            continue  # another program's network namespace lives there too (a test lab's `ip netns add`)
        if os.path.isdir(p) and not os.path.islink(p):
            unmount_under([p])
            shutil.rmtree(p, ignore_errors=True)
        else:
            Path(p).unlink(missing_ok=True)
