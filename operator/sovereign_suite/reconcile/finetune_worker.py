"""What a worker does with a FineTune key (worker.py hands it here): the finalizer, one pass (finetune_pass.py),
the status (written only when it changed), the retry, and the deletion.

- Sharded, a FineTune is passed by the replica holding its suite's shard, its writes fenced by that shard (a
  FineTune naming no valid suite is fenced by a shard of its own name).
- The finalizer ``sovereignsuite.io/finetune-cleanup`` is added before the first write; on deletion the
  FineTune's Job (foreground: its pods first) and NetworkPolicy are deleted in every cluster the operator writes
  to, and the finalizer is removed once none is left in any of them. A member that does not answer keeps the
  finalizer (retried with backoff) until it answers or stops being a member.
- ``spec.deletionPolicy: Delete``: once the Job and NetworkPolicy are gone and the tenant's serving no longer
  lists the adapter, the FineTune's adapter prefix is deleted in the country's storage (finetune_artifacts.py);
  until that succeeded the finalizer stays, the status says why, and the key is retried with backoff.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import metrics
from ..api.finetune_models import Promotion
from ..components import finetune as renderer
from ..leader.elector import NotLeading
from ..shard.fence import working_on
from .context import OperatorContext
from .finetune_pass import JOB_KIND, POLICY_KIND, reconcile_finetune
from .finetune_serving import promoted
from .finetune_status import finetune_status
from .finetune_store import FineTuneKey, suite_of_body
from . import finetune_artifacts as artifacts
from . import own_writes
from .kube import ApiError
from .own_writes import add_finalizer
from .problems import Problem, SuiteKey, degraded, from_api_error
from .status import now

log = logging.getLogger("sovereign_suite")

GROUP, VERSION = "sovereignsuite.io", "v1alpha1"
FINETUNES = (f"{GROUP}/{VERSION}", "FineTune")
FINALIZER = "sovereignsuite.io/finetune-cleanup"
# problems retried with the key's backoff (the suite worker's, and what waits for something no event brings here)
RETRIED = {"Conflict", "Forbidden", "Unauthorized", "ApiError", "Exception", "InvalidChild", "ClusterUnreachable",
           "ClusterForbidden", "MemberCredentials", "TenantNamespaceMissing"}


def fence_key(key: FineTuneKey, body: dict[str, Any]) -> SuiteKey:
    return suite_of_body(body) or SuiteKey(key.namespace, key.name)


def process(ctx: OperatorContext, key: FineTuneKey) -> None:
    body = ctx.finetunes.current(key)  # with our last status write while the watch has not shown it
    if body is None:
        return
    suite = fence_key(key, body)
    if not ctx.owns(suite):
        return
    with working_on(suite):
        try:
            if body["metadata"].get("deletionTimestamp"):
                _delete(ctx, key, body)
            else:
                _reconcile(ctx, key, body)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a condition, then a retry with backoff
            if ctx.stop.is_set():
                return
            if isinstance(exc, NotLeading) or not ctx.leadership.may_write() or not ctx.owns(suite):
                log.warning("pass of %s cut short: %s", key, exc)
                ctx.queue.add_rate_limited(key)
                return
            log.exception("pass of %s raised", key)
            problem = degraded("Exception", f"{type(exc).__name__}: {exc}")
            # never a stale Ready: the status says the pass failed (Pending, Ready=False)
            write_status(ctx, key, body, finetune_status(
                generation=int(body["metadata"].get("generation") or 1), problems=[problem], job=None, pod=None,
                promotion=Promotion(), adapter_uri="", served=False, old=body.get("status"), stamp=now()))
            delay = ctx.queue.add_rate_limited(key)
            log.info("%s: retrying in %.1f s", key, delay)


def _reconcile(ctx: OperatorContext, key: FineTuneKey, body: dict[str, Any]) -> None:
    if FINALIZER not in (body["metadata"].get("finalizers") or []):
        added = add_finalizer(ctx.kube, FINETUNES, body, FINALIZER)
        if added is None:
            _forget_if_gone(ctx, key, body)
            return
        body = added
        ctx.finetunes.set(key, body)
        serve_again(ctx, key, body)  # a new FineTune: its tenant gets the storage credentials its Job mounts
    result = reconcile_finetune(ctx, body, now())
    write_status(ctx, key, body, result.status)
    if promoted(body) != promoted({**body, "status": result.status}):
        serve_again(ctx, key, body)  # its adapter is to be served, or no longer
    if any(p.reason in RETRIED for p in result.problems):
        delay = ctx.queue.add_rate_limited(key)
        log.info("%s: %s; retrying in %.1f s", key, "; ".join(map(str, result.problems)), delay)
        return
    ctx.queue.forget(key)
    requeue = result.requeue_after
    phase = result.status.get("phase")
    if not _refused(result.problems) and (phase == "Evaluating" or (phase in ("Pending", "Training")
                                                                   and "job" in result.status)):
        # a run in progress (its pod's events enqueue it; this catches what they do not), or an adapter waiting
        # to be served (the tenant's ConfigMap events enqueue the suite, not the FineTune); a FineTune waiting for
        # nothing this operator does (RemoteCloud) is not passed again before the drift interval
        requeue = min(requeue or ctx.settings.requeue_seconds, ctx.settings.requeue_seconds)
    if requeue:
        ctx.enqueue_finetune(key, requeue)


def _forget_if_gone(ctx: OperatorContext, key: FineTuneKey, body: dict[str, Any]) -> None:
    """A FineTune the finalizer could not be added to: changed meanwhile (its event brings it back), or gone. Gone
    before it had the finalizer, it may never have an event of its own (listed at start, deleted before Kopf's
    watch listed): forgotten here, or its suite's deletion would wait for it forever."""
    if ctx.kube.get(*FINETUNES, key.name, key.namespace) is None:
        ctx.finetunes.forget(key)
        serve_again(ctx, key, body)


def serve_again(ctx: OperatorContext, key: FineTuneKey, body: dict[str, Any]) -> None:
    """The suite's pass renders its tenants' adapters from the FineTunes and copies the storage credentials into
    the tenants that have one (finetune_serving.py): enqueued when one appears, becomes promoted, stops being
    promoted, or goes."""
    suite = suite_of_body(body)
    if suite is not None and ctx.suite(suite) is not None:
        ctx.enqueue(suite, "finetune")


def _refused(problems: list[Problem]) -> bool:
    return any(p.severity.value == "Stalled" for p in problems)


def write_status(ctx: OperatorContext, key: FineTuneKey, body: dict[str, Any], status: dict[str, Any]) -> None:
    """Only when it changed; a field the new status no longer has is removed (a new run forgets the previous
    run's loss)."""
    own_writes.write_status(ctx.kube, FINETUNES, body, ctx.finetunes.memory(key), status, drop_missing=True)
    metrics.record_finetune(key.namespace, key.name, body.get("spec") or {}, status)


def cleanup(ctx: OperatorContext, key: FineTuneKey) -> tuple[int, list[Problem]]:
    """Delete the FineTune's Job (with its pods) and NetworkPolicy wherever they are: (objects still there,
    problems). Found by their labels in every cluster's cache, so a FineTune whose suite or cloud is gone is
    cleaned up too."""
    labels = {renderer.LABEL_FINETUNE: key.name, renderer.LABEL_FINETUNE_NS: key.namespace}
    left, problems = 0, []
    for target in ctx.targets():
        problem = target.problem()
        found = [o for kind in (JOB_KIND, POLICY_KIND) for o in target.cache.labelled(*kind, labels)]
        if problem is not None:
            if found or target.cache.unsynced():
                problems.append(degraded(problem.reason, f"{target}: the FineTune's Job cannot be deleted: "
                                         f"{problem.message}"))
            continue
        for obj in found:
            left += 1
            if obj["metadata"].get("deletionTimestamp"):
                continue  # its pods are going (foreground deletion)
            try:
                target.kube.delete(obj, propagation="Foreground")
                log.info("%s: deleted %s/%s in %s", key, obj["kind"], obj["metadata"]["name"], target)
            except ApiError as err:
                problems.append(from_api_error(err, None))
    return left, problems


def _delete(ctx: OperatorContext, key: FineTuneKey, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return
    left, problems = cleanup(ctx, key)
    if problems:
        delay = ctx.queue.add_rate_limited(key)
        log.warning("%s: cleanup incomplete (%s); retrying in %.1f s", key, "; ".join(map(str, problems)), delay)
        return
    if left:  # deleted, or being deleted: their deletion events enqueue the FineTune; this is the safety net
        ctx.enqueue_finetune(key, ctx.settings.requeue_seconds)
        return
    if (body.get("spec") or {}).get("deletionPolicy") == "Delete":
        problem = artifacts.delete_for(ctx, body)  # after the Job (the writer) is gone and the adapter unloaded
        if problem is not None:
            if problem.reason == artifacts.SERVED:
                serve_again(ctx, key, body)  # the suite's pass takes the adapter out of serving
            write_status(ctx, key, body, artifacts.deletion_status(body.get("status"), problem, int(
                meta.get("generation") or 1), now()))
            delay = ctx.queue.add_rate_limited(key)
            log.warning("%s: %s; the finalizer stays, retrying in %.1f s", key, problem, delay)
            return
    try:
        ctx.kube.merge_patch(*FINETUNES, key.name, key.namespace, {"metadata": {
            "finalizers": [f for f in meta.get("finalizers") or [] if f != FINALIZER],
            "resourceVersion": meta["resourceVersion"]}})
    except ApiError as err:
        if err.status == 409:
            ctx.enqueue_finetune(key, 0.5)
            return
        if err.status != 404:
            raise
    log.info("%s deleted: its Job and NetworkPolicy are gone%s", key,
             ", and its artifacts" if (body.get("spec") or {}).get("deletionPolicy") == "Delete" else "")
    ctx.finetunes.forget(key)
    ctx.queue.forget(key)
    serve_again(ctx, key, body)  # its adapter, if served, is unloaded
