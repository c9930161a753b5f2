"""A change of Synapse's writer set stops every Synapse process of the tenant before any starts again.

Adding or removing event persisters or federation senders needs every Synapse process restarted (docs/workers.md
at v1.163.2, "Stream writers": the events stream is sharded by room over ``stream_writers.events``, and
``federation_sender_instances`` shards destinations the same way). Rolled one workload at a time, a process of
the old set and one of the new would run side by side, each sending a room's events (or a destination's
transactions) to a different writer. Every pod of a worker topology carries its writer set (the label
``sovereignsuite.io/synapse-writers``, components/matrix/workers.py); a monolith's pods carry none, and neither
do those an operator older than this rule started. When any Synapse process of a tenant runs (terminating ones
included) with another set than the one rendered, "none" counting as a set of its own, the pass applies the new
objects with zero replicas to the main Deployment and every worker StatefulSet (the workers of a topology being
removed are pruned by the same pass); once no process of another set is left, the next pass applies the replicas
again and every process starts with the new ``homeserver.yaml``. The suite stays Progressing meanwhile, its
message naming the step.

So going from a monolith to workers, from workers to a monolith, or changing the persisters or senders stops
everything once; so does the first pass of this operator over a worker topology started by an older one (its
pods have no label: the safe reading). An autoscaled worker's replicas belong to its HorizontalPodAutoscaler;
zero replicas pause it (Kubernetes' autoscaler leaves a target at zero alone), and the pass after the stop gives
the field back.
"""

from __future__ import annotations

from typing import Any, Callable

from ..components.matrix.workers import WORKER_LABEL, WRITERS_LABEL
from .converge import ANN_HASH, ANN_OWNER, stamp

MAIN = ("Deployment", "synapse")  # the main process (components/matrix/templates/synapse.yaml.j2)
PodsOf = Callable[[str, dict[str, str]], list[dict[str, Any]]]


def _template_labels(obj: dict[str, Any]) -> dict[str, str]:
    template = (obj.get("spec") or {}).get("template") or {}
    return (template.get("metadata") or {}).get("labels") or {}


def is_synapse(obj: dict[str, Any]) -> bool:
    """A Synapse process's workload: the main Deployment, or a worker StatefulSet."""
    if (obj.get("kind"), obj["metadata"].get("name")) == MAIN:
        return True
    return obj.get("kind") == "StatefulSet" and WORKER_LABEL in _template_labels(obj)


def writers_of(obj: dict[str, Any]) -> str:
    """The writer set a Synapse workload's pods are rendered with ("": a monolith)."""
    return _template_labels(obj).get(WRITERS_LABEL, "")


def synapse_pods(ns: str, main: dict[str, Any], pods_of: PodsOf) -> list[dict[str, Any]]:
    """The tenant's Synapse processes: main's pods and every worker pod, of this topology or an earlier one."""
    selector = ((main.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    mains = pods_of(ns, selector) if selector else []
    workers = [p for p in pods_of(ns, {}) if WORKER_LABEL in (p["metadata"].get("labels") or {})]
    return list({p["metadata"]["name"]: p for p in mains + workers}.values())


def stopped(obj: dict[str, Any]) -> dict[str, Any]:
    """The stamped workload with zero replicas, stamped again (its hash is that of what is applied)."""
    annotations = {k: v for k, v in (obj["metadata"].get("annotations") or {}).items() if k != ANN_HASH}
    out = {**obj, "metadata": {**obj["metadata"], "annotations": annotations},
           "spec": {**obj["spec"], "replicas": 0}}
    return stamp(out, annotations.get(ANN_OWNER))


def plan(desired: list[dict[str, Any]], served: Callable[[str], bool], pods_of: PodsOf
         ) -> tuple[list[dict[str, Any]], list[str]]:
    """``desired`` with the Synapse workloads of every tenant whose writer set changes stopped, and what the pass
    waits for (one line per such tenant). ``served(ns)``: the tenant is written by this pass."""
    stopping: dict[str, list[str]] = {}
    for main in desired:
        ns = main["metadata"].get("namespace") or ""
        if (main.get("kind"), main["metadata"].get("name")) != MAIN or not served(ns):
            continue
        want = writers_of(main)
        old = sorted(p["metadata"]["name"] for p in synapse_pods(ns, main, pods_of)
                     if (p["metadata"].get("labels") or {}).get(WRITERS_LABEL, "") != want)
        if old:
            stopping[ns] = old
    if not stopping:
        return desired, []
    out = [stopped(o) if o["metadata"].get("namespace") in stopping and is_synapse(o) else o for o in desired]
    waiting = [f"{ns}: Synapse's event persisters or federation senders change, so every Synapse process stops "
               f"before any starts with the new writer set; waiting for {len(pods)} process(es) of the old set "
               f"to stop ({', '.join(pods[:5])}{' ...' if len(pods) > 5 else ''})"
               for ns, pods in sorted(stopping.items())]
    return out, waiting
