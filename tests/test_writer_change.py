"""A change of Synapse's writer set (event persisters, federation senders) stops every Synapse process of the
tenant before any starts with the new set (reconcile/writer_change.py), from the rendered objects of a worker
topology and the pods as the watch cache holds them."""

from __future__ import annotations

from sovereign_suite.components.matrix.workers import WRITERS_LABEL
from sovereign_suite.reconcile.converge import ANN_HASH, content_hash, stamp
from sovereign_suite.reconcile.writer_change import plan, writers_of
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with

WORKERS = {"sync": 2, "eventPersister": 2, "federationSender": 1, "background": 1}


def rendered(persisters: int, sync: int = 2, senders: int = 1) -> list[dict]:
    _, clouds = load_example("two-countries")
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": {
        **WORKERS, "eventPersister": persisters, "sync": sync, "federationSender": senders}}}})
    return [stamp(o, "uid-1") for o in render_suite(suite, clouds).manifests]


def synapse_workloads(objs: list[dict], ns: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if writers_of(o) is not None and o["metadata"]["namespace"] == ns}


def pods(objs: list[dict], ns: str, writers: str | None) -> list[dict]:
    """One running pod per Synapse workload of ``ns``, carrying ``writers`` (None: no label, an older operator)."""
    out = []
    for name, obj in synapse_workloads(objs, ns).items():
        labels = dict(obj["spec"]["selector"]["matchLabels"])
        if writers is not None:
            labels[WRITERS_LABEL] = writers
        out.append({"metadata": {"name": f"{name}-0", "namespace": ns, "labels": labels}})
    return out


def pods_of(running: list[dict]):
    def find(ns: str, match: dict[str, str]) -> list[dict]:
        return [p for p in running if p["metadata"]["namespace"] == ns and match.items() <= p["metadata"]["labels"].items()]
    return find


def test_the_writer_label_names_the_persisters_and_senders_only():
    two, three = rendered(2), rendered(3)
    fr = sorted({o["metadata"]["namespace"] for o in two if writers_of(o) is not None})[0]
    label = {writers_of(o) for o in synapse_workloads(two, fr).values()}
    assert len(label) == 1 and None not in label  # main and every worker: one set
    assert len(synapse_workloads(two, fr)) == 1 + 4  # main + sync, persister, sender, background
    assert {writers_of(o) for o in synapse_workloads(three, fr).values()} != label
    assert {writers_of(o) for o in synapse_workloads(rendered(2, sync=3), fr).values()} == label  # sync: same set
    assert {writers_of(o) for o in synapse_workloads(rendered(2, senders=2), fr).values()} != label


def test_running_processes_of_the_old_set_stop_every_synapse_workload_of_that_tenant_only():
    before, after = rendered(2), rendered(3)
    namespaces = sorted({o["metadata"]["namespace"] for o in after if writers_of(o) is not None})
    fr, other = namespaces[0], namespaces[1]
    old = writers_of(next(iter(synapse_workloads(before, fr).values())))
    running = pods(before, fr, old) + pods(after, other, writers_of(next(iter(synapse_workloads(after, other).values()))))
    out, waiting = plan(after, lambda ns: True, pods_of(running))
    stopped = synapse_workloads(out, fr)
    assert stopped and all(o["spec"]["replicas"] == 0 for o in stopped.values())
    for name, obj in stopped.items():  # the new objects otherwise, stamped with the hash of what is applied
        assert obj["spec"]["template"] == synapse_workloads(after, fr)[name]["spec"]["template"]
        assert obj["metadata"]["annotations"][ANN_HASH] == content_hash(obj)
    assert synapse_workloads(out, other) == synapse_workloads(after, other)  # its pods already run the new set
    rest = [o for o in out if writers_of(o) is None]
    assert rest == [o for o in after if writers_of(o) is None]  # nothing else changes
    assert len(waiting) == 1 and waiting[0].startswith(f"{fr}: ") and "synapse-0" in waiting[0]


def test_nothing_stops_without_an_old_process():
    after = rendered(3)
    fr = sorted({o["metadata"]["namespace"] for o in after if writers_of(o) is not None})[0]
    new = writers_of(next(iter(synapse_workloads(after, fr).values())))
    for running in ([], pods(after, fr, new), pods(after, fr, None)):  # none, the new set, an older operator's
        out, waiting = plan(after, lambda ns: True, pods_of(running))
        assert out is after and waiting == []
    old = pods(rendered(2), fr, "0123456789abcdef")
    out, waiting = plan(after, lambda ns: ns != fr, pods_of(old))  # another operator's tenant (pull mode)
    assert out is after and waiting == []
