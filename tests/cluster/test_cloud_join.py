"""``sovereign-suite cloud join|leave`` between two real local control planes: the session's cluster as the hub,
and a member cluster holding only Germany's simulated cloud (``cluster up --countries DE``)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join, names
from sovereign_suite.reconcile.kube import Kube

from .operator_fixture import create_referenced_secrets, suite_doc, wait_ready

CLOUD = "de-c5"


@pytest.fixture(scope="module")
def member():
    c = Cluster(f"member-{os.getpid()}")
    try:
        c.up(progress=lambda m: print(f"[member] {m}"), countries=["DE"])
        yield c
    finally:
        c.down()


def cli(*args: str, kubeconfig) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sovereign_suite.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ, KUBECONFIG=str(kubeconfig)))


def test_a_member_cluster_holds_only_its_countrys_cloud(member):
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(member.kubeconfig)))
    regions = {n.metadata.labels["topology.kubernetes.io/region"] for n in core.list_node().items}
    assert regions == {"eu01"}  # Germany's simulated cloud only
    clouds = Kube(config.new_client_from_config(config_file=str(member.kubeconfig))).list(*join.CLOUDS)
    assert [c["metadata"]["name"] for c in clouds] == [CLOUD]


def test_join_gives_the_hub_a_least_privilege_kubeconfig_and_leave_takes_it_back(cluster, member, kube, core,
                                                                                 operator, namespace):
    missing = cli("cloud", "join", f"nowhere-{uuid.uuid4().hex[:4]}", "--member-kubeconfig", str(member.kubeconfig),
                  kubeconfig=cluster.kubeconfig)
    assert missing.returncode == 1 and "not found on the hub" in missing.stderr
    member_kube = Kube(config.new_client_from_config(config_file=str(member.kubeconfig)))
    assert member_kube.get("v1", "ServiceAccount", names.service_account(CLOUD), names.MEMBER_NAMESPACE) is None

    done = cli("cloud", "join", CLOUD, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert done.returncode == 0, done.stderr
    ref = kube.get(*join.CLOUDS, CLOUD)["spec"]["kubeconfigSecretRef"]
    assert ref == {"name": f"{CLOUD}-kubeconfig", "namespace": "sovereign-suite-system", "key": "kubeconfig"}
    secret = kube.get("v1", "Secret", ref["name"], ref["namespace"])
    as_member = config.new_client_from_config_dict(yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"])))
    sa = Kube(as_member, user_agent="joined-hub")

    # what the tenants' objects need: tenant namespaces, workloads, Secrets ...
    ns = f"t-join-{uuid.uuid4().hex[:5]}"
    sa.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
        "sovereignsuite.io/suite": "t-join", "pod-security.kubernetes.io/enforce": "restricted"}}})
    sa.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ns},
              "data": {"a": "b"}}, "sovereign-suite-operator")
    assert sa.list("v1", "Node")  # GPU capacity is read from the member's own nodes
    # ... and nothing beyond: no cluster RBAC, no node changes, nothing in other API groups
    rbac = client.RbacAuthorizationV1Api(as_member)
    with pytest.raises(ApiException) as denied:
        rbac.list_cluster_role()
    assert denied.value.status == 403
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(as_member).delete_node("de-cpu-0")
    assert denied.value.status == 403

    # push mode: the tenant on the joined cloud lives in the member, nothing of it on the hub
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={"deletionPolicy": "Delete", "components": {"docs": {
        "enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "DE", "cloud": CLOUD}]
    kube.create(doc)
    suite = wait_ready(kube, doc, timeout=180)
    assert suite["status"]["tenants"][0]["cluster"] == CLOUD
    tenant_ns = f"{doc['metadata']['name']}-de"
    assert kube.get("v1", "Namespace", tenant_ns) is None and member_kube.get("v1", "Namespace", tenant_ns)

    # join again: idempotent, the same token
    again = cli("cloud", "join", CLOUD, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert again.returncode == 0, again.stderr
    assert kube.get("v1", "Secret", ref["name"], ref["namespace"])["data"] == secret["data"]

    # the fine-tuning PriorityClass (members/join.py): there while joined, gone with the last join when no pod runs
    # at it (no FineTune trains in this member)
    fine_tuning = ("scheduling.k8s.io/v1", "PriorityClass", "sovereign-suite-fine-tuning")
    assert member_kube.get(*fine_tuning)["preemptionPolicy"] == "Never"
    left = cli("cloud", "leave", CLOUD, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert left.returncode == 0, left.stderr
    assert member_kube.get(*fine_tuning) is None
    assert "kubeconfigSecretRef" not in kube.get(*join.CLOUDS, CLOUD)["spec"]
    assert kube.get("v1", "Secret", ref["name"], ref["namespace"]) is None
    assert member_kube.get("v1", "ServiceAccount", names.service_account(CLOUD), names.MEMBER_NAMESPACE) is None
    with pytest.raises(ApiException) as revoked:  # the token no longer works
        client.CoreV1Api(as_member).list_node()
    assert revoked.value.status in (401, 403)
    for gone in (ns, tenant_ns):  # what the hub left in the member when it lost access (docs/multi-cluster.md)
        member_kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": gone}})
    wait_ready(kube, doc)  # the cloud is the hub's own again: the NationalCloud's event brings the pass
    assert kube.get("v1", "Namespace", tenant_ns)
    kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite", "metadata": doc["metadata"]})
