"""Per-worker-type readiness of Matrix in the status, and the per-component summary for `kubectl get -o wide`."""

from __future__ import annotations

from sovereign_suite.components.matrix.workers import WORKER_LABEL
from sovereign_suite.reconcile.observe import component_health
from sovereign_suite.reconcile.status import components_summary, tenants_status


def _sts(name, replicas, ready, worker=None, kind="StatefulSet"):
    labels = {WORKER_LABEL: worker} if worker else {}
    return {"kind": kind, "metadata": {"name": name, "namespace": "s-fr", "generation": 1, "labels": labels},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": 1, "readyReplicas": ready, "availableReplicas": ready,
                       "updatedReplicas": replicas}}


def test_worker_types_are_counted_apart_and_summarised():
    objs = [_sts("synapse", 1, 1, kind="Deployment"), _sts("synapse-sync", 2, 1, "sync"),
            _sts("synapse-event-persister", 2, 2, "event-persister"), _sts("synapse-redis", 1, 1, kind="Deployment")]
    h = component_health("FR", "s-fr", "matrix", objs)
    assert (h.ready, h.desired) == (5, 6) and not h.is_ready
    assert h.parts == {"sync": [1, 2], "event-persister": [2, 2]}
    [tenant] = tenants_status([h], [("FR", "s-fr")])
    [matrix] = tenant["components"]
    assert matrix["workers"] == [
        {"type": "event-persister", "readyReplicas": 2, "desiredReplicas": 2},
        {"type": "sync", "readyReplicas": 1, "desiredReplicas": 2},
    ]
    assert components_summary([tenant]) == "FR matrix 5/6"


def test_component_without_workers_has_no_worker_list():
    h = component_health("DE", "s-de", "docs", [_sts("docs-backend", 2, 2, kind="Deployment")])
    [tenant] = tenants_status([h], [("DE", "s-de")])
    assert "workers" not in tenant["components"][0]
    assert components_summary([tenant]) == "DE docs 2/2"
