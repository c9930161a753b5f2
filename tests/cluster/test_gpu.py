"""GPU-aware placement of LLM models on the simulated national clouds, with the real scheduler."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings, strategies as st

from sovereign_suite.api.validation import parse_cloud, parse_suite
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.render import render_suite

from .conftest import wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets

H100, A100, L40S = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"
FR_REGION = "eu-west-2"


def llm_suite(namespace: str, models: list[dict], quota_gpus: int = 16, jitsi: bool = False) -> dict:
    return {
        "apiVersion": SUITES[0], "kind": SUITES[1],
        "metadata": {"name": f"g{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": {
            "domain": "gpu.example.eu",
            "tenants": [{"country": "FR", "cloud": "fr-secnumcloud", "quota": {"gpus": quota_gpus}}],
            "components": {"matrix": {"enabled": False}, "jitsi": {"enabled": jitsi}, "docs": {"enabled": False},
                           "llm": {"enabled": True, "models": models}},
            "deletionPolicy": "Delete",
        },
    }


def blockers(kube: Kube, namespace: str, product: str, count: int, gpus: int) -> None:
    """Pods that hold ``gpus`` GPUs each on ``product`` nodes of FR."""
    kube.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "blocker", "namespace": namespace},
        "spec": {
            "replicas": count, "selector": {"matchLabels": {"app": "blocker"}},
            "template": {"metadata": {"labels": {"app": "blocker"}}, "spec": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "topology.kubernetes.io/region", "operator": "In", "values": [FR_REGION]},
                        {"key": "nvidia.com/gpu.product", "operator": "In", "values": [product]}]}]}}},
                "containers": [{"name": "c", "image": "example.invalid/blocker:1", "resources": {
                    "requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}}],
            }},
        },
    })

    def bound():
        pods = kube.list("v1", "Pod", namespace=namespace, label_selector="app=blocker")
        return len(pods) == count and all(p["spec"].get("nodeName") for p in pods)

    wait_for(bound, what="blocker pods bound")


def model_status(kube: Kube, doc: dict, name: str) -> dict | None:
    s = kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"]) or {}
    for t in (s.get("status") or {}).get("tenants") or []:
        for m in t.get("models") or []:
            if m["name"] == name:
                return m
    return None


def model_pods(kube: Kube, doc: dict, model: str) -> list[dict]:
    return kube.list("v1", "Pod", namespace=f"{doc['metadata']['name']}-fr",
                     label_selector=f"sovereignsuite.io/model={model}")


def node_product(kube: Kube, node: str) -> str:
    return kube.get("v1", "Node", node)["metadata"]["labels"]["nvidia.com/gpu.product"]


def delete_suite(kube: Kube, doc: dict) -> None:
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"]) is None,
             timeout=60, what="suite deleted")


def test_prefers_h100_falls_back_to_a100_and_does_not_flap(operator, kube, core, namespace):
    create_referenced_secrets(core, namespace)
    blockers(kube, namespace, H100, count=2, gpus=8)  # both FR H100 nodes full
    doc = llm_suite(namespace, [{"name": "big", "modelId": "org/big", "gpusPerReplica": 2,
                                 "gpuProducts": [H100, A100]}])
    kube.create(doc)
    m = wait_for(lambda: (model_status(kube, doc, "big") or {}).get("state") == "Ready" and model_status(
        kube, doc, "big"), timeout=90, what="model big Ready")
    assert m["product"] == A100 and m["gpus"] == 2
    pods = model_pods(kube, doc, "big")
    assert [node_product(kube, p["spec"]["nodeName"]) for p in pods] == [A100]

    # H100 frees up: the model stays where it runs (no flapping on capacity changes)
    kube.delete({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "blocker",
                                                                             "namespace": namespace}})
    wait_for(lambda: not kube.list("v1", "Pod", namespace=namespace, label_selector="app=blocker"),
             what="blockers gone")
    before = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
    wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + 2,
             timeout=30, what="two drift passes")
    assert model_status(kube, doc, "big")["product"] == A100
    assert [node_product(kube, p["spec"]["nodeName"]) for p in model_pods(kube, doc, "big")] == [A100]
    delete_suite(kube, doc)


def test_model_too_big_is_unschedulable_and_the_rest_goes_on(operator, kube, core, namespace):
    doc = llm_suite(namespace, [{"name": "huge", "modelId": "org/huge", "gpusPerReplica": 16,
                                 "gpuProducts": [H100, A100]}], quota_gpus=32, jitsi=True)
    kube.create(doc)
    m = wait_for(lambda: (model_status(kube, doc, "huge") or {}).get("state") == "Unschedulable" and model_status(
        kube, doc, "huge"), timeout=60, what="model huge Unschedulable")
    assert m["reason"] == "InsufficientGPU" and m["product"] == ""
    assert "needs 1 x 16 nvidia.com/gpu on one node each" in m["message"]
    assert f"{H100}: " in m["message"] and "at most 8 on one" in m["message"]
    suite = kube.get(*SUITES, doc["metadata"]["name"], namespace)
    degraded = condition(suite, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InsufficientGPU"
    assert "fr/llm/huge: InsufficientGPU" in degraded["message"]
    # the tenant's other components go on
    wait_for(lambda: kube.get("apps/v1", "Deployment", "jitsi-web", f"{doc['metadata']['name']}-fr")
             ["status"].get("availableReplicas") == 2, timeout=60, what="jitsi-web available")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={doc['metadata']['name']}")
    assert any(e.reason == "InsufficientGPU" for e in events.items)
    assert operator.metric("sovereign_suite_llm_model_unschedulable", model="huge") == 1
    delete_suite(kube, doc)
    # what the operator kept of the deleted suite goes with it: its model series too (no stale "unschedulable")
    name = doc["metadata"]["name"]
    wait_for(lambda: not operator.series("sovereign_suite_llm_model_unschedulable", suite=name)
             and not operator.series("sovereign_suite_ready", suite=name), timeout=30,
             what="the suite's series removed")


def test_freeing_capacity_lets_the_model_schedule(operator, kube, core, namespace):
    blockers(kube, namespace, H100, count=1, gpus=8)  # one of the two H100 nodes full
    doc = llm_suite(namespace, [{"name": "pair", "modelId": "org/pair", "gpusPerReplica": 8, "replicas": 2,
                                 "gpuProducts": [H100]}])
    kube.create(doc)
    m = wait_for(lambda: (model_status(kube, doc, "pair") or {}).get("state") == "Unschedulable" and model_status(
        kube, doc, "pair"), timeout=60, what="model pair Unschedulable")
    assert m["reason"] == "InsufficientGPU"
    kube.delete({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "blocker",
                                                                             "namespace": namespace}})
    m = wait_for(lambda: (model_status(kube, doc, "pair") or {}).get("state") == "Ready" and model_status(
        kube, doc, "pair"), timeout=90, what="model pair Ready once capacity is free")
    assert m["product"] == H100
    assert sorted(node_product(kube, p["spec"]["nodeName"]) for p in model_pods(kube, doc, "pair")) == [H100, H100]
    assert condition(kube.get(*SUITES, doc["metadata"]["name"], namespace), "Ready")["status"] == "True"
    delete_suite(kube, doc)


def test_gpu_quota_is_reported(operator, kube, namespace):
    doc = llm_suite(namespace, [{"name": "q", "modelId": "org/q", "gpusPerReplica": 2, "gpuProducts": [A100]}],
                    quota_gpus=1)
    kube.create(doc)
    m = wait_for(lambda: (model_status(kube, doc, "q") or {}).get("reason") == "GPUQuotaExceeded" and model_status(
        kube, doc, "q"), timeout=60, what="quota reported")
    assert m["state"] == "Unschedulable"
    assert "need 2 nvidia.com/gpu in total" in m["message"] and "allows 1" in m["message"]
    assert condition(kube.get(*SUITES, doc["metadata"]["name"], namespace), "Degraded")["reason"] == \
        "GPUQuotaExceeded"
    delete_suite(kube, doc)


# ---- property: no tenant pod is ever bound outside its cloud's regions ----------------------------------

REGIONS = {"FR": "eu-west-2", "DE": "eu01", "LU": "lu-bettembourg", "SE": "se-sto"}
PRODUCTS = [H100, A100, L40S]


@st.composite
def suites_and_clouds(draw):
    countries = draw(st.lists(st.sampled_from(sorted(REGIONS)), min_size=1, max_size=3, unique=True))
    run = uuid.uuid4().hex[:5]
    clouds, tenants = [], []
    for cc in countries:
        regions = draw(st.lists(st.sampled_from(sorted(REGIONS.values())), min_size=1, max_size=2, unique=True))
        name = f"p{run}-{cc.lower()}"
        clouds.append({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud",
                       "metadata": {"name": name},
                       "spec": {"country": cc, "provider": "prop", "regions": regions, "storageClass": "standard",
                                "suiteNamespaces": ["default"]}})
        tenants.append({"country": cc, "cloud": name})
    models = [{"name": f"m{i}", "modelId": f"org/m{i}", "gpusPerReplica": draw(st.sampled_from([1, 2, 4])),
               "gpuProducts": draw(st.lists(st.sampled_from(PRODUCTS), min_size=1, max_size=3, unique=True))}
              for i in range(draw(st.integers(0, 2)))]
    for i, t in enumerate(tenants):  # node ports are cluster-wide: keep examples apart
        t["components"] = {"jitsi": {"jvb": {"nodePort": 30100 + int(run, 16) % 1800 + i}}}
    suite = {
        "apiVersion": SUITES[0], "kind": SUITES[1],
        "metadata": {"name": f"p{run}", "namespace": "default"},
        "spec": {"domain": "prop.example.eu", "tenants": tenants, "components": {
            "matrix": {"enabled": draw(st.booleans())}, "jitsi": {"enabled": draw(st.booleans())},
            "docs": {"enabled": False}, "llm": {"enabled": bool(models), "models": models}}},
    }
    return suite, clouds


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=suites_and_clouds())
def test_no_tenant_pod_outside_its_cloud_regions(kube, case):
    suite_doc, cloud_docs = case
    suite = parse_suite(suite_doc)
    clouds = {c["metadata"]["name"]: parse_cloud(c) for c in cloud_docs}
    manifests = render_suite(suite, clouds).manifests
    namespaces = [o["metadata"]["name"] for o in manifests if o["kind"] == "Namespace"]
    try:
        for obj in manifests:  # apply what the operator would (no Secrets needed: pods need only be placed)
            kube.apply(obj, "property-test")
        workloads = [o for o in manifests if o["kind"] in ("Deployment", "StatefulSet")]

        expected = sum(w["spec"].get("replicas", 1) for w in workloads)

        def settled(pod) -> bool:
            if pod["spec"].get("nodeName"):
                return True
            conds = (pod.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                       and "PersistentVolumeClaim" not in (c.get("message") or "") for c in conds)

        def placed():
            pods = [p for ns in namespaces for p in kube.list("v1", "Pod", namespace=ns)]
            return pods if len(pods) >= expected and all(settled(p) for p in pods) else None

        pods = wait_for(placed, timeout=90, what="every pod bound or rejected by the scheduler") if expected else []
        bound = 0
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if not node:
                continue
            bound += 1
            cc = pod["metadata"]["namespace"].rsplit("-", 1)[-1].upper()
            cloud = clouds[next(t.cloud for t in suite.spec.tenants if t.country == cc)]
            region = kube.get("v1", "Node", node)["metadata"]["labels"]["topology.kubernetes.io/region"]
            assert region in cloud.spec.regions, f"{pod['metadata']['name']} on {node} ({region})"
        cpu_workloads = [w for w in workloads if "sovereignsuite.io/model" not in w["metadata"]["labels"]
                         and w["spec"].get("replicas", 1)]
        if cpu_workloads:  # every region has CPU nodes: these must have landed somewhere (the check ran)
            assert bound > 0
    finally:
        for ns in namespaces:
            kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for ns in namespaces:  # its Services' node ports are released with it
            wait_for(lambda: kube.get("v1", "Namespace", ns) is None, timeout=120, what=f"namespace {ns} deleted")
