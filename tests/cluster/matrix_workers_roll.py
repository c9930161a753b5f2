"""A change of a tenant's Synapse writer set carried out in the worker lab (matrix_workers_lab.py) the way the
operator orders it: the lab asks the operator's own planner (reconcile/writer_change.py, a pure function) what
to stop, given the objects the operator applied after the change and the lab's running processes seen as the
kubelet would show their pods (each with the labels of the pod template it was started from); it stops exactly
those workloads' processes, asks the planner again (nothing of the old set may be left to wait for, and the
replicas come back), then starts the new set from the new objects: main and every worker at once, as the
kubelet would once the replicas are applied again (a test may start some worker types late, as a fault).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Callable

from sovereign_suite.reconcile import writer_change

from .matrix_lab import Applied
from .matrix_workers_lab import Workers


def shard(key: str, instances: list[str]) -> str:
    """The instance Synapse picks for a room (``stream_writers.events``) or a destination: sha256 of the key,
    little-endian, modulo the number of instances (synapse/config/_base.py, ShardedWorkerHandlingConfig.
    _get_instance, element-hq/synapse v1.163.2). The test checks it against the database before relying on it."""
    if len(instances) == 1:
        return instances[0]
    return instances[int.from_bytes(sha256(key.encode()).digest(), "little") % len(instances)]


def _labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels") or {})


def _kinded(app: Applied) -> list[dict[str, Any]]:
    """The tenant's workloads as the operator renders them (a list response's items carry no ``kind``)."""
    return ([{**o, "kind": "Deployment"} for o in app.deployments.values()]
            + [{**o, "kind": "StatefulSet"} for o in app.statefulsets.values()])


def running_pods(workers: Workers):
    """``pods_of`` for the planner: the lab's running Synapse processes as pods of the workloads they were
    started from (``workers.app``), main's named like a Deployment's pod."""
    lab, main_proc = workers.lab, f"synapse-{workers.tenant}"

    def alive(name: str) -> bool:
        return name in lab.procs and lab.procs[name].poll() is None

    def pods_of(ns: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        pods = []
        if ns == workers.ns and alive(main_proc):
            pods.append({"metadata": {"name": "synapse-lab", "namespace": ns,
                                      "labels": _labels(workers.app.synapse)}})
        for sts, names in workers.pods.items() if ns == workers.ns else ():
            pods += [{"metadata": {"name": pod, "namespace": ns, "labels": _labels(workers.app.statefulsets[sts])}}
                     for pod in names if alive(pod)]
        return [p for p in pods if all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())]

    return pods_of


@dataclass
class Roll:
    waiting: list[str]  # the planner's message while the old set runs
    stopped: set[tuple[str, str]]  # the workloads the planner applied with zero replicas
    pruned: set[str]  # the worker StatefulSets the new topology has no more
    processes: list[str]  # the lab processes stopped
    restarts: dict[str, int]  # the new processes that exited at start-up and were started again
    stopped_at: dict[str, int]  # the processes' log sizes once the old set stopped (log_offsets)


def roll(workers: Workers, new: Applied, late: frozenset[str] = frozenset(),
         until: Callable[[], bool] = lambda: True) -> Roll:
    """Carry ``workers`` (running ``workers.app``) over to ``new`` as the planner orders; returns what it said.
    ``late``: worker StatefulSets whose pods start only once ``until()`` holds (at most 120 s later)."""
    lab, ns = workers.lab, workers.ns
    desired = _kinded(new)
    pods_of = running_pods(workers)
    out, waiting = writer_change.plan(desired, lambda n: n == ns, pods_of)
    stopped = {(o["kind"], o["metadata"]["name"]) for o in out
               if writer_change.is_synapse(o) and o["spec"].get("replicas") == 0}
    # the processes of those workloads (main: the Deployment's pod) and of the worker types the new topology
    # no longer has (the same pass prunes their StatefulSets), all signalled first so they stop together
    pruned = {sts for sts in workers.pods if sts not in new.statefulsets}
    procs = [f"synapse-{workers.tenant}"] if ("Deployment", "synapse") in stopped else []
    procs += [pod for sts, pods in workers.pods.items() if ("StatefulSet", sts) in stopped or sts in pruned
              for pod in pods]
    procs = [p for p in procs if p in lab.procs]
    for name in procs:
        lab.procs[name].terminate()
    for name in procs:
        lab.stop(name)
    again, still = writer_change.plan(desired, lambda n: n == ns, pods_of)
    assert still == [] and again == desired, f"the planner still waits after the stop: {still}"
    # the new set: names and addresses, then main and every worker pod started together
    workers.app, workers.pods = new, {}
    workers.plan()
    stopped_at = log_offsets(workers)
    lab.start_synapse(workers.tenant, new)
    workers.start_workers(skip=late)
    if late:  # the fault: these pods start late, once ``until`` holds (as a slow node or image pull would)
        deadline = time.monotonic() + 120
        while not until() and time.monotonic() < deadline:
            time.sleep(0.5)
        workers.start_workers(only=late)
    # the lab's router resolves the pods' Service names from its own /etc/hosts, read at start: restarted with
    # the new names (and the new ConfigMap, when it changed, as its config hash would roll it in the cluster)
    lab.stop("synapse-router")
    workers.start_router()
    restarts = wait_started(workers)
    return Roll(waiting, stopped, pruned, procs, restarts, stopped_at)


def wait_started(workers: Workers, timeout: float = 240, limit: int = 5) -> dict[str, int]:
    """Every process of the new set answering /health (the readiness probe's path). One that exits is started
    again with the same command, as the kubelet restarts a failed container (``restartPolicy: Always``), up to
    ``limit`` times: processes starting together race on Synapse's stream positions at start-up (a PostgreSQL
    serialization failure on ``DELETE FROM stream_positions``, synapse/storage/util/id_generators.py
    ``_load_current_ids``, v1.163.2; matrix-org/synapse#10106 reports the same crash-then-start after restarting
    every worker). Returns the restarts per process."""
    lab = workers.lab
    main = f"synapse-{workers.tenant}"
    addresses = {main: lab.ip(workers.tenant, "synapse"),
                 **{pod: workers.addresses[pod] for pods in workers.pods.values() for pod in pods}}
    restarts: dict[str, int] = {}
    waiting = set(addresses)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            proc = lab.procs[name]
            if proc.poll() is not None:
                restarts[name] = restarts.get(name, 0) + 1
                assert restarts[name] <= limit, f"{name} exited {restarts[name]} times:\n{lab.log(name)[-4000:]}"
                with open(lab.root / f"{name}.log", "ab") as log:
                    lab.procs[name] = subprocess.Popen(proc.args, stdout=log, stderr=subprocess.STDOUT, cwd=lab.root)
                continue
            if lab.request("GET", f"http://{addresses[name]}:8008/health", timeout=5)[0] == 200:
                waiting.discard(name)
        time.sleep(1)
    assert not waiting, {name: lab.log(name)[-2000:] for name in waiting}
    return restarts


def log_offsets(workers: Workers) -> dict[str, int]:
    """Each Synapse process log's size now (the lab appends to a process's log across restarts)."""
    names = [f"synapse-{workers.tenant}", *[p for pods in workers.pods.values() for p in pods]]
    logs = {n: workers.lab.root / f"{n}.log" for n in names}
    return {n: path.stat().st_size for n, path in logs.items() if path.exists()}


def log_after(workers: Workers, name: str, offsets: dict[str, int]) -> str:
    """What process ``name`` logged after ``offsets`` were taken (all of it for a process started since)."""
    path = workers.lab.root / f"{name}.log"
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(offsets.get(name, 0))
        return f.read().decode(errors="replace")

