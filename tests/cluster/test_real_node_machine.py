"""The real node joins the local control plane, runs a real container, and `cluster down` puts the machine back
exactly as it was: processes, mounts, iptables rules and chains, ipsets, the bridge, the kubepods cgroups, the
sysctls kubelet and the bridge plugin change (ip_forward among them)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from sovereign_suite.devcluster.cluster import Cluster, ClusterError, bin_dir
from sovereign_suite.devcluster.realnode import NODE_NAME, REGION, RealNode, host
from sovereign_suite.devcluster.realnode.configs import BRIDGE, Layout

from .realnode_fixture import need_real_node, start

pytestmark = pytest.mark.realnode


def _node_processes() -> list[str]:
    """Processes of the real node: its programs (by name, from the tools' bin folder) and anything in kubepods."""
    bins = str(bin_dir())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            cgroup = open(f"/proc/{pid}/cgroup").read()
        except OSError:
            continue
        name = os.path.basename(exe)
        if (exe.startswith(bins) and name in ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2",
                                              "kube-router")) or "/kubepods" in cgroup:
            found.append(f"{pid} {exe}")
    return found


def _kubectl(c: Cluster, *args: str) -> str:
    return subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(c.kubeconfig), *args], check=True,
                          capture_output=True, text=True).stdout


def test_real_node_runs_a_pod_and_down_restores_the_machine():
    need_real_node()
    assert RealNode(Cluster("unused")).state() is None, "a real node already runs on this machine"
    before = host.Snapshot.take()
    procs_before = _node_processes()
    assert procs_before == [], procs_before
    c = start(f"rn-machine-{os.getpid()}", countries=["FR"])
    try:
        node = json.loads(_kubectl(c, "get", "node", NODE_NAME, "-o", "json"))
        assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == REGION
        assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
        # a real container: the sandbox image's program, scheduled by the real scheduler onto the real node
        _kubectl(c, "run", "probe", "--image=registry.k8s.io/pause:3.10", "--image-pull-policy=Never",
                 "--restart=Never", f"--overrides={json.dumps({'spec': {'nodeName': NODE_NAME}})}")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            pod = json.loads(_kubectl(c, "get", "pod", "probe", "-o", "json"))
            if pod["status"].get("phase") == "Running" and pod["status"].get("podIP"):
                break
            time.sleep(1)
        assert pod["status"]["phase"] == "Running", pod["status"]
        assert pod["status"]["podIP"].startswith("10.245.0."), pod["status"]
        during = host.Snapshot.take()
        assert BRIDGE in during.links and during.cgroups, "no bridge or kubepods cgroup while a pod runs"
        assert any("KUBE-SERVICES" in r for r in during.iptables["4"].get("nat", [])), "kube-proxy wrote no rules"
        assert _node_processes(), "no node process found while the node runs"
        # one real node per machine: a second cluster is refused before anything starts
        other = Cluster(f"rn-other-{os.getpid()}")
        with pytest.raises(ClusterError, match="already runs on this machine"):
            other.up(real_node=True, progress=lambda m: None)
        assert not other.exists()
    finally:
        c.down()
    after = host.Snapshot.take()
    assert _node_processes() == []
    assert not Layout().run.exists() and not Layout().base.exists()
    # other work on the machine may add its own veths; the node's are named by the bridge plugin "veth*"
    others = {link for link in set(after.links) ^ set(before.links) if not link.startswith(("veth", BRIDGE))}
    assert host.diff(before, after, ignore_links=others) == {}
