"""Kopf handlers: thin. They keep the suites, clouds and FineTunes as last seen and enqueue keys; workers
(worker.py) run the passes.

- Only ``on.event`` handlers: Kopf's change handlers would store their progress and a copy of the spec on the
  suite and write them on every change and restart; timers and daemons add a Kopf finalizer. The pass derives
  everything from the cluster, so a resync or a restart of a converged suite writes nothing.
- Kopf's storages point at ``status.operator`` (never annotations) and log lines are not posted as Events.
- The operator context (context.py) lives in Kopf's ``memo``: no module state.
- Under leader election every replica runs these handlers (they only read and enqueue); the workers, which do
  every write, run only on the leader (leader/work.py).
"""

from __future__ import annotations

import logging
from typing import Any

from .kopf_import import kopf

from .. import metrics
from ..leader.work import begin
from ..shard.work import begin_sharded
from ..api.validation import InputError, parse_cloud
from .context import OperatorContext
from .pipeline import FINALIZER
from .finetune_store import FineTuneKey, suite_of_body
from .login import login  # noqa: F401 - before the first decorator: Kopf's registry and login (login.py)
from .problems import SuiteKey
from .worker import GROUP, VERSION, forget_suite

log = logging.getLogger("sovereign_suite")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    settings.posting.enabled = False  # log lines are not Events; the worker posts transitions
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.operator.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.operator.lastHandled")
    settings.persistence.finalizer = "sovereignsuite.io/kopf"  # not ours; unused: no handler here needs one
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    metrics.BUILD_INFO.info({"version": metrics.version()})
    for doc in ctx.kube.list(f"{GROUP}/{VERSION}", "NationalCloud"):  # before any pass: no false UnknownCloud
        _set_cloud(ctx, doc)
    _known_before_passes(ctx)
    ctx.cache.start()
    if not ctx.cache.wait_synced(120):
        log.warning("watch cache not synced after 120 s; starting anyway (passes see what is cached)")
    if ctx.shards is not None:
        begin_sharded(ctx)  # the workers now, each pass for a suite of a shard this replica holds (shard/work.py)
    else:
        begin(ctx)  # the workers now, or once this replica holds the leader Lease (leader/work.py)


def _known_before_passes(ctx: OperatorContext) -> None:
    """The suites and FineTunes as they are now, each enqueued, before the workers start. A suite's pass reads the
    FineTunes that name it (the adapters it serves, the countries that train, the wait of its deletion) and a
    FineTune's pass reads its suite; Kopf's watches bring the two kinds in no set order, so without this the
    first passes after a start saw one without the other: a served adapter dropped from vLLM for a pass (its
    Deployment and the adapters ConfigMap written twice), or a FineTune found without its suite. The watches'
    events that follow find them known and unchanged (no second pass)."""
    for doc in _served(ctx, "SovereignSuite"):
        meta = doc["metadata"]
        key = SuiteKey(meta["namespace"], meta["name"])
        ctx.set_suite(key, doc)
        ctx.enqueue(key, "event")
    for doc in _served(ctx, "FineTune"):
        meta = doc["metadata"]
        ft = FineTuneKey(meta["namespace"], meta["name"])
        ctx.finetunes.set(ft, doc)
        ctx.enqueue_finetune(ft)


def _served(ctx: OperatorContext, kind: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` the operator serves: cluster-wide, or (``run -n``) in each of its namespaces only,
    where its RBAC lets it list (a cluster-wide list is refused there: tests/cluster/test_install.py)."""
    if not ctx.settings.namespaces:
        return ctx.kube.list(f"{GROUP}/{VERSION}", kind)
    return [doc for ns in ctx.settings.namespaces for doc in ctx.kube.list(f"{GROUP}/{VERSION}", kind, namespace=ns)]


@kopf.on.cleanup()
def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.ctx.shutdown()


@kopf.on.event(GROUP, VERSION, "sovereignsuites")
def suite_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ctx: OperatorContext = memo.ctx
    meta = body["metadata"]
    key = SuiteKey(meta["namespace"], meta["name"])
    if event.get("type") == "DELETED":
        forget_suite(ctx, key)
        ctx.enqueue_finetunes(key)  # they say SuiteNotFound now
        return
    before = ctx.suite(key)
    ctx.set_suite(key, dict(body))
    generation = int(meta.get("generation") or 1)
    deleting = bool(meta.get("deletionTimestamp"))
    if before is None or generation != ctx.memory(key).handled_generation \
            or deleting != bool(before["metadata"].get("deletionTimestamp")) \
            or FINALIZER not in (meta.get("finalizers") or []):
        ctx.enqueue(key, "event")  # a status write of ours changes none of these: no pass (nor a retry storm)
        ctx.enqueue_finetunes(key)  # what they are checked against changed


def _set_cloud(ctx: OperatorContext, body: dict[str, Any], deleted: bool = False) -> str:
    name = body["metadata"]["name"]
    if deleted:
        ctx.clouds.set(name, None)
        return name
    doc = {k: body.get(k) for k in ("apiVersion", "kind", "spec")}
    doc["metadata"] = {"name": name}
    try:
        ctx.clouds.set(name, parse_cloud(doc))
    except InputError as err:
        ctx.clouds.set(name, None, err.problems)
    return name


@kopf.on.event(GROUP, VERSION, "nationalclouds")
def cloud_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A cloud changed: the suites using it are enqueued (each runs on its own; one failing skips none)."""
    ctx: OperatorContext = memo.ctx
    ctx.cloud_changed(_set_cloud(ctx, dict(body), deleted=event.get("type") == "DELETED"))


@kopf.on.event(GROUP, VERSION, "finetunes")
def finetune_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A FineTune changed: kept as seen and enqueued, unless the change is only our own status write (its
    generation, deletion and finalizers as they were when last passed)."""
    ctx: OperatorContext = memo.ctx
    meta = body["metadata"]
    key = FineTuneKey(meta["namespace"], meta["name"])
    if event.get("type") == "DELETED":
        ctx.finetunes.forget(key)
        ctx.queue.forget(key)
        metrics.forget_finetune(key.namespace, key.name)  # its gauges would otherwise report it forever
        suite = suite_of_body(dict(body))
        if suite is not None and ctx.suite(suite) is not None:
            ctx.enqueue(suite, "finetune")  # its adapter, if served, is unloaded
        return
    before = ctx.finetunes.get(key)
    ctx.finetunes.set(key, dict(body))
    if before is None or _finetune_trigger(before) != _finetune_trigger(dict(body)):
        ctx.enqueue_finetune(key)


def _finetune_trigger(body: dict[str, Any]) -> tuple[Any, ...]:
    meta = body["metadata"]
    return (meta.get("generation"), bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or []))


@kopf.on.probe(id="suites")
def probe_suites(memo: kopf.Memo, **_: Any) -> int:
    return len(memo.ctx.suite_keys())
