"""A Synapse worker topology on the local control plane (kwok nodes): the operator converges it, reports each
worker type's readiness in the status, and a change of the event persisters rolls every Synapse process, none of
the new writer set starting while one of the old set is still there (reconcile/writer_change.py)."""

from __future__ import annotations

import threading

import pytest
from kubernetes import watch

from sovereign_suite.api.matrix_workers import PRESETS
from sovereign_suite.components.matrix.workers import BY_KEY, WRITERS_LABEL

from .conftest import wait_for
from .operator_fixture import SUITES, create_referenced_secrets, get_suite, suite_doc, wait_ready

WORKERS = {"size": "small", "eventPersister": 2, "autoscaling": {"enabled": True}}


@pytest.fixture()
def suite_ns(namespace, core):
    create_referenced_secrets(core, namespace)
    return namespace


def _matrix(status, country):
    tenant = next(t for t in status["tenants"] if t["country"] == country)
    return next(c for c in tenant["components"] if c["name"] == "matrix")


def _hashes(kube, ns):
    out = {}
    for kind in ("StatefulSet", "Deployment"):
        for o in kube.list("apps/v1", kind, namespace=ns):
            name = o["metadata"]["name"]
            if name.startswith("synapse") and name not in ("synapse-redis", "synapse-router"):
                out[name] = o["spec"]["template"]["metadata"]["annotations"]["sovereignsuite.io/config-hash"]
    return out


class WriterSets:
    """Watches a namespace's pods and records every moment two Synapse writer sets exist at once (terminating
    pods count: their process may still run), and whether the Synapse pods were all gone at some point."""

    def __init__(self, core, namespace: str):
        self.core, self.namespace = core, namespace
        self.pods: dict[str, str] = {}
        self.mixed: list[dict[str, str]] = []
        self.none_left = False
        self.stopped = False
        self.error: Exception | None = None
        self.watch = watch.Watch()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        try:
            self.record()
        except Exception as err:  # noqa: BLE001 - the connection closed by stop(), or a failure the test reports
            self.error = None if self.stopped else err

    def record(self) -> None:
        for event in self.watch.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=600):
            pod = event["object"]
            writers = (pod.metadata.labels or {}).get(WRITERS_LABEL)
            if writers is None:
                continue
            if event["type"] == "DELETED":
                self.pods.pop(pod.metadata.name, None)
            else:
                self.pods[pod.metadata.name] = writers
            if len(set(self.pods.values())) > 1:
                self.mixed.append(dict(self.pods))
            self.none_left |= not self.pods

    def stop(self) -> None:
        self.stopped = True
        self.watch.stop()


def test_worker_topology_converges_reports_per_type_and_rolls_on_persister_change(operator, kube, core, suite_ns):
    doc = suite_doc("two-countries", suite_ns, patch={"components": {
        "docs": {"enabled": False}, "jitsi": {"enabled": False}, "matrix": {"workers": WORKERS}}})
    kube.create(doc)
    try:
        suite = wait_ready(kube, doc, timeout=240)
        fr = f"{doc['metadata']['name']}-fr"
        expected = {**PRESETS["small"], "event_persister": 2}
        matrix = _matrix(suite["status"], "FR")
        per_type = {w["type"]: (w["readyReplicas"], w["desiredReplicas"]) for w in matrix["workers"]}
        assert per_type == {BY_KEY[k].name: (n, n) for k, n in expected.items() if n}
        workers = sum(expected.values())
        # main + router (2) + Redis + the workers, and in the same component Element Web (2) and the embedded
        # database (1)
        assert matrix["readyReplicas"] == matrix["desiredReplicas"] == 1 + 2 + 1 + workers + 2 + 1
        summary = suite["status"]["componentsSummary"]
        assert f"FR matrix {matrix['readyReplicas']}/{matrix['desiredReplicas']}" in summary
        for key, count in expected.items():
            sts = kube.get("apps/v1", "StatefulSet", BY_KEY[key].statefulset, fr)
            if count == 0:  # the small preset has no initial-sync pool
                assert sts is None, key
                continue
            assert sts["status"].get("readyReplicas") == count, key
        hpa = kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "synapse-client-reader", fr)
        assert hpa["spec"]["minReplicas"] == 1 and hpa["spec"]["maxReplicas"] == 3
        assert kube.get("apps/v1", "Deployment", "synapse-redis", fr)["status"].get("readyReplicas") == 1
        before = _hashes(kube, fr)
        assert len(before) == 1 + len([n for n in expected.values() if n])

        # a third persister: homeserver.yaml changes, so every Synapse process rolls (docs/workers.md), all of
        # the old writer set gone before any of the new one starts
        sets = WriterSets(core, fr)
        wait_for(lambda: len(sets.pods) == 1 + sum(expected.values()), what="the pods watched")
        old = set(sets.pods.values())
        assert len(old) == 1
        kube.merge_patch(*SUITES, doc["metadata"]["name"], suite_ns,
                         {"spec": {"components": {"matrix": {"workers": {**WORKERS, "eventPersister": 3}}}}})
        suite = wait_ready(kube, doc, timeout=240)
        wait_for(lambda: sets.pods and set(sets.pods.values()).isdisjoint(old), what="only the new writer set")
        sets.stop()
        assert sets.error is None, sets.error
        assert sets.mixed == [], f"two writer sets at once: {sets.mixed[:3]}"
        assert sets.none_left, "the Synapse pods of the old writer set were never all stopped before the new ones"
        after = _hashes(kube, fr)
        assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)
        per_type = {w["type"]: w for w in _matrix(suite["status"], "FR")["workers"]}
        assert (per_type["event-persister"]["readyReplicas"], per_type["event-persister"]["desiredReplicas"]) == (3, 3)
        wait_for(lambda: kube.get("apps/v1", "StatefulSet", "synapse-event-persister", fr)["status"].get(
            "updatedReplicas") == 3, what="persisters rolled")
    finally:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
