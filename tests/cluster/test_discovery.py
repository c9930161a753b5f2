"""API discovery as the operator caches it (reconcile/kube.py, ``Kube.kind``), against the real API server: a
kind whose CRD is established after its group was first read is found once the discovery TTL has passed. The
Prometheus Operator's CRDs are established one by one, and a group read between two of them used to be cached
as served without the second kind for good (the operator then never rendered its ServiceMonitors)."""

from __future__ import annotations

import time
import uuid

from kubernetes import config

from sovereign_suite.reconcile.kube import Kube

from .conftest import wait_for


def crd(group: str, kind: str) -> dict:
    plural = kind.lower() + "s"
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_a_kind_added_to_a_served_group_is_found_after_the_ttl(cluster, kube):
    group = f"d{uuid.uuid4().hex[:6]}.sovereignsuite.test"
    api_version = f"{group}/v1"
    ttl = 1.0
    fresh = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=ttl)
    probe = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig)), discovery_ttl=0)
    first, second = crd(group, "Alpha"), crd(group, "Beta")
    try:
        kube.create(first)
        wait_for(lambda: fresh.kind(api_version, "Alpha"), 60, 0.3, "the first kind served")
        assert fresh.kind(api_version, "Beta") is None  # the group is cached as served, without Beta
        kube.create(second)
        wait_for(lambda: probe.kind(api_version, "Beta"), 60, 0.3, "the second kind in discovery")
        time.sleep(ttl)
        assert fresh.kind(api_version, "Beta") is not None
        assert fresh.kind(api_version, "Alpha") is not None
    finally:
        for c in (first, second):
            kube.delete(c)
