"""The real node's pieces that need no machine changes: OCI archives, configuration files, snapshot diffs."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import tomllib
from pathlib import Path

import yaml

from sovereign_suite.devcluster.kwok_config import kwokctl_config
from sovereign_suite.devcluster.realnode import configs, host, oci


def test_oci_archive_is_a_valid_layout(tmp_path: Path):
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "hello").chmod(0o755)
    layer = tmp_path / "layer.tgz"
    diff_id, digest, size = oci.write_layer(root, layer)
    assert digest == "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest() and size == layer.stat().st_size
    assert diff_id == "sha256:" + hashlib.sha256(gzip.decompress(layer.read_bytes())).hexdigest()
    out = tmp_path / "img.oci.tar"
    cfg = oci.ImageConfig(entrypoint=["/bin/hello"], user="991:991", workdir="/data", ports=["8008/tcp"])
    man_digest = oci.write_archive("ghcr.io/element-hq/synapse:v1.163.2", layer, diff_id, digest, size, cfg, out)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))
        entry = index["manifests"][0]
        assert entry["annotations"]["io.containerd.image.name"] == "ghcr.io/element-hq/synapse:v1.163.2"
        assert entry["digest"] == man_digest
        manifest = json.load(tar.extractfile(f"blobs/sha256/{man_digest[7:]}"))
        config = json.load(tar.extractfile(f"blobs/sha256/{manifest['config']['digest'][7:]}"))
        for blob in (manifest["config"]["digest"], manifest["layers"][0]["digest"]):  # every blob named by its hash
            data = tar.extractfile(f"blobs/sha256/{blob[7:]}").read()
            assert hashlib.sha256(data).hexdigest() == blob[7:]
    assert {"oci-layout", "index.json"} <= names
    assert config["rootfs"]["diff_ids"] == [diff_id]
    assert config["config"]["Entrypoint"] == ["/bin/hello"] and config["config"]["User"] == "991:991"
    assert config["config"]["ExposedPorts"] == {"8008/tcp": {}}
    # the same tree gives the same layer (cached images are rebuilt only when their inputs change)
    assert oci.write_layer(root, tmp_path / "again.tgz")[1] == digest


def test_node_configs_parse_and_name_the_machine_traps(tmp_path: Path):
    lay = configs.Layout(run=tmp_path / "run", base=tmp_path / "base")
    ctd = tomllib.loads(configs.containerd_config(lay, Path("/bins")))
    runtime = ctd["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["runtime_path"] == "/bins/containerd-shim-runc-v2"
    assert ctd["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == configs.SANDBOX_IMAGE
    kubelet = yaml.safe_load(configs.kubelet_config(lay, Path("/ca.crt")))
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    proxy = yaml.safe_load(configs.kube_proxy_config(Path("/k")))
    assert proxy["conntrack"]["maxPerCore"] == 0 and proxy["clusterCIDR"] == configs.POD_CIDR
    cni = json.loads(configs.cni_config(lay))
    assert cni["plugins"][0]["bridge"] == configs.BRIDGE
    assert cni["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] == configs.POD_CIDR
    labels = configs.node_labels()
    assert labels["topology.kubernetes.io/region"] == configs.REGION


def test_kwokctl_config_keeps_kwok_off_real_nodes(tmp_path: Path):
    cfg = yaml.safe_load(kwokctl_config(tmp_path))
    patches = {p["name"]: {a["key"]: a["value"] for a in p["extraArgs"]} for p in cfg["componentsPatches"]}
    assert patches["kwok-controller"] == {"manage-all-nodes": "false",
                                          "manage-nodes-with-annotation-selector": "kwok.x-k8s.io/node=fake"}
    assert patches["kube-apiserver"]["kubelet-preferred-address-types"] == "InternalIP,Hostname"
    assert patches["kube-apiserver"]["kubelet-client-certificate"] == str(tmp_path / "pki" / "admin.crt")


def test_snapshot_diff_reports_every_kind_of_change():
    before = host.Snapshot(iptables={"4": {"filter": [":INPUT ACCEPT"]}}, ipsets=["a"], links=["lo", "eth0"],
                           mounts=["/"], cgroups=[], sysctls={"net.ipv4.ip_forward": "0"}, paths=[])
    assert host.diff(before, before) == {}
    after = host.Snapshot(iptables={"4": {"filter": [":INPUT ACCEPT", ":KUBE-FIREWALL - "]}}, ipsets=["a", "b"],
                          links=["lo", "eth0", "ssrn0", "other0"], mounts=["/", "/run/netns/cni-1"],
                          cgroups=["/sys/fs/cgroup/memory/kubepods"], sysctls={"net.ipv4.ip_forward": "1"},
                          paths=["/run/containerd"])
    d = host.diff(before, after, ignore_links={"other0"})
    assert d["iptables filter"]["added"] == [":KUBE-FIREWALL - "]
    assert d["ipsets"]["added"] == ["b"] and d["links"]["added"] == ["ssrn0"]
    assert d["mounts"]["added"] == ["/run/netns/cni-1"] and d["cgroups"]["added"]
    assert d["sysctls"] == {"net.ipv4.ip_forward": ("0", "1")} and d["paths"]["added"] == ["/run/containerd"]


def _query(name: str, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00" + qtype.to_bytes(2, "big") + b"\x00\x01"


def test_dns_answers_services_and_relays_the_rest():
    from sovereign_suite.devcluster.realnode import dns

    records = {"synapse.rn-fr.svc.cluster.local": ["10.96.3.4"]}
    reply = dns.answer(_query("synapse.rn-fr.svc.cluster.local"), records)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == 0 and reply[6:8] == b"\x00\x01"  # id, NOERROR, 1 answer
    assert reply.endswith(bytes([10, 96, 3, 4]))
    nodata = dns.answer(_query("synapse.rn-fr.svc.cluster.local", 28), records)  # AAAA: no answer, no error
    assert nodata[3] & 0x0F == 0 and nodata[6:8] == b"\x00\x00"
    missing = dns.answer(_query("synapse.rn-fr.rn-fr.svc.cluster.local"), records)  # a search-list try
    assert missing[3] & 0x0F == 3  # NXDOMAIN
    assert dns.answer(_query("pypi.org"), records) is None  # relayed to the host's resolver


def test_kwokctl_config_makes_the_api_server_reachable_from_pods_only_with_a_real_node(tmp_path: Path):
    """With the real node, pods reach kube-apiserver at the kubernetes Service (10.96.0.1): it listens beyond
    loopback, advertises the machine's address and its certificate names the Service's address."""
    plain = yaml.safe_load(kwokctl_config(tmp_path))
    args = {a["key"]: a["value"] for p in plain["componentsPatches"] if p["name"] == "kube-apiserver"
            for a in p["extraArgs"]}
    assert "bind-address" not in args and "kubeApiserverCertSANs" not in plain["options"]
    real = yaml.safe_load(kwokctl_config(tmp_path, advertise="192.0.2.7"))
    args = {a["key"]: a["value"] for p in real["componentsPatches"] if p["name"] == "kube-apiserver"
            for a in p["extraArgs"]}
    assert args["bind-address"] == "0.0.0.0" and args["advertise-address"] == "192.0.2.7"
    assert "10.96.0.1" in real["options"]["kubeApiserverCertSANs"]
    assert real["options"]["bindAddress"] == "127.0.0.1"  # etcd, controller-manager, scheduler, kwok


def test_only_containerds_own_network_namespaces_are_the_nodes():
    """restore() unmounts the pod network namespaces containerd made (cni-<uuid>), never one another program added
    meanwhile (a Matrix lab's `ip netns add`: its processes would lose their network mid-test)."""
    from sovereign_suite.devcluster.realnode.host import _node_netns

    assert _node_netns("/run/netns/cni-5b0e7c1d-3f5a-8a0e-2d41-9c1b0e2f7a11")
    assert _node_netns("/var/run/netns/cni-1")
    assert not _node_netns("/run/netns/mxlab-fr-1234")
    assert not _node_netns("/run/netns")
    assert not _node_netns("/run/containerd/io.containerd.runtime.v2.task/k8s.io/x/rootfs")
