"""The operator on the real local control plane: convergence, updates, drift, deletion, errors, restarts, and
the GitOps promise (no write when nothing changed)."""

from __future__ import annotations

import subprocess
import time

import pytest

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.devcluster.cluster import dev_clouds
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.components.base import LABEL_SUITE, LABEL_SUITE_NS
from sovereign_suite.reconcile.pipeline import CHILD_KINDS, FINALIZER
from sovereign_suite.reconcile.problems import ObjectKey

identity = ObjectKey.of


def selector(name: str, namespace: str) -> str:
    return f"{LABEL_SUITE}={name},{LABEL_SUITE_NS}={namespace}"
from sovereign_suite.render import render_suite

from .conftest import wait_for
from .operator_fixture import (SUITES, Audit, OperatorProcess, condition, create_referenced_secrets, get_suite,
                               suite_doc, wait_ready)


@pytest.fixture(scope="module")
def audit(cluster) -> Audit:
    return Audit(cluster)


@pytest.fixture()
def suite_ns(namespace, core):
    create_referenced_secrets(core, namespace)
    return namespace


def live_children(kube: Kube, doc) -> dict:
    sel = selector(doc["metadata"]["name"], doc["metadata"]["namespace"])
    out = {}
    for api_version, kind in CHILD_KINDS:
        for o in kube.list(api_version, kind, label_selector=sel):
            out[identity(o)] = o
    return out


def rendered(doc) -> list[dict]:
    return render_suite(parse_suite(doc), dev_clouds()).manifests


def settle(operator: OperatorProcess, audit: Audit, passes: int = 2) -> int:
    """Wait until the operator has run ``passes`` more drift passes; return the audit mark from before."""
    before = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
    mark = audit.mark()
    wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + passes,
             timeout=60, what=f"{passes} drift passes")
    return mark


def cleanup_suite(kube: Kube, core, doc):
    try:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    except Exception:  # noqa: BLE001 - best effort
        pass


def test_two_countries_converge_then_resync_and_restart_write_nothing(operator, kube, core, audit, suite_ns,
                                                                     cluster, tmp_path):
    doc = suite_doc("two-countries", suite_ns)
    path = tmp_path / "suite.yaml"
    import yaml

    path.write_text(yaml.safe_dump(doc))
    kubectl = str(cluster_bin(cluster) / "kubectl")
    created = audit.mark()
    subprocess.run([kubectl, "--kubeconfig", str(cluster.kubeconfig), "apply", "--server-side", "-f", str(path)],
                   check=True, capture_output=True)
    suite = wait_ready(kube, doc)

    # every rendered child exists, and every workload is rolled out
    live = live_children(kube, doc)
    want = rendered(doc)
    missing = [identity(o) for o in want if identity(o) not in live]
    assert not missing
    deployments = [o for o in live.values() if o["kind"] == "Deployment"]
    assert deployments and all(
        (d["status"].get("availableReplicas") or 0) == d["spec"]["replicas"] for d in deployments)
    assert [t["country"] for t in suite["status"]["tenants"]] == ["FR", "DE"]
    assert all(t["ready"] for t in suite["status"]["tenants"])
    assert suite["status"]["countries"] == "FR,DE"
    assert FINALIZER in suite["metadata"]["finalizers"]
    # the audit log sees the operator's writes (so the zero counts below can fail): one per child and Secret,
    # plus the finalizer and a few status updates
    writes = audit.writes(created)
    assert len(writes) >= len(want)
    print(f"writes to converge: {len(writes)} for {len(want)} rendered children")
    assert not [k for k in suite["metadata"].get("annotations") or {} if k.startswith("kopf.")]

    # resync: drift passes on a converged suite send no mutating request at all
    mark = settle(operator, audit, passes=2)
    time.sleep(0.5)
    assert audit.writes(mark) == []

    # GitOps: the suite file diffs clean against the cluster
    diff = subprocess.run([kubectl, "--kubeconfig", str(cluster.kubeconfig), "diff", "--server-side", "-f",
                           str(path)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr

    # restart: the new process reconciles every suite once and writes nothing
    operator.stop()
    mark = audit.mark()
    operator.start()
    wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="event") >= 1, timeout=60,
             what="first pass after restart")
    settle(operator, audit, passes=1)
    assert audit.writes(mark) == []
    cleanup_suite(kube, core, doc)


def cluster_bin(cluster):
    from sovereign_suite.devcluster.cluster import bin_dir

    return bin_dir()


def test_update_scale_disable_and_remove_tenant(operator, kube, core, suite_ns):
    doc = suite_doc("two-countries", suite_ns)
    kube.create(doc)
    wait_ready(kube, doc)
    name = doc["metadata"]["name"]
    fr, de = f"{name}-fr", f"{name}-de"
    assert kube.get("apps/v1", "Deployment", "docs-backend", fr) is not None
    pvcs_de = {p["metadata"]["name"] for p in kube.list("v1", "PersistentVolumeClaim", namespace=de)}
    assert pvcs_de

    current = get_suite(kube, doc)
    spec = current["spec"]
    spec["components"]["jitsi"] = {"enabled": True, "webReplicas": 3}
    spec["components"]["docs"]["enabled"] = False
    spec["tenants"] = [t for t in spec["tenants"] if t["country"] == "FR"]
    kube.merge_patch(*SUITES, name, suite_ns, {"spec": spec})
    wait_ready(kube, doc)

    web = kube.get("apps/v1", "Deployment", "jitsi-web", fr)
    assert web["spec"]["replicas"] == 3 and web["status"].get("availableReplicas") == 3
    # docs disabled: its workloads are pruned
    assert kube.get("apps/v1", "Deployment", "docs-backend", fr) is None
    assert kube.get("v1", "ConfigMap", "docs-config", fr) is None
    # DE removed, deletionPolicy Retain: workloads gone, data and namespace kept and labelled
    wait_for(lambda: not kube.list("apps/v1", "Deployment", namespace=de), what="DE workloads pruned")
    ns = kube.get("v1", "Namespace", de)
    assert ns is not None and ns["metadata"]["labels"]["sovereignsuite.io/retained"] == "true"
    kept = {p["metadata"]["name"] for p in kube.list("v1", "PersistentVolumeClaim", namespace=de)}
    assert kept == pvcs_de
    generated = kube.list("v1", "Secret", namespace=de, label_selector="sovereignsuite.io/generated=true")
    assert generated and all(s["metadata"]["labels"]["sovereignsuite.io/retained"] == "true" for s in generated)
    status = get_suite(kube, doc)["status"]
    assert [t["country"] for t in status["tenants"]] == ["FR"]
    assert [c["name"] for c in status["tenants"][0]["components"]] == ["jitsi", "matrix"]
    cleanup_suite(kube, core, doc)


def test_drift_is_repaired(operator, kube, core, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"components": {"docs": {"enabled": False}}})
    kube.create(doc)
    wait_ready(kube, doc)
    fr = f"{doc['metadata']['name']}-fr"
    core.delete_namespaced_service("synapse", fr)
    kube.merge_patch("apps/v1", "Deployment", "jitsi-web", fr, {"spec": {"replicas": 0}})
    wait_for(lambda: kube.get("v1", "Service", "synapse", fr), timeout=30, what="Service synapse re-created")
    wait_for(lambda: kube.get("apps/v1", "Deployment", "jitsi-web", fr)["spec"]["replicas"] == 2, timeout=30,
             what="jitsi-web scaled back to 2")
    # the counter is updated when the repairing pass ends, just after the repair shows
    wait_for(lambda: operator.metric("sovereign_suite_drift_corrections_total", suite=doc["metadata"]["name"]) >= 2,
             timeout=30, what="drift corrections counted")
    cleanup_suite(kube, core, doc)


def _gone(kube: Kube, api_version: str, kind: str, name: str, ns: str | None = None):
    return lambda: kube.get(api_version, kind, name, ns) is None


def test_delete_with_policy_delete_removes_everything(operator, kube, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"deletionPolicy": "Delete"})
    kube.create(doc)
    wait_ready(kube, doc)
    name = doc["metadata"]["name"]
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(_gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted (finalizer removed)")
    for cc in ("fr", "de"):
        wait_for(_gone(kube, "v1", "Namespace", f"{name}-{cc}"), timeout=120, what=f"namespace {name}-{cc} deleted")
    assert live_children(kube, doc) == {}


def test_delete_with_policy_retain_keeps_data(operator, kube, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"deletionPolicy": "Retain"})
    kube.create(doc)
    wait_ready(kube, doc)
    name = doc["metadata"]["name"]
    fr = f"{name}-fr"
    secret_before = kube.get("v1", "Secret", "synapse-keys", fr)["data"]
    pvcs = {p["metadata"]["name"] for p in kube.list("v1", "PersistentVolumeClaim", namespace=fr)}
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(_gone(kube, *SUITES, name, suite_ns), timeout=60, what="suite deleted")
    assert kube.list("apps/v1", "Deployment", namespace=fr) == []
    assert kube.list("v1", "Service", namespace=fr) == []
    assert {p["metadata"]["name"] for p in kube.list("v1", "PersistentVolumeClaim", namespace=fr)} == pvcs
    kept = kube.get("v1", "Secret", "synapse-keys", fr)
    assert kept["data"] == secret_before and kept["metadata"]["labels"]["sovereignsuite.io/retained"] == "true"
    assert kube.get("v1", "Namespace", fr)["metadata"]["labels"]["sovereignsuite.io/retained"] == "true"
    # the same suite created again adopts the retained data: the signing key is not regenerated
    again = suite_doc("two-countries", suite_ns, name=name)
    kube.create(again)
    wait_ready(kube, again)
    assert kube.get("v1", "Secret", "synapse-keys", fr)["data"] == secret_before
    again_body = get_suite(kube, again)
    kube.merge_patch(*SUITES, name, suite_ns, {"spec": {"deletionPolicy": "Delete"}})
    wait_for(lambda: get_suite(kube, again)["metadata"]["generation"] > again_body["metadata"]["generation"])
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": again["metadata"]})


def test_invalid_spec_is_rejected_by_the_api_server(kube, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"domain": "Not A Domain"})
    with pytest.raises(Exception) as err:
        kube.create(doc)
    assert err.value.status == 422
    assert "spec.domain" in err.value.message and "should match" in err.value.message


def test_unknown_cloud_is_stalled_then_recovers(operator, kube, suite_ns):
    cloud = f"fr-late-{suite_ns[-5:]}"
    doc = suite_doc("two-countries", suite_ns, patch={"components": {"docs": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": cloud}]
    kube.create(doc)

    def stalled():
        c = condition(get_suite(kube, doc), "Stalled")
        return c if c and c["status"] == "True" else None

    c = wait_for(stalled, timeout=60, what="Stalled condition")
    assert c["reason"] == "UnknownCloud"
    assert f"spec.tenants[0].cloud: NationalCloud '{cloud}' not found" in c["message"]
    assert kube.get("v1", "Namespace", f"{doc['metadata']['name']}-fr") is None  # nothing half-applied
    ready = condition(get_suite(kube, doc), "Ready")
    assert ready["status"] == "False" and ready["reason"] == "UnknownCloud"

    kube.create({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": cloud},
                 "spec": {"country": "FR", "provider": "test", "regions": ["eu-west-2"], "storageClass": "standard",
                          "suiteNamespaces": ["t-*"]}})
    try:
        wait_ready(kube, doc, timeout=120)
    finally:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(_gone(kube, *SUITES, doc["metadata"]["name"], suite_ns), timeout=60, what="suite deleted")
        kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": cloud}})


def test_killed_mid_reconcile_converges_after_restart(operator, kube, suite_ns):
    doc = suite_doc("two-countries", suite_ns)
    name = doc["metadata"]["name"]
    kube.create(doc)
    # kill the operator as soon as it has started writing the suite's children
    wait_for(lambda: kube.get("v1", "Namespace", f"{name}-fr"), timeout=60, interval=0.05, what="first namespace")
    operator.kill()
    secrets_before = {s["metadata"]["name"]: s["data"] for s in
                      kube.list("v1", "Secret", namespace=f"{name}-fr",
                                label_selector="sovereignsuite.io/generated=true")}
    operator.start()
    wait_ready(kube, doc)
    live = live_children(kube, doc)
    want = {identity(o) for o in rendered(doc)}
    leftovers = [k for k, o in live.items() if k not in want and
                 o["metadata"].get("labels", {}).get("sovereignsuite.io/generated") != "true"
                 and o["metadata"].get("labels", {}).get("sovereignsuite.io/copied-from") is None
                 and k[1] != "PersistentVolumeClaim"]
    assert leftovers == []
    jobs = kube.list("batch/v1", "Job", namespace=f"{name}-fr")
    assert len(jobs) == 1  # one migration Job, not a duplicate
    for sname, data in secrets_before.items():  # generated before the kill: never regenerated
        assert kube.get("v1", "Secret", sname, f"{name}-fr")["data"] == data
    kube.merge_patch(*SUITES, name, suite_ns, {"spec": {"deletionPolicy": "Delete"}})
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
