"""The tenant's ResourceQuotas on the local API server (components/tenancy/__init__.py): what the design depends on.

- An operator upgrade applies cleanly: over the unscoped ``tenant-quota`` of earlier versions (every share in one),
  the operator's server-side apply of the three rendered quotas succeeds and leaves ``tenant-quota`` with storage
  only; a scope added to that existing quota is refused (``spec.scopes`` is immutable), and storage is refused in
  a PriorityClass-scoped quota.
- ``PriorityClass NotIn [sovereign-suite-fine-tuning]`` counts a pod with no ``priorityClassName``, and
  ``In`` counts the training pods only: each share is counted and enforced at admission on its own (a second
  training pod is refused by ``tenant-fine-tuning`` while serving's share still admits a class-less pod).

The quotas are the renderer's, moved into a namespace of this test. The pods select no node (they stay Pending: the
quota counts a pod from its admission until it ends, scheduled or not)."""

from __future__ import annotations

import pytest

from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile.converge import FIELD_MANAGER
from sovereign_suite.reconcile.kube import ApiError, Kube
from sovereign_suite.render import render_suite

from ..helpers import load_example, suite_with
from .conftest import wait_for
from .test_finetune_job import chart_priority_class

RQ = ("v1", "ResourceQuota")
GPU = "nvidia.com/gpu"  # the example clouds' gpu.resourceName


def rendered_quotas(namespace: str) -> dict[str, dict]:
    """The FR tenant's three quotas as the renderer makes them, training's share 1 GPU, in ``namespace``."""
    _, clouds = load_example("two-countries")
    suite = suite_with("two-countries", {})
    tenants = [t.wire() for t in suite.spec.tenants]
    tenants[0]["quota"] = {"gpus": 4, "fineTuning": {"gpus": 1}}
    suite = suite_with("two-countries", {"tenants": tenants})
    tenant_ns = f"{suite.name}-{suite.spec.tenants[0].country.lower()}"
    out = {}
    for o in render_suite(suite, clouds).manifests:
        if o["kind"] == "ResourceQuota" and o["metadata"]["namespace"] == tenant_ns:
            o["metadata"]["namespace"] = namespace
            out[o["metadata"]["name"]] = o
    assert set(out) == {"tenant-quota", "tenant-serving", "tenant-fine-tuning"}, out
    assert out["tenant-fine-tuning"]["spec"]["hard"][f"requests.{GPU}"] == "1"
    return out


def earlier_tenant_quota(namespace: str) -> dict:
    """``tenant-quota`` as versions before the split rendered it: unscoped, every share."""
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "tenant-quota", "namespace": namespace},
            "spec": {"hard": {"requests.cpu": "64", "requests.memory": "256Gi", "requests.storage": "2Ti",
                              "pods": "200", f"requests.{GPU}": "8"}}}


def pod(namespace: str, name: str, priority_class: str | None) -> dict:
    res = {"cpu": "100m", "memory": "64Mi", GPU: "1"}
    spec = {"nodeSelector": {"sovereignsuite.io/no-such-node": "true"},
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": res, "limits": res}}]}
    if priority_class:
        spec["priorityClassName"] = priority_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def used(kube: Kube, namespace: str, name: str) -> dict:
    return ((kube.get(*RQ, name, namespace) or {}).get("status") or {}).get("used") or {}


def test_the_split_quotas_apply_over_the_old_one_and_count_pods_by_class(kube: Kube, namespace: str) -> None:
    if kube.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS) is None:
        kube.create(chart_priority_class())
    # an upgrade: the operator applied the old, unscoped tenant-quota; it now applies the three quotas
    kube.apply(earlier_tenant_quota(namespace), FIELD_MANAGER)
    quotas = rendered_quotas(namespace)
    for q in quotas.values():
        kube.apply(q, FIELD_MANAGER)
    live = kube.get(*RQ, "tenant-quota", namespace)
    assert live["spec"]["hard"] == {"requests.storage": "2Ti"} and "scopeSelector" not in live["spec"], live["spec"]
    # why the scoped shares are new objects: a scope cannot be added to the existing one
    with pytest.raises(ApiError) as err:
        kube.merge_patch(*RQ, "tenant-quota", namespace, {"spec": {"scopes": ["NotBestEffort"]}})
    assert err.value.status == 422 and "field is immutable" in err.value.message, err.value

    # nor can storage join a PriorityClass-scoped share: it stays in the unscoped tenant-quota
    scoped_storage = {**quotas["tenant-serving"], "metadata": {"name": "scoped-storage", "namespace": namespace}}
    scoped_storage["spec"] = {**scoped_storage["spec"], "hard": {"requests.storage": "1Ti"}}
    with pytest.raises(ApiError) as err:
        kube.create(scoped_storage)
    assert err.value.status == 422 and "unsupported scope applied to resource" in err.value.message, err.value

    # admission refuses a pod a quota matches until the quota controller has written the quota's status.hard
    for name, q in quotas.items():
        wait_for(lambda: ((kube.get(*RQ, name, namespace) or {}).get("status") or {}).get("hard") == q["spec"]["hard"],
                 timeout=60, what=f"{name}'s status")

    kube.create(pod(namespace, "serving", None))  # no priorityClassName: what every pod but training has
    kube.create(pod(namespace, "training", renderer.PRIORITY_CLASS))
    wait_for(lambda: used(kube, namespace, "tenant-serving").get("pods") == "1"
             and used(kube, namespace, "tenant-fine-tuning").get("pods") == "1", timeout=60,
             what="each pod counted by its share")
    assert used(kube, namespace, "tenant-serving") == {"pods": "1", "requests.cpu": "100m", "requests.memory": "64Mi",
                                                      f"requests.{GPU}": "1"}
    assert used(kube, namespace, "tenant-fine-tuning") == {"pods": "1", "requests.cpu": "100m",
                                                          "requests.memory": "64Mi", f"requests.{GPU}": "1"}
    assert used(kube, namespace, "tenant-quota") == {"requests.storage": "0"}

    # training's share (1 GPU) is full: a second training pod is refused, by that quota only
    with pytest.raises(ApiError) as err:
        kube.create(pod(namespace, "training-2", renderer.PRIORITY_CLASS))
    assert err.value.status == 403 and "exceeded quota: tenant-fine-tuning" in err.value.message, err.value
    assert "tenant-serving" not in err.value.message
    # serving's share (4 GPUs) still admits a class-less pod: training's GPU is not counted there
    kube.create(pod(namespace, "serving-2", None))
    wait_for(lambda: used(kube, namespace, "tenant-serving").get(f"requests.{GPU}") == "2", timeout=60,
             what="serving's share counting its second pod")
    assert used(kube, namespace, "tenant-fine-tuning")[f"requests.{GPU}"] == "1"
