"""A change of Synapse's writer set (event persisters, federation senders) stops every Synapse process of the
tenant before any starts with the new set (reconcile/writer_change.py), from the rendered objects of a worker
topology or a monolith and the pods as the watch cache holds them."""

from __future__ import annotations

from sovereign_suite.components.matrix.workers import WORKER_LABEL, WRITERS_LABEL
from sovereign_suite.reconcile.converge import ANN_HASH, content_hash, stamp
from sovereign_suite.reconcile.writer_change import is_synapse, plan, writers_of
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with

WORKERS = {"sync": 2, "eventPersister": 2, "federationSender": 1, "background": 1}


def rendered(persisters: int | None, sync: int = 2, senders: int = 1) -> list[dict]:
    """The two-countries suite, with workers (``persisters`` event persisters) or as monoliths (None)."""
    _, clouds = load_example("two-countries")
    workers = {**WORKERS, "eventPersister": persisters, "sync": sync, "federationSender": senders} \
        if persisters is not None else {}
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": workers}}} if workers else {})
    return [stamp(o, "uid-1") for o in render_suite(suite, clouds).manifests]


def tenants(objs: list[dict]) -> list[str]:
    return sorted({o["metadata"]["namespace"] for o in objs if is_synapse(o)})


def synapse_workloads(objs: list[dict], ns: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if is_synapse(o) and o["metadata"]["namespace"] == ns}


def pods(objs: list[dict], ns: str, writers: str | None = "rendered") -> list[dict]:
    """One running pod per Synapse workload of ``ns`` in ``objs``, with the writer set rendered, another one, or
    none (None: no label, a monolith's or an older operator's pod)."""
    out = []
    for name, obj in synapse_workloads(objs, ns).items():
        labels = dict(obj["spec"]["template"]["metadata"]["labels"])
        labels.pop(WRITERS_LABEL, None)
        value = writers_of(obj) if writers == "rendered" else writers
        if value:
            labels[WRITERS_LABEL] = value
        out.append({"metadata": {"name": f"{name}-0", "namespace": ns, "labels": labels}})
    return out


def pods_of(running: list[dict]):
    def find(ns: str, match: dict[str, str]) -> list[dict]:
        return [p for p in running if p["metadata"]["namespace"] == ns
                and match.items() <= p["metadata"]["labels"].items()]
    return find


def test_the_writer_label_names_the_persisters_and_senders_of_a_worker_topology_only():
    two = rendered(2)
    fr = tenants(two)[0]
    label = {writers_of(o) for o in synapse_workloads(two, fr).values()}
    assert len(label) == 1 and "" not in label  # main and every worker: one set
    assert len(synapse_workloads(two, fr)) == 1 + 4  # main + sync, persister, sender, background
    assert {writers_of(o) for o in synapse_workloads(rendered(3), fr).values()} != label
    assert {writers_of(o) for o in synapse_workloads(rendered(2, sync=3), fr).values()} == label  # sync: same set
    assert {writers_of(o) for o in synapse_workloads(rendered(2, senders=2), fr).values()} != label
    mono = synapse_workloads(rendered(None), fr)
    assert list(mono) == ["synapse"] and writers_of(mono["synapse"]) == ""  # a monolith's template: no label


def test_running_processes_of_the_old_set_stop_every_synapse_workload_of_that_tenant_only():
    before, after = rendered(2), rendered(3)
    fr, other = tenants(after)
    running = pods(before, fr) + pods(after, other)
    out, waiting = plan(after, lambda ns: True, pods_of(running))
    stopped = synapse_workloads(out, fr)
    assert len(stopped) == 5 and all(o["spec"]["replicas"] == 0 for o in stopped.values())
    for name, obj in stopped.items():  # the new objects otherwise, stamped with the hash of what is applied
        assert obj["spec"]["template"] == synapse_workloads(after, fr)[name]["spec"]["template"]
        assert obj["metadata"]["annotations"][ANN_HASH] == content_hash(obj)
    assert synapse_workloads(out, other) == synapse_workloads(after, other)  # its pods already run the new set
    assert [o for o in out if not is_synapse(o)] == [o for o in after if not is_synapse(o)]  # nothing else changes
    assert len(waiting) == 1 and waiting[0].startswith(f"{fr}: ") and "synapse-0" in waiting[0]


def test_a_monolith_becoming_workers_and_workers_becoming_a_monolith_stop_everything_once():
    mono, workers = rendered(None), rendered(2)
    fr = tenants(workers)[0]
    out, waiting = plan(workers, lambda ns: True, pods_of(pods(mono, fr)))  # main without a label
    assert all(o["spec"]["replicas"] == 0 for o in synapse_workloads(out, fr).values()) and waiting
    # back to a monolith: the workers' pods (their StatefulSets no longer rendered) hold main at zero
    worker_pods = [p for p in pods(workers, fr) if WORKER_LABEL in p["metadata"]["labels"]]
    out, waiting = plan(mono, lambda ns: True, pods_of(worker_pods))
    assert synapse_workloads(out, fr)["synapse"]["spec"]["replicas"] == 0
    assert "synapse-event-persister-0" in waiting[0]
    # a worker topology an older operator started (no label on its pods): stopped once, the safe reading
    out, waiting = plan(workers, lambda ns: True, pods_of(pods(workers, fr, None)))
    assert all(o["spec"]["replicas"] == 0 for o in synapse_workloads(out, fr).values()) and waiting


def test_nothing_stops_without_a_process_of_another_set():
    after, mono = rendered(3), rendered(None)
    fr = tenants(after)[0]
    for desired, running in ((after, []), (after, pods(after, fr)), (mono, pods(mono, fr))):
        out, waiting = plan(desired, lambda ns: True, pods_of(running))
        assert out is desired and waiting == []
    out, waiting = plan(after, lambda ns: ns != fr, pods_of(pods(rendered(2), fr)))  # another operator's tenant
    assert out is after and waiting == []
