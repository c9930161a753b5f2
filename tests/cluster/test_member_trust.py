"""What a NationalCloud's member credentials may do, on real control planes (issue 22, items 1 and 4): the
session's cluster is the hub, a member holds Germany's cloud (``cluster up --countries DE``), one operator runs on
the hub.

- A kubeconfig Secret whose user runs an ``exec`` plugin is refused naming the field, and the plugin never runs
  (it would write a marker file); a Secret outside the operator's namespace, or without the opt-in label, is
  refused with a message saying so. Nothing of the tenant lands on the hub meanwhile.
- Dropping the member reference never moves the tenant onto the hub: the API server refuses a NationalCloud with
  ``cluster: member`` and no reference; a NationalCloud synced without the fields ``cloud join`` wrote (cluster
  local again) leaves the tenant where it was, Stalled ``TenantMoveRefused``, with no namespace nor Secret of it
  on the hub.
"""

from __future__ import annotations

import base64
import os
import time
import uuid

import pytest
import yaml
from kubernetes import config

from sovereign_suite.api.secret_refs import MEMBER_CREDENTIALS_LABEL
from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join
from sovereign_suite.reconcile.kube import ApiError, Kube

from .conftest import wait_for
from .operator_fixture import condition, create_referenced_secrets, get_suite, suite_doc
from .test_cloud_join import cli

SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")
HUB_NS = "sovereign-suite-system"  # the operator's namespace (OperatorProcess runs outside a cluster: the default)


@pytest.fixture(scope="module")
def member():
    c = Cluster(f"trust-member-{os.getpid()}")
    try:
        c.up(progress=lambda m: print(f"[member] {m}"), countries=["DE"])
        yield c
    finally:
        c.down()


@pytest.fixture(scope="module")
def cloud(cluster, member, kube):
    """A hub NationalCloud (a copy of the hub's own de-c5) joined to the member; left and deleted afterwards."""
    name = f"de-trust-{uuid.uuid4().hex[:4]}"
    kube.create({"apiVersion": join.CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": name},
                 "spec": kube.get(*join.CLOUDS, "de-c5")["spec"]})
    done = cli("cloud", "join", name, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert done.returncode == 0, done.stderr
    yield name
    cli("cloud", "leave", name, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    kube.delete({"apiVersion": join.CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": name}})


def member_kube(c: Cluster) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(c.kubeconfig)), user_agent="sovereign-suite-tests")


def german_suite(namespace: str, cloud: str, policy: str) -> dict:
    doc = suite_doc("two-countries", namespace, patch={"deletionPolicy": policy, "components": {
        "docs": {"enabled": False}, "jitsi": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "DE", "cloud": cloud}]
    return doc


def stalled(kube, doc: dict, reason: str, text: str, timeout: float = 60) -> dict:
    def found():
        c = condition(get_suite(kube, doc), "Stalled")
        return c if c and c["status"] == "True" and c["reason"] == reason and text in c["message"] else None

    try:
        return wait_for(found, timeout=timeout, what=f"Stalled {reason} saying {text!r}")
    except AssertionError as err:
        raise AssertionError(f"{err}; conditions: {(get_suite(kube, doc) or {}).get('status', {}).get('conditions')}"
                             ) from None


def nothing_on_the_hub(kube, doc: dict) -> None:
    name, ns = doc["metadata"]["name"], doc["metadata"]["namespace"]
    assert kube.get("v1", "Namespace", f"{name}-de") is None
    assert not kube.list("v1", "Secret", f"sovereignsuite.io/suite={name},sovereignsuite.io/suite-namespace={ns}")


def point_at(kube, cloud: str, name: str, namespace: str = HUB_NS) -> None:
    kube.merge_patch(*join.CLOUDS, cloud, None, {"spec": {"kubeconfigSecretRef": {
        "name": name, "namespace": namespace, "key": "kubeconfig"}}})


def test_member_credentials_are_data_only_in_the_operators_namespace_and_opted_in(
        cluster, member, cloud, operator, kube, core, namespace, tmp_path):
    joined = kube.get(*join.CLOUDS, cloud)["spec"]["kubeconfigSecretRef"]
    good = kube.get("v1", "Secret", joined["name"], joined["namespace"])
    assert good["metadata"]["labels"][MEMBER_CREDENTIALS_LABEL] == "true"  # written by `cloud join`
    kubeconfig = yaml.safe_load(base64.b64decode(good["data"]["kubeconfig"]))
    marker = tmp_path / "exec-plugin-ran"

    def secret(name: str, ns: str, doc: dict, labels: dict) -> None:
        kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns,
                                                                        "labels": labels},
                     "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(doc).encode()).decode()}})

    # an exec plugin that would write a marker file (and could send the operator's own token anywhere)
    evil = yaml.safe_load(yaml.safe_dump(kubeconfig))
    evil["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "/bin/sh",
                                         "args": ["-c", f"touch {marker}; exit 1"], "interactiveMode": "Never"}}
    suffix = uuid.uuid4().hex[:4]
    secret(f"exec-{suffix}", HUB_NS, evil, {MEMBER_CREDENTIALS_LABEL: "true"})
    secret(f"elsewhere-{suffix}", namespace, kubeconfig, {MEMBER_CREDENTIALS_LABEL: "true"})
    secret(f"unlabelled-{suffix}", HUB_NS, kubeconfig, {})
    create_referenced_secrets(core, namespace)
    doc = german_suite(namespace, cloud, "Delete")
    try:
        point_at(kube, cloud, f"exec-{suffix}")
        kube.create(doc)
        c = stalled(kube, doc, "MemberCredentials", "users[0].user.exec")
        assert "runs a program" in c["message"] and "/bin/sh" not in c["message"]
        time.sleep(5)  # passes go on (a retry, the drift pass): still never run
        assert not marker.exists(), "the kubeconfig's exec plugin ran in the operator"
        nothing_on_the_hub(kube, doc)

        point_at(kube, cloud, f"elsewhere-{suffix}", namespace)  # another namespace's kubeconfig
        c = stalled(kube, doc, "MemberCredentials", "spec.kubeconfigSecretRef.namespace")
        assert f"is not the operator's member-secrets namespace '{HUB_NS}'" in c["message"]

        point_at(kube, cloud, f"unlabelled-{suffix}")  # e.g. Cluster API's <cluster>-kubeconfig
        c = stalled(kube, doc, "MemberCredentials", f"not labelled {MEMBER_CREDENTIALS_LABEL}")
        nothing_on_the_hub(kube, doc)
        assert not marker.exists()

        point_at(kube, cloud, joined["name"])  # the data-only kubeconfig `cloud join` wrote: used
        wait_for(lambda: member_kube(member).get("v1", "Namespace", f"{doc['metadata']['name']}-de"), timeout=120,
                 what="the tenant namespace in the member")
        nothing_on_the_hub(kube, doc)
    finally:
        point_at(kube, cloud, joined["name"])
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=180, what="suite deleted")
        for name, ns in ((f"exec-{suffix}", HUB_NS), (f"unlabelled-{suffix}", HUB_NS)):
            kube.delete({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}})


def test_dropping_the_member_reference_never_moves_the_tenant_to_the_hub(cluster, member, cloud, operator, kube,
                                                                          core, namespace):
    create_referenced_secrets(core, namespace)
    doc = german_suite(namespace, cloud, "Retain")
    name = doc["metadata"]["name"]
    de = member_kube(member)
    kube.create(doc)

    def applied_in_member():
        s = get_suite(kube, doc) or {}
        tenants = (s.get("status") or {}).get("tenants") or []
        held = de.list("v1", "Secret", "sovereignsuite.io/generated=true", f"{name}-de")
        return tenants and tenants[0].get("cluster") == cloud and held

    wait_for(applied_in_member, timeout=180, what="the tenant applied in the member, its status naming it")
    joined = kube.get(*join.CLOUDS, cloud)["spec"]
    try:
        # the reference alone dropped: the API server refuses it (cluster: member needs it)
        with pytest.raises(ApiError) as refused:
            kube.merge_patch(*join.CLOUDS, cloud, None, {"spec": {"kubeconfigSecretRef": None}})
        assert refused.value.status == 422 and "kubeconfigSecretRef is required" in refused.value.message

        # a GitOps sync of the NationalCloud as it is in Git, without the fields `cloud join` wrote: cluster local
        kube.merge_patch(*join.CLOUDS, cloud, None, {"spec": {"cluster": None, "kubeconfigSecretRef": None}})
        c = stalled(kube, doc, "TenantMoveRefused", f"member cluster {cloud}")
        assert "the operator's own cluster (local)" in c["message"] and "deletionPolicy: Delete" in c["message"]
        suite = get_suite(kube, doc)
        assert suite["status"]["tenants"][0]["cluster"] == cloud  # still where its data is
        time.sleep(8)  # more passes (drift every 3 s): still nothing on the hub
        nothing_on_the_hub(kube, doc)
        assert condition(get_suite(kube, doc), "Stalled")["reason"] == "TenantMoveRefused"
    finally:
        kube.merge_patch(*join.CLOUDS, cloud, None, {"spec": {"cluster": "member",
                                                              "kubeconfigSecretRef": joined["kubeconfigSecretRef"]}})
    wait_for(lambda: (condition(get_suite(kube, doc), "Stalled") or {}).get("status") == "False", timeout=120,
             what="no longer Stalled once the cloud is the member again")
    nothing_on_the_hub(kube, doc)
    kube.merge_patch(*SUITES, name, namespace, {"spec": {"deletionPolicy": "Delete"}})
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=180, what="suite deleted")
