"""A FineTune in push mode, on real local control planes: the session's cluster is the hub (the FineTune, its suite
and NationalCloud, one operator), and France's cloud is a member cluster of its own (``cluster up --countries
FR``), joined with ``sovereign-suite cloud join``. The training Job and its NetworkPolicy go into the tenant's
namespace of the member only, the pod lands on the member's GPU nodes at the PriorityClass ``cloud join``
installed there, and the FineTune's status on the hub follows that Job: NotPromoted when kwok's pod ends without a
result, then Ready once the trainer's result (written into the member's pod status, as the kubelet copies the
termination message) passes the gate and the tenant's vLLM in the member lists the adapter; deleting the FineTune
deletes the Job in the member, then the finalizer."""

from __future__ import annotations

import copy
import json
import os
import uuid

import pytest
from kubernetes import config

from sovereign_suite.components import finetune as renderer
from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join
from sovereign_suite.reconcile.kube import Kube

from ..finetune_fixtures import MISTRAL, STORAGE, STORAGE_CIDR
from .conftest import wait_for
from .operator_fixture import OperatorProcess
from .test_cloud_join import cli
from .test_finetune_operator import (ADAPTERS_CM, CLOUD, FR_GPU_PRODUCTS, FT, SUITE, conditions, finetune, job_name,
                                     pods_of, status_of, storage_credentials, write_result)

FR_REGION = "eu-west-2"


@pytest.fixture(scope="module")
def member():
    c = Cluster(f"fr-ftmember-{os.getpid()}")
    try:
        c.up(progress=lambda m: print(f"[FR member] {m}"), countries=["FR"])
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def member_kube(member) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(member.kubeconfig)), user_agent="sovereign-suite-tests")


@pytest.fixture(scope="module")
def hub_operator(cluster):
    op = OperatorProcess(cluster, drift_interval=5.0, tag="ft-member-operator")
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def setup(cluster, kube: Kube, member, hub_operator):
    """On the hub: a NationalCloud (FR's, with object storage) joined to the member, a suite whose FR tenant
    serves an open model and admits the administration's namespace."""
    tag = uuid.uuid4().hex[:6]
    suite_ns, admin_ns, name, cloud = f"t-ftm-{tag}", f"t-ftmadm-{tag}", f"ftm{tag}", f"fr-ftm-{tag}"
    for ns in (suite_ns, admin_ns):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    storage_credentials(kube, suite_ns)
    spec = copy.deepcopy(kube.get(*CLOUD, "fr-secnumcloud")["spec"])
    spec["suiteNamespaces"] = [suite_ns]
    spec["objectStorage"] = STORAGE
    spec["network"]["egress"]["objectStorage"] = [{"cidrs": [STORAGE_CIDR], "ports": [{"port": 443}]}]
    kube.create({"apiVersion": CLOUD[0], "kind": CLOUD[1], "metadata": {"name": cloud}, "spec": spec})
    done = cli("cloud", "join", cloud, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert done.returncode == 0, done.stderr
    suite = {"apiVersion": SUITE[0], "kind": SUITE[1], "metadata": {"name": name, "namespace": suite_ns},
             "spec": {"domain": "ftm.example.eu", "deletionPolicy": "Delete",
                      "tenants": [{"country": "FR", "cloud": cloud, "fineTuneNamespaces": [admin_ns]}],
                      "components": {"matrix": {"enabled": False}, "jitsi": {"enabled": False},
                                     "docs": {"enabled": False},
                                     "llm": {"enabled": True, "models": [{**MISTRAL, "replicas": 0}]}}}}
    kube.create(suite)
    yield {"suite": name, "suite_ns": suite_ns, "admin": admin_ns, "tenant": f"{name}-fr", "cloud": cloud}
    for ft in kube.list(*FT, namespace=admin_ns):
        kube.delete(ft)
    for ft in kube.list(*FT, namespace=admin_ns):
        wait_for(lambda ft=ft: kube.get(*FT, ft["metadata"]["name"], admin_ns) is None, timeout=90,
                 what="the FineTunes deleted")
    kube.delete(suite)
    wait_for(lambda: kube.get(*SUITE, name, suite_ns) is None, timeout=120, what="the suite deleted")
    cli("cloud", "leave", cloud, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    kube.delete({"apiVersion": CLOUD[0], "kind": CLOUD[1], "metadata": {"name": cloud}})
    for ns in (suite_ns, admin_ns):
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


def test_a_finetune_on_the_hub_trains_in_the_member_and_its_status_follows(kube: Kube, member_kube: Kube,
                                                                           setup) -> None:
    pc = member_kube.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS)
    assert pc is not None and pc["value"] == -100 and pc["preemptionPolicy"] == "Never"
    assert pc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == join.MANAGER  # cloud join made it
    ns = setup["tenant"]
    wait_for(lambda: member_kube.get("v1", "Namespace", ns), timeout=120, what=f"the tenant namespace {ns} in the member")
    doc = finetune(setup, "member-run")
    kube.create(doc)
    name = job_name(doc)
    job = wait_for(lambda: member_kube.get("batch/v1", "Job", name, ns), timeout=90, what="the Job in the member")
    assert member_kube.get("networking.k8s.io/v1", "NetworkPolicy", name, ns) is not None
    labels = f"{renderer.LABEL_FINETUNE}=member-run,{renderer.LABEL_FINETUNE_NS}={setup['admin']}"
    for kind in (("batch/v1", "Job"), ("networking.k8s.io/v1", "NetworkPolicy"), ("v1", "Pod")):
        assert kube.list(*kind, label_selector=labels) == [], f"{kind[1]} in the hub"  # the member's only
    # the pod on the member's GPU nodes (the member has FR's nodes only), at the class join installed
    pod = wait_for(lambda: (p := pods_of(member_kube, ns, name)) and p[0]["spec"].get("nodeName") and p[0],
                   timeout=90, what="the training pod bound in the member")
    node = member_kube.get("v1", "Node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] in FR_GPU_PRODUCTS
    assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == FR_REGION
    assert pod["spec"]["priority"] == -100 and pod["spec"]["priorityClassName"] == renderer.PRIORITY_CLASS
    assert job["spec"]["template"]["spec"]["priorityClassName"] == renderer.PRIORITY_CLASS
    # the status on the hub follows the member's Job
    st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") == "NotPromoted" and s, timeout=90,
                  what="NotPromoted on the hub")
    assert st["job"] == f"{ns}/{name}"
    uri = f"s3://{STORAGE['bucket']}/fine-tuning/{setup['admin']}/member-run/adapter/"
    (pod,) = pods_of(member_kube, ns, name)
    write_result(member_kube, pod, {"phase": "Succeeded", "step": 100, "totalSteps": 100, "loss": 1.1,
                                    "baseEvalLoss": 2.0, "evalLoss": 1.4, "tokensPerSecond": 900.0,
                                    "durationSeconds": 42.0, "adapterUri": uri})
    served = f"{setup['admin']}-member-run"
    st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") == "Ready" and s, timeout=120,
                  what="Ready: the adapter served in the member")
    assert st["servedName"] == served and conditions(st)["Ready"][:2] == ("True", "Served")
    config_map = member_kube.get("v1", "ConfigMap", ADAPTERS_CM, ns)
    assert [a["name"] for a in json.loads(config_map["data"]["config.json"])["adapters"]] == [served]
    assert kube.get("v1", "ConfigMap", ADAPTERS_CM, ns) is None  # the hub holds no tenant of this cloud
    # deletion reaches the member
    kube.delete(copy.deepcopy(doc))
    wait_for(lambda: kube.get(*FT, "member-run", setup["admin"]) is None, timeout=90, what="the FineTune gone")
    assert member_kube.get("batch/v1", "Job", name, ns) is None
    assert member_kube.get("networking.k8s.io/v1", "NetworkPolicy", name, ns) is None
    assert pods_of(member_kube, ns, name) == []
    wait_for(lambda: member_kube.get("v1", "ConfigMap", ADAPTERS_CM, ns) is None, timeout=90,
             what="the adapter unloaded in the member")
