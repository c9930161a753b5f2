"""A watch that fails (a permission taken away) makes the suite's status say so: the pass reports WatchFailed and
the suite is not Ready, instead of a Ready status built on a stale view. The operator's pipeline runs in-process
against the real API server, with a ServiceAccount's real token that may not list StatefulSets."""

from __future__ import annotations

import uuid

import pytest

from sovereign_suite.devcluster.cluster import dev_clouds
from sovereign_suite.reconcile.context import OperatorContext, Settings
from sovereign_suite.reconcile.credentials import kubeconfig_client
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.pipeline import reconcile

from .conftest import wait_for
from .operator_fixture import create_referenced_secrets, suite_doc
from .test_install import token_kubeconfig

ALL = ["*"]


def rules_without_statefulset_reads() -> list[dict]:
    """Everything the operator does, but StatefulSets may only be read one by one, not listed or watched."""
    return [
        {"apiGroups": [""], "resources": ALL, "verbs": ALL},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ALL},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "create", "patch", "delete"]},
        {"apiGroups": ["batch", "networking.k8s.io", "policy", "sovereignsuite.io", "postgresql.cnpg.io",
                       "monitoring.coreos.com"], "resources": ALL, "verbs": ALL},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ALL},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"]},
    ]


@pytest.fixture()
def restricted_kube(cluster, kube, namespace, tmp_path) -> Kube:
    name = f"no-sts-{uuid.uuid4().hex[:5]}"
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}})
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
                 "rules": rules_without_statefulset_reads()})
    kube.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                 "metadata": {"name": name},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                 "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]})
    path = token_kubeconfig(cluster, namespace, name, tmp_path / "sa.yaml")
    # the operator's own client (reconcile/credentials.py), on a token kubeconfig as `run` would read it
    yield Kube(kubeconfig_client(str(path)), user_agent="sovereign-suite-operator")
    for kind in ("ClusterRoleBinding", "ClusterRole"):
        kube.delete({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": {"name": name}})


def test_a_failing_watch_makes_the_suite_degraded_not_ready(restricted_kube, kube, core, namespace):
    create_referenced_secrets(core, namespace)
    ctx = OperatorContext(restricted_kube, Settings(namespaces=()))
    for cloud in dev_clouds().values():  # as the dev cluster holds them: they admit this test's namespace
        ctx.clouds.set(cloud.name, cloud)
    ctx.cache.start()
    # no Jitsi: its JVB NodePort is cluster-wide, and another test's suite may still hold it while being deleted
    body = suite_doc("two-countries", namespace, patch={"deletionPolicy": "Delete", "components": {
        "docs": {"enabled": False}, "jitsi": {"enabled": False}}})
    body["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-secnumcloud"}]
    body["metadata"].update(uid=str(uuid.uuid4()), generation=1)
    try:
        errors = wait_for(lambda: ctx.cache.watch_errors(set()), timeout=30, what="the StatefulSet watch refused")
        assert any("StatefulSet" in e and "403" in e for e in errors), errors
        result = reconcile(ctx, body)
        failed = [p for p in result.problems if p.reason == "WatchFailed"]
        assert failed and "statefulsets" in failed[0].message and "forbidden" in failed[0].message.lower()
        conds = {c["type"]: c for c in result.status["conditions"]}
        assert conds["Ready"]["status"] == "False"
        assert conds["Degraded"]["status"] == "True" and "StatefulSet" in conds["Degraded"]["message"]
        assert result.writes > 0  # the rest of the suite was applied; only the stale view blocks Ready (and pruning)
    finally:
        ctx.shutdown()
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"{body['metadata']['name']}-fr"}})
