"""Kopf handlers: thin. Each calls the pipeline (pipeline.py) and writes the status it returns.

Design (docs/architecture.md, "Handlers"):
- Level-triggered: a watch event on a suite, a periodic drift loop and a change of a NationalCloud all run the
  same idempotent pass. The drift loop is a thread of ours, not a Kopf timer: Kopf adds its own finalizer to
  every object a timer or daemon watches. Kopf's create/update/resume handlers are not used: they keep handler progress and a
  copy of the last-handled spec and write them on every change and on every operator restart. The pass itself
  knows what to do from the live cluster, so it needs neither, and a restart or resync writes nothing.
- The operator writes nothing in a suite's spec or metadata except its finalizer (``sovereignsuite.io/cleanup``),
  and its status only when it changed. Kopf's own storages are pointed at ``status.operator`` (never annotations).
- One lock per suite: the timer and the watch never run a pass on the same suite at once. Kopf runs sync
  handlers in a thread pool, so a slow suite never delays another.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
import time
from typing import Any

import kopf
from kubernetes import client as k8s_client, config as k8s_config

from .. import metrics
from .kube import ApiError, Kube
from .pipeline import FINALIZER, Settings, cleanup, forget_clouds, reconcile
from .status import now, same_status, summary

log = logging.getLogger("sovereign_suite")

GROUP, VERSION = "sovereignsuite.io", "v1alpha1"
DRIFT_INTERVAL = float(os.environ.get("SOVEREIGN_SUITE_DRIFT_INTERVAL", "60"))
JOB_WAIT = float(os.environ.get("SOVEREIGN_SUITE_JOB_WAIT", "30"))
REQUEUE = float(os.environ.get("SOVEREIGN_SUITE_REQUEUE", "5"))
# The namespaces served (`run -n NS`, set by runner.py); empty: every namespace. With a list, the operator's
# RBAC may be namespaced, so nothing is listed cluster-wide but clouds, namespaces and GPU nodes and pods.
WATCH_NAMESPACES: list[str] = []


def settings() -> Settings:
    return Settings(job_wait_seconds=JOB_WAIT, requeue_seconds=REQUEUE)

_kube: Kube | None = None
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_seen: dict[str, int] = {}  # uid -> generation of the last pass in this process
_requeued: set[tuple[str, str]] = set()  # (namespace, name) of suites with a pass already scheduled soon
_complete: dict[str, int] = {}  # uid -> generation whose every child this process has applied
_status_written: dict[str, float] = {}  # uid -> when this process last wrote the suite's status
# A status whose summary (conditions, ready flags, reasons) did not change is written at most this often: replica
# counts during a rollout would otherwise cost a write every pass (the metrics carry them live).
STATUS_MIN_INTERVAL = float(os.environ.get("SOVEREIGN_SUITE_STATUS_MIN_INTERVAL", "30"))


def kube() -> Kube:
    global _kube
    if _kube is None:
        try:
            k8s_config.load_incluster_config()
            api = k8s_client.ApiClient()
        except k8s_config.ConfigException:
            api = k8s_config.new_client_from_config()
        _kube = Kube(api)
    return _kube


def set_kube(k: Kube) -> None:
    """For embedding and tests: use this client instead of the default kubeconfig."""
    global _kube
    _kube = k


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = False  # log lines are not Events; the pipeline posts important transitions
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.operator.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.operator.lastHandled")
    settings.persistence.finalizer = "sovereignsuite.io/kopf"  # not ours; unused: no handler here needs one
    settings.execution.max_workers = int(os.environ.get("SOVEREIGN_SUITE_WORKERS", "16"))
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    metrics.BUILD_INFO.info({"version": metrics.version()})


def _lock(uid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _post_event(k: Kube, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    meta = body["metadata"]
    stamp = now()
    try:
        k.create({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SovereignSuite", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": type_, "reason": reason, "message": message,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "source": {"component": "sovereign-suite-operator"},
            "reportingComponent": "sovereignsuite.io/operator", "reportingInstance": os.uname().nodename,
        })
    except ApiError as err:
        log.warning("could not post event %s on %s: %s", reason, meta["name"], err)


def _add_finalizer(k: Kube, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    k.merge_patch(GROUP + "/" + VERSION, "SovereignSuite", meta["name"], meta["namespace"],
                  {"metadata": {"finalizers": finalizers + [FINALIZER], "resourceVersion": meta["resourceVersion"]}})


def _remove_finalizer(k: Kube, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
    k.merge_patch(GROUP + "/" + VERSION, "SovereignSuite", meta["name"], meta["namespace"],
                  {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}})


def run_pass(body: dict[str, Any], trigger: str) -> None:
    """One pass for one suite: cleanup when it is being deleted, reconcile otherwise."""
    k = kube()
    meta = body["metadata"]
    uid, generation = meta["uid"], int(meta.get("generation") or 1)
    with _lock(uid):
        # Kopf hands a snapshot: read the current object so a pass never works on a stale version.
        current = k.get(f"{GROUP}/{VERSION}", "SovereignSuite", meta["name"], meta["namespace"])
        if current is None:
            _seen.pop(uid, None)
            _complete.pop(uid, None)
            return
        body, meta = current, current["metadata"]
        generation = int(meta.get("generation") or 1)
        if meta.get("deletionTimestamp"):
            if FINALIZER in (meta.get("finalizers") or []):
                writes = cleanup(k, body, settings())
                log.info("suite %s/%s deleted: %d children removed or retained", meta["namespace"], meta["name"],
                         writes)
                _remove_finalizer(k, body)
                metrics.forget_suite(meta["namespace"], meta["name"])
            _seen.pop(uid, None)
            _complete.pop(uid, None)
            return
        if trigger == "event" and _seen.get(uid) == generation and \
                (body.get("status") or {}).get("observedGeneration") == generation:
            return  # our own status write, or a metadata change: the drift timer covers the rest
        if FINALIZER not in (meta.get("finalizers") or []):
            _add_finalizer(k, body)
            body = k.get(f"{GROUP}/{VERSION}", "SovereignSuite", meta["name"], meta["namespace"]) or body
        started = time.monotonic()
        try:
            outcome = reconcile(k, body, settings())
        except Exception:
            metrics.record_exception(meta["namespace"], meta["name"], trigger, time.monotonic() - started)
            raise
        _seen[uid] = generation
        result = "error" if outcome.error_reasons else "success"
        # writes after a complete pass of the same generation repair drift (someone changed a child)
        converged_before = _complete.get(uid) == generation
        if outcome.complete:
            _complete[uid] = generation
        metrics.record_pass(meta["namespace"], meta["name"], outcome, result, trigger, time.monotonic() - started,
                            converged_before)
        old_status = body.get("status")
        due = time.monotonic() - _status_written.get(uid, 0.0) > STATUS_MIN_INTERVAL
        if not same_status(old_status, outcome.status) and (due or summary(old_status) != summary(outcome.status)):
            _status_written[uid] = time.monotonic()
            try:
                k.merge_patch(f"{GROUP}/{VERSION}", "SovereignSuite", meta["name"], meta["namespace"],
                              {"status": outcome.status}, sub="status")
            except ApiError as err:
                if err.status not in (404, 409):
                    raise
        for type_, reason, message in outcome.events:
            _post_event(k, body, type_, reason, message)
        if outcome.requeue_after:
            schedule(meta["namespace"], meta["name"], outcome.requeue_after)


def schedule(namespace: str, name: str, delay: float, trigger: str = "requeue") -> None:
    """A pass for the suite in ``delay`` seconds, unless one is already scheduled (debounce)."""
    with _locks_guard:
        if (namespace, name) in _requeued:
            return
        _requeued.add((namespace, name))
    t = threading.Timer(delay, _requeue, args=(namespace, name, trigger))
    t.daemon = True
    t.start()


def _requeue(namespace: str, name: str, trigger: str) -> None:
    with _locks_guard:
        _requeued.discard((namespace, name))
    body = kube().get(f"{GROUP}/{VERSION}", "SovereignSuite", name, namespace)
    if body is not None:
        try:
            run_pass(body, trigger)
        except Exception:  # noqa: BLE001 - a background retry must never kill its thread silently
            log.exception("requeued pass of %s/%s failed", namespace, name)


@kopf.on.event(GROUP, VERSION, "sovereignsuites")
def suite_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    if event.get("type") == "DELETED":
        _seen.pop(body["metadata"]["uid"], None)
        _complete.pop(body["metadata"]["uid"], None)
        metrics.forget_suite(body["metadata"]["namespace"], body["metadata"]["name"])
        return
    run_pass(dict(body), "event")


def _list_suites() -> list[dict[str, Any]]:
    return [s for ns in WATCH_NAMESPACES or [None]
            for s in kube().list(f"{GROUP}/{VERSION}", "SovereignSuite", namespace=ns)]


def _drift_loop(stop: threading.Event) -> None:
    """Every DRIFT_INTERVAL, one pass per suite, spread over the interval (no burst with many suites), on the
    thread pool. Not a Kopf timer: Kopf puts its own finalizer on every object a timer watches."""
    pool = ThreadPoolExecutor(max_workers=int(os.environ.get("SOVEREIGN_SUITE_WORKERS", "16")),
                              thread_name_prefix="drift")
    while not stop.wait(DRIFT_INTERVAL):
        try:
            suites = _list_suites()
        except ApiError as err:
            log.warning("drift: cannot list suites: %s", err)
            continue
        for i, suite in enumerate(suites):
            if stop.wait(DRIFT_INTERVAL / 2 / len(suites) if i else 0):
                break
            pool.submit(_drift_pass, suite)
    pool.shutdown(wait=False, cancel_futures=True)


def _drift_pass(suite: dict[str, Any]) -> None:
    try:
        run_pass(suite, "timer")
    except Exception:  # noqa: BLE001 - one broken suite never stops the loop
        log.exception("drift pass of %s/%s failed", suite["metadata"]["namespace"], suite["metadata"]["name"])


_drift_stop = threading.Event()


@kopf.on.startup()
def start_drift_loop(**_: Any) -> None:
    _drift_stop.clear()
    threading.Thread(target=_drift_loop, args=(_drift_stop,), name="drift", daemon=True).start()


@kopf.on.cleanup()
def stop_drift_loop(**_: Any) -> None:
    _drift_stop.set()


@kopf.on.event(GROUP, VERSION, "nationalclouds")
def cloud_event(event: dict[str, Any], body: kopf.Body, **_: Any) -> None:
    """A cloud changed (or appeared): re-run the suites that use it, e.g. one Stalled on an unknown cloud."""
    forget_clouds()
    if event.get("type") is None:  # the initial listing at start-up: suites get their own events
        return
    name = body["metadata"]["name"]
    for suite in _list_suites():
        clouds = {t.get("cloud") for t in (suite.get("spec") or {}).get("tenants") or []}
        if name in clouds:
            run_pass(suite, "cloud")


@kopf.on.probe(id="suites")
def probe_suites(**_: Any) -> int:
    return len(_seen)
