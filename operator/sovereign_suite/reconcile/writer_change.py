"""A change of Synapse's writer set stops every Synapse process of the tenant before any starts again.

Adding or removing event persisters or federation senders needs every Synapse process restarted (docs/workers.md
at v1.163.2, "Stream writers": the events stream is sharded by room over ``stream_writers.events``, and
``federation_sender_instances`` shards destinations the same way). Rolled one workload at a time, a process of
the old set and one of the new would run side by side, each sending a room's events (or a destination's
transactions) to a different writer. So, when a tenant's running Synapse pods carry another writer set than the
one rendered (their ``sovereignsuite.io/synapse-writers`` label, components/matrix/workers.py), the pass applies
the new objects with zero replicas to the main Deployment and to every worker StatefulSet; once no pod of the old
set is left (terminating ones included), the next pass applies the replicas again and every process starts with
the new ``homeserver.yaml``. The suite stays Progressing meanwhile, its message naming the step.

A pod without the label (started by an operator older than this rule) is not taken for another set: the label's
first rendering rolls every Synapse process the usual way, once. An autoscaled worker's replicas belong to its
HorizontalPodAutoscaler; zero replicas pause it (Kubernetes' autoscaler leaves a target at zero alone), and the
pass after the stop gives the field back.
"""

from __future__ import annotations

from typing import Any, Callable

from ..components.matrix.workers import WRITERS_LABEL
from .converge import ANN_HASH, ANN_OWNER, stamp

WORKLOADS = ("Deployment", "StatefulSet")


def writers_of(obj: dict[str, Any]) -> str | None:
    """The writer set a Synapse workload's pods are rendered with (None: not a Synapse process)."""
    if obj.get("kind") not in WORKLOADS:
        return None
    template = (obj.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("labels") or {}).get(WRITERS_LABEL)


def old_writers(workloads: list[dict[str, Any]], want: str,
                pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]]) -> list[str]:
    """The pods of these workloads still running with another writer set than ``want``."""
    out = []
    for obj in workloads:
        match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        for pod in pods_of(obj["metadata"]["namespace"], match) if match else []:
            have = (pod["metadata"].get("labels") or {}).get(WRITERS_LABEL)
            if have is not None and have != want:
                out.append(pod["metadata"]["name"])
    return sorted(set(out))


def stopped(obj: dict[str, Any]) -> dict[str, Any]:
    """The stamped workload with zero replicas, stamped again (its hash is that of what is applied)."""
    annotations = {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k != ANN_HASH}
    out = {**obj, "metadata": {**obj["metadata"], "annotations": annotations},
           "spec": {**obj["spec"], "replicas": 0}}
    return stamp(out, annotations.get(ANN_OWNER))


def plan(desired: list[dict[str, Any]], served: Callable[[str], bool],
         pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[str]]:
    """``desired`` with the Synapse workloads of every tenant whose writer set changes stopped, and what the pass
    waits for (one line per such tenant). ``served(ns)``: the tenant is written by this pass."""
    by_ns: dict[str, list[dict[str, Any]]] = {}
    for obj in desired:
        if writers_of(obj) is not None and served(obj["metadata"]["namespace"]):
            by_ns.setdefault(obj["metadata"]["namespace"], []).append(obj)
    stopping: dict[str, list[str]] = {}
    for ns, workloads in by_ns.items():
        want = writers_of(workloads[0])
        old = old_writers(workloads, want or "", pods_of)
        if old:
            stopping[ns] = old
    if not stopping:
        return desired, []
    out = [stopped(o) if writers_of(o) is not None and o["metadata"]["namespace"] in stopping else o for o in desired]
    waiting = [f"{ns}: Synapse's event persisters or federation senders change, so every Synapse process stops "
               f"before any starts with the new writer set; waiting for {len(pods)} process(es) of the old set "
               f"to stop ({', '.join(pods[:5])}{' ...' if len(pods) > 5 else ''})" for ns, pods in sorted(stopping.items())]
    return out, waiting
