"""Smoke tests of the local control plane: the real scheduler, controllers, garbage collector and CEL."""

from __future__ import annotations

import copy

import pytest
import yaml
from kubernetes.client.rest import ApiException

from ..helpers import EXAMPLE_FILES
from .conftest import wait_for

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _pod(name, namespace, gpus=0, region=None, product=None):
    match = []
    if region:
        match.append({"key": "topology.kubernetes.io/region", "operator": "In", "values": [region]})
    if product:
        match.append({"key": "nvidia.com/gpu.product", "operator": "In", "values": [product]})
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
        resources["requests"]["nvidia.com/gpu"] = str(gpus)
    spec = {"containers": [{"name": "main", "image": "registry.example/none:1", "resources": resources}]}
    if match:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": match}]}}}
    if gpus:
        spec["tolerations"] = [GPU_TOLERATION]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_deployment_becomes_available_in_region(dyn, core, namespace):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    pod = _pod("x", namespace, region="eu01")
    deployments.create(namespace=namespace, body={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod["spec"]}},
    })

    def available():
        d = deployments.get(name="web", namespace=namespace)
        conds = {c["type"]: c["status"] for c in (d.status.conditions or [])}
        return conds.get("Available") == "True" and d.status.availableReplicas == 2

    wait_for(available, what="Deployment web Available")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for p in pods:
        node = core.read_node(p.spec.node_name)
        assert node.metadata.labels["topology.kubernetes.io/region"] == "eu01"
        assert "nvidia.com/gpu.product" not in node.metadata.labels  # GPU nodes are tainted


def test_gpu_pod_lands_on_matching_product(dyn, core, namespace):
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    pods.create(namespace=namespace, body=_pod("gpu", namespace, gpus=2, product="NVIDIA-H100-80GB-HBM3"))
    node_name = wait_for(lambda: pods.get(name="gpu", namespace=namespace).spec.nodeName, what="pod bound")
    node = core.read_node(node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert node.metadata.labels["topology.kubernetes.io/region"] == "eu-west-2"
    wait_for(lambda: pods.get(name="gpu", namespace=namespace).status.phase == "Running", what="pod Running")


def test_pod_asking_too_many_gpus_stays_pending(dyn, core, namespace):
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    pods.create(namespace=namespace, body=_pod("huge", namespace, gpus=16))

    def failed_scheduling():
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=huge").items
        return [e for e in events if e.reason == "FailedScheduling"]

    events = wait_for(failed_scheduling, what="FailedScheduling event")
    assert "Insufficient nvidia.com/gpu" in events[0].message

    def unschedulable():
        pod = pods.get(name="huge", namespace=namespace)
        conds = [c for c in pod.status.conditions or [] if c["type"] == "PodScheduled"]
        return (pod, conds[0]) if conds else None

    pod, cond = wait_for(unschedulable, what="PodScheduled condition")
    assert pod.status.phase == "Pending" and not pod.spec.nodeName
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"


def test_namespace_deletion_completes(core, dyn):
    core.create_namespace({"metadata": {"name": "smoke-delete-me"}})
    dyn.resources.get(api_version="v1", kind="ConfigMap").create(
        namespace="smoke-delete-me", body={"metadata": {"name": "c"}, "data": {"a": "b"}})
    core.delete_namespace("smoke-delete-me")

    def gone():
        try:
            core.read_namespace("smoke-delete-me")
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, timeout=90, what="namespace deleted")


def test_owner_reference_garbage_collection(dyn, namespace):
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    owner = cms.create(namespace=namespace, body={"metadata": {"name": "owner"}})
    cms.create(namespace=namespace, body={"metadata": {"name": "child", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    cms.delete(name="owner", namespace=namespace, body={"propagationPolicy": "Background"})

    def child_gone():
        return not [c for c in cms.get(namespace=namespace).items if c.metadata.name == "child"]

    wait_for(child_gone, timeout=60, what="child collected")


def test_crd_cel_validation_rejects_bad_update(dyn, namespace):
    suites = dyn.resources.get(api_version="sovereignsuite.io/v1alpha1", kind="SovereignSuite")
    doc = yaml.safe_load(EXAMPLE_FILES["two-countries"].read_text())
    doc["metadata"]["namespace"] = namespace
    suites.create(namespace=namespace, body=doc)
    moved = copy.deepcopy(doc)
    moved["spec"]["tenants"][0]["cloud"] = "de-c5"
    with pytest.raises(ApiException) as err:
        suites.patch(namespace=namespace, name=doc["metadata"]["name"], body=moved,
                     content_type="application/merge-patch+json")
    assert err.value.status == 422
    assert "a tenant's cloud is immutable" in str(err.value.body)


def test_crd_rejects_duplicate_country(dyn, namespace):
    suites = dyn.resources.get(api_version="sovereignsuite.io/v1alpha1", kind="SovereignSuite")
    doc = yaml.safe_load(EXAMPLE_FILES["two-countries"].read_text())
    doc["metadata"].update(namespace=namespace, name="dup")
    doc["spec"]["tenants"].append({"country": "FR", "cloud": "fr-secnumcloud"})
    with pytest.raises(ApiException) as err:
        suites.create(namespace=namespace, body=doc)
    assert err.value.status == 422
    assert "each country may appear only once in spec.tenants" in str(err.value.body)
