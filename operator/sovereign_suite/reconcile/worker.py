"""The workers: a fixed pool of threads taking suite keys from the work queue, one pass per key at a time
(a FineTune's key goes to finetune_worker.py).

A pass's outcome decides what comes next: a failed request retries the key with exponential backoff (the
queue's rate limiter), a rollout in progress requeues it after ``requeue_seconds``, a clean pass forgets its
backoff. The worker writes what the pass found: the status (only when it changed), Events on transitions, the
finalizer (added before the first write, removed only when every child is gone or retained). Any exception is
caught here, reported in the status (Ready=False) and retried with backoff: a suite is never left Ready by a
pass that failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from .. import metrics
from ..leader.elector import NotLeading
from ..shard.fence import working_on
from . import finetune_worker, gpu
from .conditions import Findings, conditions
from .context import OperatorContext
from .finetune_store import FineTuneKey
from .kube import ApiError
from .own_writes import add_finalizer, caught_up, with_own_status, write_status
from .cleanup import cleanup
from .pipeline import FINALIZER, PassResult, reconcile
from .problems import ObjectKey, SuiteKey, degraded
from .status import build_status, now

log = logging.getLogger("sovereign_suite")

GROUP, VERSION = "sovereignsuite.io", "v1alpha1"
SUITES = (f"{GROUP}/{VERSION}", "SovereignSuite")
# Retried with the key's backoff (1 s doubling to 5 min). A rejected child (422) is Stalled, yet it is retried too:
# the cause may pass by itself (a NodePort still held by a Service being deleted); at most one try per 5 min.
# A member cluster's problems are retried too; its watches enqueue the suite as soon as it answers again.
RETRIED_REASONS = {"Conflict", "Forbidden", "Unauthorized", "ApiError", "Exception", "WatchFailed", "InvalidChild",
                   "ClusterUnreachable", "ClusterForbidden", "MemberCredentials"}


def start(ctx: OperatorContext) -> list[threading.Thread]:
    threads = [threading.Thread(target=_loop, args=(ctx,), name=f"worker-{i}", daemon=True)
               for i in range(ctx.settings.workers)]
    threads.append(threading.Thread(target=_drift, args=(ctx,), name="drift", daemon=True))
    for t in threads:
        t.start()
    return threads


def _loop(ctx: OperatorContext) -> None:
    while True:
        key = ctx.queue.get()
        if key is None:
            return
        try:
            if isinstance(key, FineTuneKey):
                finetune_worker.process(ctx, key)
            else:
                process(ctx, key)
        except Exception:  # noqa: BLE001 - process() reports its own failures; this is the last guard
            log.exception("pass of %s failed", key)
            ctx.queue.add_rate_limited(key)
        finally:
            ctx.queue.done(key)


def _drift(ctx: OperatorContext) -> None:
    """Every suite and FineTune once per drift interval: a safety net (watches bring changes within seconds)."""
    while not ctx.stop.wait(ctx.settings.drift_interval):
        for key in ctx.suite_keys():
            ctx.enqueue(key, "timer")
        for ft in ctx.finetunes.keys():
            ctx.enqueue_finetune(ft)


def wait_for_own_writes(ctx: OperatorContext, key: SuiteKey, expect: dict[tuple[str, ObjectKey], str],
                        timeout: float = 2.0) -> None:
    """Before a pass, let the watch caches catch up with the previous pass's writes (else the pass would see
    its own children as missing or stale and write them again). ``expect``: (cluster, child) -> resourceVersion."""
    deadline = time.monotonic() + timeout
    while expect and time.monotonic() < deadline:
        children = {t.name: t.cache.children(key) for t in ctx.targets()}
        expect = {(c, k): rv for (c, k), rv in expect.items()
                  if c in children and not caught_up(children[c].get(k), rv)}
        if expect:
            time.sleep(0.05)


def process(ctx: OperatorContext, key: SuiteKey) -> None:
    """One pass of ``key``, skipped when sharded and its shard is not held here (its holder passes it); every
    write of the pass is fenced by that shard (shard/fence.py reads the suite from ``working_on``)."""
    if not ctx.owns(key):
        ctx.memory(key).trigger = ""
        return
    with working_on(key):
        _process(ctx, key)


def _process(ctx: OperatorContext, key: SuiteKey) -> None:
    mem = ctx.memory(key)
    body = with_own_status(ctx.suite(key), mem)
    trigger, mem.trigger = mem.trigger or "requeue", ""
    if body is None:
        return
    wait_for_own_writes(ctx, key, mem.expect)
    started = time.monotonic()
    try:
        if body["metadata"].get("deletionTimestamp"):
            _delete(ctx, key, body, trigger, started)
        else:
            _reconcile(ctx, key, body, trigger, started)
    except Exception as exc:  # noqa: BLE001 - any failure becomes a condition, then a retry with backoff
        if ctx.stop.is_set():  # shutting down: the pass was cut short, not failed; the next process runs it again
            log.info("pass of %s interrupted by shutdown", key)
            return
        if isinstance(exc, NotLeading) or not ctx.leadership.may_write() or not ctx.owns(key):
            # the fence refused a write: leadership (or the suite's shard) ended (then the new holder runs the
            # pass; a requeued pass is skipped here) or a slow renewal is pending (then it runs with its backoff)
            log.warning("pass of %s cut short: %s", key, exc)
            ctx.queue.add_rate_limited(key)
            return
        log.exception("pass of %s raised", key)
        metrics.record_exception(key.namespace, key.name, trigger, time.monotonic() - started)
        problem = degraded("Exception", f"{type(exc).__name__}: {exc}")
        verdict = conditions(Findings(int(body["metadata"].get("generation") or 1), (problem,)))
        old = body.get("status") or {}
        _write_status(ctx, key, body, build_status(old, verdict.conditions, int(body["metadata"].get("generation")
                                                                                 or 1), None, [], None))
        delay = ctx.queue.add_rate_limited(key)
        log.info("%s: retrying in %.1f s", key, delay)


def _reconcile(ctx: OperatorContext, key: SuiteKey, body: dict[str, Any], trigger: str, started: float) -> None:
    if FINALIZER not in (body["metadata"].get("finalizers") or []):
        added = add_finalizer(ctx.kube, SUITES, body, FINALIZER)
        if added is None:
            # changed meanwhile (its event brings it back), or gone before it had the finalizer: listed at start and
            # deleted before Kopf's watch listed, it has no event of its own and would stay known for ever
            if ctx.kube.get(*SUITES, key.name, key.namespace) is None:
                forget_suite(ctx, key)
                ctx.enqueue_finetunes(key)  # they say SuiteNotFound now, as after its DELETED event
            return
        body = added
        ctx.set_suite(key, body)
    mem = ctx.memory(key)
    result = reconcile(ctx, body)
    generation = int(body["metadata"].get("generation") or 1)
    mem.handled_generation = generation
    mem.expect = dict(result.written)
    converged_before = mem.complete_generation == generation
    if result.complete:
        mem.complete_generation = generation
    failed = [p for p in result.problems if p.reason in RETRIED_REASONS]
    metrics.record_pass(key.namespace, key.name, result, "error" if result.problems else "success", trigger,
                        time.monotonic() - started, converged_before)
    _write_status(ctx, key, body, result.status)
    _post_events(ctx, body, result)
    if failed:
        delay = ctx.queue.add_rate_limited(key)
        log.info("%s: %d failed request(s), retrying in %.1f s", key, len(failed), delay)
        ctx.memory(key).trigger = ctx.memory(key).trigger or "retry"
    else:
        ctx.queue.forget(key)
        if result.requeue_after:
            ctx.enqueue(key, "requeue", result.requeue_after)


def _delete(ctx: OperatorContext, key: SuiteKey, body: dict[str, Any], trigger: str, started: float) -> None:
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    result = cleanup(ctx, body)
    metrics.record_pass(key.namespace, key.name, result, "error" if result.problems else "success", "delete",
                        time.monotonic() - started)
    if result.problems:  # the finalizer stays until every child is deleted or retained
        _write_status(ctx, key, body, result.status)
        _post_events(ctx, body, result)
        delay = ctx.queue.add_rate_limited(key)
        log.warning("%s: cleanup incomplete (%s); retrying in %.1f s", key, "; ".join(map(str, result.problems)),
                    delay)
        return
    _post_events(ctx, body, result)
    try:
        ctx.kube.merge_patch(*SUITES, key.name, key.namespace, {"metadata": {
            "finalizers": [f for f in meta.get("finalizers") or [] if f != FINALIZER],
            "resourceVersion": meta["resourceVersion"]}})
    except ApiError as err:
        if err.status == 409:
            ctx.enqueue(key, "retry", 0.5)
            return
        if err.status != 404:
            raise
    log.info("suite %s deleted: %d children removed or retained", key, result.writes)
    forget_suite(ctx, key)


def forget_suite(ctx: OperatorContext, key: SuiteKey) -> None:
    """Everything kept per suite goes with it: its memory, backoff, metric series and GPU series."""
    ctx.forget(key)
    metrics.forget_suite(key.namespace, key.name)
    gpu.forget(key.namespace, key.name)


def _write_status(ctx: OperatorContext, key: SuiteKey, body: dict[str, Any], status: dict[str, Any]) -> None:
    write_status(ctx.kube, SUITES, body, ctx.memory(key), status)


def _post_events(ctx: OperatorContext, body: dict[str, Any], result: PassResult) -> None:
    meta = body["metadata"]
    for type_, reason, message in result.events:
        stamp = now()
        try:
            ctx.kube.create({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": SUITES[0], "kind": SUITES[1], "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]},
                "type": type_, "reason": reason, "message": message[:1000],
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                "source": {"component": "sovereign-suite-operator"},
                "reportingComponent": "sovereignsuite.io/operator", "reportingInstance": os.uname().nodename,
            })
        except ApiError as err:
            log.warning("could not post event %s on %s: %s", reason, meta["name"], err)
