"""Fills a fresh dev cluster: CRDs, kwok nodes of each simulated national cloud, the example NationalClouds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from ..api import crdgen
from .cluster import ClusterError

FIELD_MANAGER = "sovereign-suite-devcluster"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def _apply(dyn: dynamic.DynamicClient, obj: dict[str, Any]) -> None:
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    dyn.server_side_apply(
        res, body=obj, name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER, force_conflicts=True,
    )


def install_crds(kubeconfig: Path, timeout: float = 60) -> None:
    api = api_client(kubeconfig)
    dyn = dynamic.DynamicClient(api)
    ext = client.ApiextensionsV1Api(api)
    for name in sorted(crdgen.CRDS):
        _apply(dyn, crdgen.CRDS[name]())
    deadline = time.monotonic() + timeout
    for name in sorted(crdgen.CRDS):
        full = crdgen.CRDS[name]()["metadata"]["name"]
        while True:
            crd = ext.read_custom_resource_definition(full)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"CRD {full} not established after {timeout:.0f} s: {conds}")
            time.sleep(0.2)


def node_objects(countries: dict[str, Any]) -> list[dict[str, Any]]:
    """The kwok Node objects of every simulated national cloud (pure: tested without a cluster)."""
    nodes = []
    for country, spec in sorted(countries.items()):
        cc = country.lower()
        zones = spec["zones"]
        groups = [("cpu", None, spec["cpuNodes"])] + [("gpu", g, g) for g in spec.get("gpuNodes", [])]
        for kind, gpu, group in groups:
            for i in range(group["count"]):
                suffix = gpu["product"].split("-")[1].lower() if gpu else "cpu"
                name = f"{cc}-{suffix}-{i}"
                labels = {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    "topology.kubernetes.io/region": spec["region"],
                    "topology.kubernetes.io/zone": zones[i % len(zones)],
                    "sovereignsuite.io/simulated-country": country,
                }
                capacity = {"cpu": str(group["cpu"]), "memory": str(group["memory"]), "pods": "250",
                            "ephemeral-storage": "500Gi"}
                taints = []
                if gpu:
                    labels.update({
                        "nvidia.com/gpu.product": gpu["product"],
                        "nvidia.com/gpu.count": str(gpu["gpus"]),
                        "nvidia.com/gpu.memory": str(gpu["memoryMiB"]),
                        "nvidia.com/gpu.present": "true",
                    })
                    capacity["nvidia.com/gpu"] = str(gpu["gpus"])
                    taints.append(dict(GPU_TAINT))
                nodes.append({
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": labels,
                        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    },
                    # kwok gives a pod an IP from its node's podCIDR: one /24 per node, apart from Services
                    "spec": {"taints": taints, "podCIDR": f"10.244.{len(nodes)}.0/24",
                             "podCIDRs": [f"10.244.{len(nodes)}.0/24"]},
                    "status": {"capacity": capacity, "allocatable": dict(capacity)},
                })
    return nodes


STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
    "allowVolumeExpansion": True,
}


def create_storage_class(kubeconfig: Path) -> None:
    """The examples' clouds name StorageClass "standard": the controller-manager's hostPath provisioner
    (enabled by the cluster's flags, for development only) backs it."""
    _apply(dynamic.DynamicClient(api_client(kubeconfig)), STORAGE_CLASS)


def create_nodes(kubeconfig: Path, countries: dict[str, Any]) -> int:
    dyn = dynamic.DynamicClient(api_client(kubeconfig))
    nodes_api = dyn.resources.get(api_version="v1", kind="Node")
    nodes = node_objects(countries)
    for node in nodes:
        try:
            nodes_api.create(body=node)
        except ApiException as exc:
            if exc.status != 409:
                raise
        # The status given at creation is kept by the API server; kwok keeps it up to date from then on.
    return len(nodes)


def apply_national_clouds(kubeconfig: Path, path: Path, countries: set[str] | None = None,
                          suite_namespaces: list[str] | None = None) -> None:
    """The NationalClouds of ``path`` (only those of ``countries`` when given), admitting the suites of
    ``suite_namespaces`` too."""
    dyn = dynamic.DynamicClient(api_client(kubeconfig))
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc.get("kind") == "NationalCloud" and (countries is None or doc["spec"]["country"] in countries):
            if suite_namespaces:
                own = doc["spec"].get("suiteNamespaces") or []
                doc["spec"]["suiteNamespaces"] = own + [n for n in suite_namespaces if n not in own]
            _apply(dyn, doc)


def wait_nodes_ready(kubeconfig: Path, timeout: float = 60) -> None:
    core = client.CoreV1Api(api_client(kubeconfig))
    deadline = time.monotonic() + timeout
    while True:
        nodes = core.list_node().items
        not_ready = [
            n.metadata.name for n in nodes
            if not any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
        ]
        if nodes and not not_ready:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"nodes not Ready after {timeout:.0f} s: {', '.join(not_ready[:10])}")
        time.sleep(0.3)
