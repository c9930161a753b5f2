"""What the operator repairs, what it leaves alone, and what it may delete, on the real local control plane
(issue 22, items 8, 9, 10 and 12; docs/architecture.md, "Convergence" and "Children, labels and deletion").

- a field removed by hand (an update that leaves its writer no managedFields entry) is restored within seconds;
- a field another controller adds that the operator does not render is left alone, and brings no write loop;
- pruning deletes only in the suite's tenant namespaces and only objects carrying its UID;
- a tenant namespace holding anything the operator did not render (a Pod, a CronJob, an object of a CRD) is kept
  when the suite goes with deletionPolicy Delete.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import wait_for
from .operator_fixture import SUITES, Audit, OperatorProcess, create_referenced_secrets, get_suite
from .test_reconcile_core import NO_DOCS, delete_suite, fr_suite, gone, kubectl, patch_spec


@pytest.fixture(scope="module")
def operator(cluster):
    """The drift loop far away (10 min): what is repaired within seconds was repaired by a watch event."""
    op = OperatorProcess(cluster, drift_interval=600, tag="scope")
    op.start()
    yield op
    op.stop()


@pytest.fixture()
def suite_ns(namespace, core):
    create_referenced_secrets(core, namespace)
    return namespace


def operator_writes_to(audit: Audit, mark: int, resource: str, name: str) -> list[str]:
    return [w for w in audit.writes(mark) if w.split()[1] == resource and w.endswith(f"/{name}")]


# ---- item 8: removal-only drift --------------------------------------------------------------------------------

def test_fields_removed_by_hand_are_restored_within_seconds(operator, kube, cluster, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, NO_DOCS)
    enforce = "pod-security.kubernetes.io/enforce"
    level = kube.get("v1", "Namespace", fr)["metadata"]["labels"][enforce]
    # tenant-quota holds the tenant's storage share (components/tenancy/__init__.py)
    storage = kube.get("v1", "ResourceQuota", "tenant-quota", fr)["spec"]["hard"]["requests.storage"]

    kubectl(cluster, "label", "ns", fr, f"{enforce}-")
    kubectl(cluster, "-n", fr, "patch", "resourcequota", "tenant-quota", "--type=json",
            "-p", json.dumps([{"op": "remove", "path": "/spec/hard/requests.storage"}]))
    kubectl(cluster, "-n", fr, "set", "env", "deploy/element-web", "ELEMENT_WEB_PORT-")
    wait_for(lambda: (kube.get("v1", "Namespace", fr)["metadata"]["labels"].get(enforce) == level), timeout=20,
             what="the tenant's PSA enforce label restored")

    def quota_storage():
        # requests.storage is the quota's only key: until it is restored the API server drops the empty `hard`
        spec = kube.get("v1", "ResourceQuota", "tenant-quota", fr).get("spec") or {}
        return (spec.get("hard") or {}).get("requests.storage")

    wait_for(lambda: quota_storage() == storage, timeout=20, what="the quota key restored")

    def env():
        container = kube.get("apps/v1", "Deployment", "element-web", fr)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"] for e in container.get("env") or []}

    wait_for(lambda: "ELEMENT_WEB_PORT" in env(), timeout=20, what="the env var restored")
    delete_suite(kube, doc)


# ---- item 10: other controllers' fields are left alone ---------------------------------------------------------

def test_fields_the_operator_does_not_render_are_left_alone_without_a_write(operator, kube, cluster, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, NO_DOCS)
    audit = Audit(cluster)
    time.sleep(2)  # the last passes of the rollout
    mark = audit.mark()
    # what OpenShift's SCC admission writes on a Namespace, and `kubectl rollout restart` (its annotation on the
    # pod template), and a hand-added ConfigMap key
    kubectl(cluster, "annotate", "ns", fr, "openshift.io/sa.scc.uid-range=1000680000/10000")
    kubectl(cluster, "-n", fr, "rollout", "restart", "deploy/element-web")
    kube.merge_patch("v1", "ConfigMap", "element-web", fr, {"data": {"HAND_MADE": "1"}})
    time.sleep(8)  # the watch events, and several passes they bring
    ns = kube.get("v1", "Namespace", fr)
    assert ns["metadata"]["annotations"]["openshift.io/sa.scc.uid-range"] == "1000680000/10000"
    template = kube.get("apps/v1", "Deployment", "element-web", fr)["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    assert kube.get("v1", "ConfigMap", "element-web", fr)["data"]["HAND_MADE"] == "1"
    for resource, obj in (("namespaces", fr), ("deployments", "element-web"), ("configmaps", "element-web")):
        assert operator_writes_to(audit, mark, resource, obj) == [], resource
    # a rendered field rewritten by hand is still repaired
    kube.merge_patch("v1", "ConfigMap", "element-web", fr, {"data": {"config.json": "{}"}})
    wait_for(lambda: kube.get("v1", "ConfigMap", "element-web", fr)["data"]["config.json"] != "{}",
             timeout=20, what="the rewritten rendered key repaired")
    delete_suite(kube, doc)


# ---- item 9: pruning stays in the suite's tenant namespaces, on objects carrying its UID ------------------------

def test_labelled_copies_outside_the_tenants_or_without_the_uid_survive_a_prune(operator, kube, core, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, NO_DOCS)
    scratch = f"scratch-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": scratch}})
    original = kube.get("v1", "ConfigMap", "element-web", fr)
    meta = original["metadata"]
    copy = {"apiVersion": "v1", "kind": "ConfigMap", "data": original["data"],
            "metadata": {"name": "element-web", "namespace": scratch, "labels": meta["labels"],
                         "annotations": {k: v for k, v in meta["annotations"].items()}}}
    kube.create(copy)  # a debug copy, labels and UID included
    unowned = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"},
               "metadata": {"name": "rendered-by-hand", "namespace": fr, "labels": meta["labels"]}}
    kube.create(unowned)  # `sovereign-suite render` output applied by hand: the labels, no UID
    # a pass that prunes: a component disabled
    patch_spec(kube, doc, {"components": {"jitsi": {"enabled": False}}})
    wait_for(lambda: kube.get("apps/v1", "Deployment", "jitsi-web", fr) is None, timeout=60,
             what="the disabled component pruned")
    time.sleep(2)
    assert kube.get("v1", "ConfigMap", "element-web", scratch) is not None
    assert kube.get("v1", "ConfigMap", "rendered-by-hand", fr) is not None
    kube.delete(unowned)
    delete_suite(kube, doc)
    core.delete_namespace(scratch)


# ---- item 12: a namespace holding anything foreign is kept ----------------------------------------------------

@pytest.fixture()
def widget_crd(kube, cluster):
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    kube.create(crd)
    wait_for(lambda: kube.kind(f"{group}/v1", "Widget") is not None or kube.forget_api(f"{group}/v1"),
             timeout=30, what="the CRD served")
    yield f"{group}/v1"
    kube.delete(crd)


RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
              "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}  # the tenant's PSA level
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "users-debug-pod"},
       "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "securityContext": RESTRICTED}]}}
CRONJOB = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "users-backup"},
           "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}}}


@pytest.mark.parametrize("what", ["pod", "cronjob", "crd"])
def test_a_tenant_namespace_holding_a_foreign_object_is_kept(operator, kube, core, suite_ns, widget_crd, what):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", **NO_DOCS})
    foreign = {"pod": POD, "cronjob": CRONJOB,
               "crd": {"apiVersion": widget_crd, "kind": "Widget", "metadata": {"name": "users-widget"}}}[what]
    kube.create({**foreign, "metadata": {**foreign["metadata"], "namespace": fr}})
    delete_suite(kube, doc, wait=False)
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=120, what="suite deleted")
    ns = kube.get("v1", "Namespace", fr)
    assert ns is not None and not ns["metadata"].get("deletionTimestamp")
    assert kube.get(foreign["apiVersion"], foreign["kind"], foreign["metadata"]["name"], fr) is not None
    events = kube.list("v1", "Event", namespace=suite_ns, field_selector=f"involvedObject.name={name}")
    assert any(e["reason"] == "NamespaceKept" and f"{foreign['kind']}/{foreign['metadata']['name']}" in e["message"]
               for e in events), [e["message"] for e in events if e["reason"] == "NamespaceKept"]
    core.delete_namespace(fr)
    wait_for(gone(kube, "v1", "Namespace", fr), timeout=120, what="the kept namespace deleted by the test")
