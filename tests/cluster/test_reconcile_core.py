"""The reconcile core on the real local control plane: exact convergence, safe deletion and pruning, retained
data, migration Jobs, API discovery after start, watches instead of polling, rotated Secrets, namespaces that
are created but never taken over. Each test is the regression test of one defect (docs/architecture.md).

Faults are injected with real mechanisms: a ValidatingAdmissionPolicy that denies a request, a Job whose pods
cannot be scheduled and whose deadline expires, a CRD installed or deleted while the operator runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from sovereign_suite.devcluster.cluster import bin_dir
from sovereign_suite.reconcile.secrets import LABEL_COPY, secret_names_used

from ..helpers import ROOT
from .conftest import serving_test_crds, wait_crds, wait_for
from .operator_fixture import (SUITES, Audit, OperatorProcess, condition, create_referenced_secrets, get_suite,
                               suite_doc, wait_ready)

NO_DOCS = {"components": {"docs": {"enabled": False}}}
ONE_TENANT = [{"country": "FR", "cloud": "fr-secnumcloud"}]


@pytest.fixture(scope="module")
def operator(cluster):
    """An operator whose drift loop is far away (10 min): whatever a test sees repaired within seconds was
    repaired by a watch event, not by the drift loop. Failed migration Jobs are retried after 2 s; APIs not served
    are looked for again every 2 s, with no backoff (reconcile/unserved.py: its growth to minutes is
    tests/cluster/test_discovery.py's; here a CRD installed under a Ready suite must be seen by the watch, with no
    drift pass to ask for it)."""
    op = OperatorProcess(cluster, drift_interval=600, tag="core", env={
        "SOVEREIGN_SUITE_JOB_RETRY_BASE": "2", "SOVEREIGN_SUITE_DISCOVERY_INTERVAL": "2",
        "SOVEREIGN_SUITE_DISCOVERY_MAX_INTERVAL": "2"})
    op.start()
    yield op
    op.stop()


@pytest.fixture()
def suite_ns(namespace, core):
    create_referenced_secrets(core, namespace)
    return namespace


def kubectl(cluster, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args], input=stdin,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr.strip()[-2000:]}"
    return proc.stdout


def wait_condition(kube, doc, type_: str, status: str, reason: str | None = None, timeout: float = 60):
    def match():
        c = condition(get_suite(kube, doc), type_)
        return c if c and c["status"] == status and (reason is None or c["reason"] == reason) else None

    return wait_for(match, timeout=timeout, what=f"{type_}={status} {reason or ''}")


def fr_suite(kube, namespace: str, patch: dict, ready: bool = True) -> tuple[dict, str, str]:
    """A one-tenant (FR) suite, created (and Ready): (document, name, FR namespace)."""
    doc = suite_doc("two-countries", namespace, patch=patch)
    doc["spec"]["tenants"] = ONE_TENANT
    kube.create(doc)
    if ready:
        wait_ready(kube, doc)
    return doc, doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"


def patch_spec(kube, doc, spec_patch: dict) -> None:
    kube.merge_patch(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"], {"spec": spec_patch})


def delete_suite(kube, doc, wait: bool = True) -> None:
    """Delete the suite and, unless told not to, wait until it is gone and its Services with it: the JVB's NodePort
    is cluster-wide, and the next test's suite (or test module) asks for the same one."""
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    if not wait:
        return
    name, ns = doc["metadata"]["name"], doc["metadata"]["namespace"]
    wait_for(gone(kube, *SUITES, name, ns), timeout=120, what=f"suite {name} deleted")
    for t in doc["spec"]["tenants"]:
        tenant = f"{name}-{t['country'].lower()}"
        wait_for(lambda: not kube.list("v1", "Service", namespace=tenant), timeout=120,
                 what=f"Services of {tenant} deleted")


def gone(kube, api_version, kind, name, ns=None):
    return lambda: kube.get(api_version, kind, name, ns) is None


class Policy:
    """A ValidatingAdmissionPolicy (and its binding) denying ``operations`` on ``resource`` named ``name`` in the
    namespaces labelled for ``suite``: the API server itself refuses the operator's request."""

    def __init__(self, cluster, suite: str, resource: str, name: str, operations: list[str], group: str = ""):
        self.cluster = cluster
        self.name = f"deny-{uuid.uuid4().hex[:6]}"
        check = "oldObject" if operations == ["DELETE"] else "object"
        self.docs = [
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
             "metadata": {"name": self.name},
             "spec": {"failurePolicy": "Fail",
                      "matchConstraints": {"resourceRules": [{"apiGroups": [group], "apiVersions": ["*"],
                                                              "operations": operations, "resources": [resource]}]},
                      "validations": [{"expression": f"{check}.metadata.name != '{name}'", "reason": "Forbidden",
                                       "message": f"test policy {self.name}: {name} is protected"}]}},
            {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
             "metadata": {"name": self.name},
             "spec": {"policyName": self.name, "validationActions": ["Deny"],
                      "matchResources": {"namespaceSelector": {"matchLabels": {"sovereignsuite.io/suite": suite}}}}},
        ]

    def __enter__(self) -> Policy:
        kubectl(self.cluster, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(self.docs))
        time.sleep(2)  # the API server loads policies asynchronously
        return self

    def lift(self) -> None:
        kubectl(self.cluster, "delete", "--ignore-not-found", "validatingadmissionpolicybinding,"
                "validatingadmissionpolicy", self.name)

    def __exit__(self, *exc) -> None:
        self.lift()


# ---- 1. a removed setting converges, also one another writer shares; a hand-added key is left alone ------------

def test_a_removed_setting_goes_within_one_pass_even_when_shared(operator, kube, suite_ns, cluster):
    doc, name, fr = fr_suite(kube, suite_ns, {"components": {"docs": {"extraConfig": {"DJANGO_DEBUG": "True"}}}})
    assert kube.get("v1", "ConfigMap", "docs-config", fr)["data"]["DJANGO_DEBUG"] == "True"
    # another writer applies the same value: the field is shared, and SSA alone would leave it when the operator
    # stops sending it; the operator takes over the fields it renders first
    shared = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-config", "namespace": fr},
              "data": {"DJANGO_DEBUG": "True"}}
    kubectl(cluster, "apply", "--server-side", "--field-manager=another-applier", "-f", "-",
            stdin=yaml.safe_dump(shared))
    # a key added by hand that the operator does not render is left alone (issue 22, item 10)
    kube.merge_patch("v1", "ConfigMap", "docs-config", fr, {"data": {"HAND_MADE": "1"}})

    patch_spec(kube, doc, {"components": {"docs": {"extraConfig": None}}})
    wait_for(lambda: "DJANGO_DEBUG" not in kube.get("v1", "ConfigMap", "docs-config", fr)["data"], timeout=30,
             what="the removed extraConfig key gone from docs-config")
    wait_ready(kube, doc)
    live = kube.get("v1", "ConfigMap", "docs-config", fr)
    assert live["data"]["HAND_MADE"] == "1"
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"]}
    assert "f:HAND_MADE" in json.dumps(managers["sovereign-suite-tests"]["fieldsV1"])
    assert "DJANGO_DEBUG" not in json.dumps(managers.get("another-applier", {}).get("fieldsV1", {}))
    delete_suite(kube, doc)


# ---- 2. the finalizer stays until cleanup succeeded ----------------------------------------------------------

def test_the_finalizer_stays_while_a_child_cannot_be_deleted(operator, kube, suite_ns, cluster):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", **NO_DOCS})
    audit = Audit(cluster)
    with Policy(cluster, name, "services", "synapse", ["DELETE"]) as policy:
        mark = audit.mark()
        delete_suite(kube, doc, wait=False)  # the policy holds it back
        c = wait_condition(kube, doc, "Degraded", "True", "Forbidden")
        assert f"Service/{fr}/synapse" in c["message"] and f"test policy {policy.name}" in c["message"]
        suite = get_suite(kube, doc)
        assert "sovereignsuite.io/cleanup" in suite["metadata"]["finalizers"]
        assert condition(suite, "Ready")["reason"] == "Terminating"
        events = kube.list("v1", "Event", namespace=suite_ns, field_selector=f"involvedObject.name={name}")
        assert any(e["reason"] == "Forbidden" and f"Service/{fr}/synapse" in e["message"] for e in events)
        time.sleep(6)
        attempts = [e for e in audit.events(mark) if e.get("verb") == "delete" and
                    (e.get("objectRef") or {}).get("resource") == "services"
                    and (e.get("objectRef") or {}).get("name") == "synapse"]
        # retried with exponential backoff (1, 2, 4 s ...), not in a tight loop nor never
        assert 2 <= len(attempts) <= 6, len(attempts)
        assert get_suite(kube, doc) is not None
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted once the policy is lifted")
    wait_for(gone(kube, "v1", "Namespace", fr), timeout=120, what="tenant namespace deleted")


# ---- 3. pruning deletes only what the operator created ---------------------------------------------------------

def test_namespaces_the_operator_did_not_create_are_never_deleted(operator, kube, core, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"deletionPolicy": "Delete", **NO_DOCS})
    doc["spec"]["tenants"] = ONE_TENANT
    name = doc["metadata"]["name"]
    labels = {"sovereignsuite.io/suite": name, "sovereignsuite.io/suite-namespace": suite_ns}
    # as the chart's namespace-scoped mode does: the FR namespace made by a platform team, and one for a
    # country this suite does not (yet) have
    for ns in (f"{name}-fr", f"{name}-se"):
        core.create_namespace({"metadata": {"name": ns, "labels": labels}})
    core.create_namespaced_config_map(f"{name}-se", {"metadata": {"name": "kept", "labels": labels}})
    kube.create(doc)
    wait_ready(kube, doc)
    assert kube.get("v1", "Namespace", f"{name}-se") is not None  # labelled, not rendered: not pruned
    assert kube.get("v1", "ConfigMap", "kept", f"{name}-se") is not None
    delete_suite(kube, doc)
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")
    wait_for(lambda: kube.list("apps/v1", "Deployment", namespace=f"{name}-fr") == [], timeout=30,
             what="the suite's workloads deleted")
    fr = kube.get("v1", "Namespace", f"{name}-fr")
    assert fr is not None and not fr["metadata"].get("deletionTimestamp")  # adopted, never the operator's to delete
    for ns in (f"{name}-fr", f"{name}-se"):
        core.delete_namespace(ns)


def test_a_namespace_holding_foreign_objects_is_kept(operator, kube, core, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", **NO_DOCS})
    core.create_namespaced_config_map(fr, {"metadata": {"name": "someone-elses"}, "data": {"a": "b"}})
    delete_suite(kube, doc)
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")
    ns = kube.get("v1", "Namespace", fr)
    assert ns is not None and not ns["metadata"].get("deletionTimestamp")
    assert kube.get("v1", "ConfigMap", "someone-elses", fr) is not None
    events = kube.list("v1", "Event", namespace=suite_ns, field_selector=f"involvedObject.name={name}")
    assert any(e["reason"] == "NamespaceKept" and "ConfigMap/someone-elses" in e["message"] for e in events)
    core.delete_namespace(fr)


def test_two_suites_of_one_name_never_fight_over_a_namespace(operator, kube, core, suite_ns):
    other_ns = f"{suite_ns[:50]}-b"
    core.create_namespace({"metadata": {"name": other_ns}})
    create_referenced_secrets(core, other_ns)
    first = suite_doc("two-countries", suite_ns, patch=NO_DOCS)
    first["spec"]["tenants"] = ONE_TENANT
    second = suite_doc("two-countries", other_ns, name=first["metadata"]["name"], patch=NO_DOCS)
    second["spec"]["tenants"] = ONE_TENANT
    kube.create(first)
    wait_ready(kube, first)
    before = kube.get("v1", "Namespace", f"{first['metadata']['name']}-fr")
    kube.create(second)
    c = wait_condition(kube, second, "Stalled", "True", "NamespaceConflict")
    assert f"{suite_ns}/{first['metadata']['name']}" in c["message"]
    after = kube.get("v1", "Namespace", f"{first['metadata']['name']}-fr")
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    for d in (second, first):  # the second never had a child: its tenant namespace is the first's
        patch_spec(kube, d, {"deletionPolicy": "Delete"})
        delete_suite(kube, d, wait=d is first)
        wait_for(gone(kube, *SUITES, d["metadata"]["name"], d["metadata"]["namespace"]), timeout=60,
                 what="suite deleted")
    core.delete_namespace(other_ns)


# ---- 4. Retain keeps CloudNativePG data -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cnpg_crd(cluster, kube):
    with serving_test_crds(cluster, kube) as crds:
        yield crds


def test_retain_keeps_a_cloudnative_pg_database_and_adopts_it_again(operator, kube, core, suite_ns, cnpg_crd):
    patch = {"deletionPolicy": "Retain", "components": {"docs": {"enabled": False},
                                                       "matrix": {"postgres": {"mode": "cloudnative-pg"}}}}
    doc, name, fr = fr_suite(kube, suite_ns, patch)
    cluster_obj = kube.get("postgresql.cnpg.io/v1", "Cluster", "matrix-postgres", fr)
    assert cluster_obj is not None
    # what CloudNativePG does: the instance's PVC is owned by the Cluster (and goes with it)
    core.create_namespaced_persistent_volume_claim(fr, {
        "metadata": {"name": "matrix-postgres-1", "labels": {"cnpg.io/cluster": "matrix-postgres"},
                     "ownerReferences": [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                                          "name": "matrix-postgres", "uid": cluster_obj["metadata"]["uid"],
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "standard"}})
    delete_suite(kube, doc)
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")
    kept = kube.get("postgresql.cnpg.io/v1", "Cluster", "matrix-postgres", fr)
    assert kept is not None and kept["metadata"]["labels"]["sovereignsuite.io/retained"] == "true"
    assert kept["metadata"]["annotations"]["cnpg.io/hibernation"] == "on"  # CNPG stops its pods, keeps its PVCs
    time.sleep(2)  # the garbage collector would have taken the claim by now if its owner were gone
    assert kube.get("v1", "PersistentVolumeClaim", "matrix-postgres-1", fr) is not None
    assert kube.get("apps/v1", "Deployment", "synapse", fr) is None

    again = suite_doc("two-countries", suite_ns, name=name, patch=patch)
    again["spec"]["tenants"] = ONE_TENANT
    kube.create(again)
    wait_ready(kube, again)
    adopted = kube.get("postgresql.cnpg.io/v1", "Cluster", "matrix-postgres", fr)
    assert adopted["metadata"]["uid"] == cluster_obj["metadata"]["uid"]  # the same database, not a new one
    assert "sovereignsuite.io/retained" not in adopted["metadata"].get("labels", {})
    assert "cnpg.io/hibernation" not in adopted["metadata"].get("annotations", {})
    assert kube.get("v1", "PersistentVolumeClaim", "matrix-postgres-1", fr) is not None
    patch_spec(kube, again, {"deletionPolicy": "Delete"})
    delete_suite(kube, again)
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")


# ---- 5. the migration Job follows the database; a failed one is retried ------------------------------------------

def test_switching_the_database_runs_a_new_migration_job(operator, kube, suite_ns, cnpg_crd):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete"})
    (first,) = [j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace=fr)]
    patch_spec(kube, doc, {"components": {"docs": {"postgres": {"mode": "cloudnative-pg"}}}})
    wait_ready(kube, doc)
    jobs = [j["metadata"]["name"] for j in kube.list("batch/v1", "Job", namespace=fr)]
    assert jobs and first not in jobs, jobs  # a new Job for the new database; the old one pruned
    delete_suite(kube, doc)


def test_a_failed_migration_job_is_reported_and_run_again(operator, kube, suite_ns):
    cloud = f"fr-empty-{suite_ns[-5:]}"  # a cloud whose region has no node: every pod stays Pending
    kube.create({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": cloud},
                 "spec": {"country": "FR", "provider": "test", "regions": ["nowhere-1"], "storageClass": "standard",
                          "suiteNamespaces": ["t-*"]}})
    doc = suite_doc("two-countries", suite_ns, patch={"deletionPolicy": "Delete"})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": cloud}]
    fr = f"{doc['metadata']['name']}-fr"
    try:
        kube.create(doc)
        job = wait_for(lambda: (kube.list("batch/v1", "Job", namespace=fr) or [None])[0], timeout=60,
                       what="the migration Job")
        # the Job's deadline expires: the Job controller marks it Failed (DeadlineExceeded)
        kube.merge_patch("batch/v1", "Job", job["metadata"]["name"], fr, {"spec": {"activeDeadlineSeconds": 1}})
        c = wait_condition(kube, doc, "Degraded", "True", "MigrationFailed", timeout=60)
        assert f"Job/{fr}/{job['metadata']['name']}" in c["message"] and "DeadlineExceeded" in c["message"]
        assert condition(get_suite(kube, doc), "Ready")["status"] == "False"
        rerun = wait_for(lambda: next((j for j in kube.list("batch/v1", "Job", namespace=fr)
                                       if j["metadata"]["uid"] != job["metadata"]["uid"]), None),
                         timeout=60, what="the Job created again after its backoff")
        assert rerun["metadata"]["name"] == job["metadata"]["name"]
    finally:
        delete_suite(kube, doc)
        wait_for(gone(kube, *SUITES, doc["metadata"]["name"], suite_ns), timeout=60, what="suite deleted")
        kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": cloud}})


# ---- 6. APIs installed or removed while the operator runs -----------------------------------------------------

def test_crds_installed_and_deleted_while_the_operator_runs(operator, kube, suite_ns, cluster):
    crds = subprocess.run([str(ROOT / "hack" / "install-prometheus.sh"), "--print-crds"], check=True,
                          capture_output=True, text=True).stdout.strip()
    subprocess.run([str(ROOT / "hack" / "install-prometheus.sh")], check=True)
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", "monitoring": {"serviceMonitors": True},
                                              **NO_DOCS})
    assert kube.list("monitoring.coreos.com/v1", "ServiceMonitor", namespace=fr) == []  # not served yet
    exceptions = operator.metric("sovereign_suite_reconcile_total", result="exception")
    try:
        wait_crds(kube, crds, established=False)
        kubectl(cluster, "apply", "--server-side", "-f", crds)
        wait_crds(kube, crds)
        monitors = wait_for(lambda: kube.list("monitoring.coreos.com/v1", "ServiceMonitor", namespace=fr),
                            timeout=30, what="ServiceMonitors rendered once their CRD is installed")
        assert "synapse" in {m["metadata"]["name"] for m in monitors}
        wait_ready(kube, doc)
    finally:
        kubectl(cluster, "delete", "--ignore-not-found", "-f", crds)
    # the CRDs are gone: passes go on (no exception), the suite stays Ready without monitors
    patch_spec(kube, doc, {"components": {"jitsi": {"webReplicas": 1}}})
    wait_ready(kube, doc)
    assert operator.metric("sovereign_suite_reconcile_total", result="exception") == exceptions
    delete_suite(kube, doc)


# ---- 7. a failure of any stage is a condition; Ready never stays stale -------------------------------------------

def test_a_denied_apply_turns_ready_false_then_recovers(operator, kube, suite_ns, cluster):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete"})
    with Policy(cluster, name, "configmaps", "docs-config", ["UPDATE"]):
        patch_spec(kube, doc, {"components": {"docs": {"extraConfig": {"LOGGING_LEVEL_LOGGERS_APP": "DEBUG"}}}})
        c = wait_condition(kube, doc, "Ready", "False", "Forbidden")
        assert f"ConfigMap/{name}-fr/docs-config" in c["message"] and "is protected" in c["message"]
        assert condition(get_suite(kube, doc), "Degraded")["status"] == "True"
    wait_ready(kube, doc)  # the retry (with backoff) succeeds once the policy is lifted
    assert kube.get("v1", "ConfigMap", "docs-config", f"{name}-fr")["data"]["LOGGING_LEVEL_LOGGERS_APP"] == "DEBUG"
    delete_suite(kube, doc)


# ---- 9. children are watched: drift is repaired in seconds, not at the next drift pass --------------------------

def test_hand_made_drift_is_repaired_by_a_watch_event(operator, kube, core, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", **NO_DOCS})
    core.delete_namespaced_service("synapse", fr)
    kube.merge_patch("apps/v1", "Deployment", "jitsi-web", fr, {"spec": {"replicas": 0}})
    started = time.monotonic()
    wait_for(lambda: kube.get("v1", "Service", "synapse", fr), timeout=15, what="Service re-created")
    wait_for(lambda: kube.get("apps/v1", "Deployment", "jitsi-web", fr)["spec"]["replicas"] == 2, timeout=15,
             what="jitsi-web scaled back")
    print(f"drift repaired in {time.monotonic() - started:.1f} s (drift loop: every 600 s)")
    delete_suite(kube, doc)


# ---- 10. a rotated referenced Secret rolls the pods that read it ------------------------------------------------

def rotation_input(kube, deployment: dict) -> bytes:
    """What the rotation annotation of a Deployment is computed from: the data of the copied Secrets its pods read."""
    ns = deployment["metadata"]["namespace"]
    copies = {s["metadata"]["name"]: s.get("data") or {} for s in kube.list("v1", "Secret", LABEL_COPY, ns)}
    used = sorted(n for n in secret_names_used(deployment["spec"]["template"]["spec"]) if n in copies)
    assert used, f"{deployment['metadata']['name']} reads no copied Secret"
    return json.dumps([[n, copies[n]] for n in used], sort_keys=True).encode()


def assert_keyed(kube, deployment: dict, suite_namespace: str) -> None:
    """The annotation is the HMAC under the key the operator keeps in the suite's namespace, not a hash of the
    data that a reader of the Deployment could test guesses against (issue 22, item 6)."""
    data = rotation_input(kube, deployment)
    got = deployment["spec"]["template"]["metadata"]["annotations"]["sovereignsuite.io/secrets-hash"]
    assert got != hashlib.sha256(data).hexdigest()[:16], "the annotation is a plain hash of the Secrets' data"
    secret = kube.get("v1", "Secret", "sovereign-suite-rotation-key", suite_namespace)
    assert secret and secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sovereign-suite-operator"
    key = base64.b64decode(secret["data"]["key"])
    assert len(key) == 32 and got == hmac.new(key, data, hashlib.sha256).hexdigest()[:16]


def test_a_rotated_referenced_secret_rolls_the_pods_that_use_it(operator, kube, core, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete"})
    before = kube.get("apps/v1", "Deployment", "docs-backend", fr)
    assert_keyed(kube, before, suite_ns)
    synapse_before = kube.get("apps/v1", "Deployment", "synapse", fr)["metadata"]["generation"]
    core.patch_namespaced_secret("oidc-client", suite_ns, {"data": {
        "client-secret": base64.b64encode(b"rotated-value").decode()}})
    wait_for(lambda: kube.get("v1", "Secret", "oidc-client", fr)["data"]["client-secret"] ==
             base64.b64encode(b"rotated-value").decode(), timeout=20, what="the copy updated")
    after = wait_for(lambda: (d := kube.get("apps/v1", "Deployment", "docs-backend", fr))["metadata"]["generation"] >
                     before["metadata"]["generation"] and d, timeout=20, what="docs-backend rolled")
    key = "sovereignsuite.io/secrets-hash"
    assert after["spec"]["template"]["metadata"]["annotations"][key] != \
        before["spec"]["template"]["metadata"]["annotations"][key]
    assert_keyed(kube, after, suite_ns)
    assert kube.get("apps/v1", "Deployment", "synapse", fr)["metadata"]["generation"] == synapse_before
    delete_suite(kube, doc)


# ---- 11. paused means hands off, deletion included -------------------------------------------------------------

def test_deleting_a_paused_suite_leaves_its_children(operator, kube, core, suite_ns):
    doc, name, fr = fr_suite(kube, suite_ns, {"deletionPolicy": "Delete", **NO_DOCS})
    patch_spec(kube, doc, {"paused": True})
    wait_condition(kube, doc, "Reconciling", "False", "Paused")
    delete_suite(kube, doc, wait=False)  # its children stay: that is the point
    wait_for(gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")
    assert kube.get("apps/v1", "Deployment", "synapse", f"{name}-fr") is not None
    core.delete_namespace(f"{name}-fr")
    wait_for(gone(kube, "v1", "Namespace", f"{name}-fr"), timeout=120, what="namespace deleted (its NodePort freed)")


# ---- a referenced Secret is read only with its owner's consent (issue 15) ---------------------------------------

def test_a_referenced_secret_must_be_opted_in_by_its_owner(operator, kube, core, namespace):
    core.create_namespaced_secret(namespace, {"metadata": {"name": "oidc-client"},
                                              "stringData": {"client-secret": "not-shared-yet"}})
    create_referenced_secrets(core, namespace)  # the others, labelled; oidc-client exists already, unlabelled
    doc, name, fr = fr_suite(kube, namespace, {"deletionPolicy": "Delete"}, ready=False)
    c = wait_condition(kube, doc, "Stalled", "True", "SecretNotReferenceable")
    assert "spec.identity.oidc.clientSecretRef.name" in c["message"]
    assert "sovereignsuite.io/referenceable" in c["message"]
    assert kube.get("v1", "Namespace", fr) is None  # nothing applied
    core.patch_namespaced_secret("oidc-client", namespace, {"metadata": {
        "labels": {"sovereignsuite.io/referenceable": "true"}}})
    wait_ready(kube, doc)  # the label's watch event brings the pass, not the 10-minute drift loop
    delete_suite(kube, doc)
