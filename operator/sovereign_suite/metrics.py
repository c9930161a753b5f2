"""Prometheus metrics of the operator (served on ``--metrics-port``, path ``/metrics``).

Label cardinality is bounded: suite namespace and name, country, component, trigger, result and fixed sets
of reasons (anything else is reported as ``Other``). No UID, no free-text message is ever a label. The series
of a deleted suite are removed (``forget_suite``), and those of a component that is no longer rendered at the
next pass. docs/observability.md lists every metric; manifests/monitoring/ holds the alerts and dashboard
built on them. GPU capacity gauges live in their own module.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

NS = "sovereign_suite"
SUITE = ["suite_namespace", "suite"]
COMPONENT = SUITE + ["country", "component"]

BUILD_INFO = Info(f"{NS}_build", "Version of the operator.")
LEADER = Gauge(f"{NS}_leader", "1 while this replica does the work: it holds the leader Lease, or leader election is "
               "off (one replica); 0 on a standby.")
SHARDS_HELD = Gauge(f"{NS}_shards_held", "Sharded (run --shards): the shards whose Lease this replica holds now "
                    "(it writes only their suites).")
SUITE_READY = Gauge(f"{NS}_ready", "1 when the suite's Ready condition is True.", SUITE)
SUITE_PAUSED = Gauge(f"{NS}_paused", "1 when spec.paused is true (the operator writes nothing).", SUITE)
COMPONENT_READY = Gauge(
    f"{NS}_component_ready", "1 when every workload of a tenant's component is ready.", COMPONENT)
COMPONENT_REPLICAS_READY = Gauge(
    f"{NS}_component_replicas_ready", "Ready replicas of a tenant's component (all its workloads).", COMPONENT)
COMPONENT_REPLICAS_DESIRED = Gauge(
    f"{NS}_component_replicas_desired", "Desired replicas of a tenant's component (all its workloads).", COMPONENT)
# Per Synapse worker type of a tenant (status.tenants[].components[matrix].workers): the alert
# SovereignSuiteSynapseWorkersDown fires when a type has replicas desired and none ready. worker_type is one of
# the fixed names of components/matrix/workers.py TYPES (bounded).
WORKER = COMPONENT[:-1] + ["worker_type"]
WORKER_REPLICAS_READY = Gauge(
    f"{NS}_synapse_worker_replicas_ready", "Ready replicas of one Synapse worker type of a tenant.", WORKER)
WORKER_REPLICAS_DESIRED = Gauge(
    f"{NS}_synapse_worker_replicas_desired", "Desired replicas of one Synapse worker type of a tenant.", WORKER)
WORKER_GAUGES = (WORKER_REPLICAS_READY, WORKER_REPLICAS_DESIRED)
# A state set (one series per reason, the current one is 1): alerts select a reason without parsing messages.
COMPONENT_REASONS = ("Ready", "Progressing", "Unschedulable", "JobFailed", "Other")
COMPONENT_REASON = Gauge(
    f"{NS}_component_reason",
    "1 for the reason a tenant's component is in (Ready, Progressing, Unschedulable, JobFailed, Other), 0 for "
    "the others.", COMPONENT + ["reason"],
)
RESULTS = ("success", "error", "exception")
RECONCILE_TOTAL = Counter(
    f"{NS}_reconcile_total", "Reconcile passes, by trigger and result (success, error, exception).",
    ["trigger", "result"])
RECONCILE_DURATION = Histogram(
    f"{NS}_reconcile_duration_seconds", "Duration of one reconcile pass, by trigger and result.",
    ["trigger", "result"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ERRORS_TOTAL = Counter(
    f"{NS}_reconcile_errors_total", "Problems found by reconcile passes, by suite and reason.", SUITE + ["reason"])
CHILD_WRITES_TOTAL = Counter(
    f"{NS}_child_writes_total", "Mutating requests the operator sent for children, by trigger.", ["trigger"])
DRIFT_CORRECTIONS_TOTAL = Counter(
    f"{NS}_drift_corrections_total",
    "Children re-applied, re-created or deleted after every child of the current generation was applied.",
    SUITE)

MEMBER_UP = Gauge(
    f"{NS}_member_cluster_up",
    "1 when the member cluster of a NationalCloud (push mode) answers and accepts the operator's credentials, 0 when "
    "it does not answer or refuses them (ClusterUnreachable, ClusterForbidden).", ["cloud"])

# Per tenant with backups enabled (status.tenants[].backup, reconcile/backup_status.py). The alert
# SovereignSuiteBackupTooOld compares the last success (or, before the first, the time backups were set up) with
# twice the schedule's longest interval.
BACKUP = SUITE + ["country"]
BACKUP_LAST_SUCCESS = Gauge(
    f"{NS}_backup_last_success_timestamp_seconds",
    "Unix time of the tenant's last successful backup; 0 before the first.", BACKUP)
BACKUP_SIZE = Gauge(f"{NS}_backup_last_size_bytes", "Size of the tenant's last successful backup in the bucket.",
                    BACKUP)
BACKUP_INTERVAL = Gauge(
    f"{NS}_backup_interval_seconds", "Longest wait between two scheduled backups of the tenant.", BACKUP)
BACKUP_ENABLED = Gauge(
    f"{NS}_backup_enabled_timestamp_seconds", "Unix time the tenant's backup schedule was set up.", BACKUP)
BACKUP_GAUGES = (BACKUP_LAST_SUCCESS, BACKUP_SIZE, BACKUP_INTERVAL, BACKUP_ENABLED)

# Per FineTune (reconcile/finetune_status.py), from the status the operator writes: where the series come from
# with no scrape configuration beyond the operator's own (docs/llm-finetuning.md, "Metrics and alerts"). The
# trainer's live series (finetune/progress.py, sovereign_finetune_*) are scraped from the training pod by
# manifests/monitoring/podmonitor-finetune.yaml, relabelled to the same finetune_namespace/finetune names so the
# two can be joined. One series per FineTune (its suite and country are immutable), removed when it is deleted.
FINETUNE = ["finetune_namespace", "finetune", "suite_namespace", "suite", "country"]
FINETUNE_PHASES = ("Pending", "Training", "Evaluating", "Ready", "NotPromoted", "Failed")
FINETUNE_PHASE = Gauge(
    f"{NS}_finetune_phase", "1 for the phase a FineTune is in (Pending, Training, Evaluating, Ready, NotPromoted, "
    "Failed), 0 for the others.", FINETUNE + ["phase"])
# the trainer's result as the status carries it (status field -> gauge); absent until the run reported it
FINETUNE_VALUES = {
    field: Gauge(f"{NS}_finetune_{metric}", doc, FINETUNE) for field, metric, doc in (
        ("step", "step", "Optimizer steps the FineTune's last run reported (its trainer's result)."),
        ("totalSteps", "total_steps", "Optimizer steps of the FineTune's last run."),
        ("loss", "loss", "Training loss of the last step of the FineTune's last run."),
        ("baseEvalLoss", "base_eval_loss", "Eval loss of the base model on the held-out split (last run)."),
        ("evalLoss", "eval_loss", "Eval loss of the base model with the trained adapter (last run)."),
        ("tokensPerSecond", "tokens_per_second", "Training tokens per second of the FineTune's last run."),
        ("durationSeconds", "duration_seconds", "Duration of the FineTune's last run (the trainer's process)."),
    )}

KNOWN_REASONS = {
    "ClusterUnreachable", "ClusterForbidden", "MemberCredentials", "TenantMoveRefused", "InvalidSpec", "UnknownCloud", "MissingSecret", "SecretNotReferenceable", "NamespaceConflict", "InvalidChild",
    "Conflict", "Forbidden", "Unauthorized", "ApiError", "MissingAPI", "InsufficientGPU", "InsufficientGPUMemory",
    "MigrationFailed", "WatchFailed", "Exception", "ImmutableStorage",
    "BackupOutsideCountry", "RestoreSourceMissing", "RestoreSecretsRefused", "RestoreFailed", "RestoreOverLiveData",
    # a release rollout (reconcile/rollout.py) and a suite deletion waiting for FineTunes (reconcile/cleanup.py)
    "UpgradeRefused", "PreUpgradeBackupFailed", "ConfigCheckFailed", "ProgressDeadlineExceeded",
    "WaitingForFineTunes",
}

_guard = threading.Lock()
_components: dict[tuple[str, str], set[tuple[str, str]]] = {}  # suite -> (country, component) with series
_errors: dict[tuple[str, str], set[str]] = {}  # suite -> error reasons with series
_backups: dict[tuple[str, str], set[str]] = {}  # suite -> countries with backup series
_workers: dict[tuple[str, str], set[tuple[str, str]]] = {}  # suite -> (country, worker type) with series
_finetunes: dict[tuple[str, str], tuple[str, ...]] = {}  # FineTune -> the label values of its series


def version() -> str:
    try:
        return metadata.version("sovereign-suite-operator")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def error_reason(reason: str) -> str:
    """The bounded label for a problem's reason."""
    return reason if reason in KNOWN_REASONS else "Other"


def component_reason(reason: str) -> str:
    """The bounded label for a component's reason ("" means ready)."""
    if not reason:
        return "Ready"
    return reason if reason in COMPONENT_REASONS else "Other"


def _count_error(namespace: str, name: str, reason: str) -> None:
    ERRORS_TOTAL.labels(namespace, name, reason).inc()
    with _guard:
        _errors.setdefault((namespace, name), set()).add(reason)


def record_pass(namespace: str, name: str, outcome: Any, result: str, trigger: str,
                duration: float | None = None, converged_before: bool = False) -> None:
    """Everything one finished pass tells: counters, the suite's and its components' gauges."""
    RECONCILE_TOTAL.labels(trigger=trigger, result=result).inc()
    if duration is not None:
        RECONCILE_DURATION.labels(trigger=trigger, result=result).observe(duration)
    for reason in dict.fromkeys(p.reason for p in outcome.problems):
        _count_error(namespace, name, error_reason(reason))
    if outcome.writes:
        CHILD_WRITES_TOTAL.labels(trigger=trigger).inc(outcome.writes)
        if converged_before:  # the spec had been handled and nothing changed it: these writes repair drift
            DRIFT_CORRECTIONS_TOTAL.labels(suite_namespace=namespace, suite=name).inc(outcome.writes)
    conds = {c["type"]: c for c in outcome.status.get("conditions", [])}
    ready = conds.get("Ready")
    SUITE_READY.labels(namespace, name).set(1 if ready and ready["status"] == "True" else 0)
    SUITE_PAUSED.labels(namespace, name).set(1 if (conds.get("Reconciling") or {}).get("reason") == "Paused" else 0)
    seen = set()
    workers_seen: set[tuple[str, str]] = set()
    for h in outcome.health:
        country = h.country.upper()  # the ISO code as the spec writes it (the GPU gauges use the same)
        labels = (namespace, name, country, h.name)
        COMPONENT_READY.labels(*labels).set(1 if h.is_ready else 0)
        COMPONENT_REPLICAS_READY.labels(*labels).set(h.ready)
        COMPONENT_REPLICAS_DESIRED.labels(*labels).set(h.desired)
        current = "Ready" if h.is_ready else component_reason(h.reason or "Progressing")
        for reason in COMPONENT_REASONS:
            COMPONENT_REASON.labels(*labels, reason).set(1 if reason == current else 0)
        seen.add((country, h.name))
        for worker_type, (ready, desired) in sorted(h.parts.items()):
            WORKER_REPLICAS_READY.labels(namespace, name, country, worker_type).set(ready)
            WORKER_REPLICAS_DESIRED.labels(namespace, name, country, worker_type).set(desired)
            workers_seen.add((country, worker_type))
    with _guard:
        stale = _components.get((namespace, name), set()) - seen
        _components[(namespace, name)] = seen
        stale_workers = _workers.get((namespace, name), set()) - workers_seen
        _workers[(namespace, name)] = workers_seen
    for country, component in stale:
        _remove_component(namespace, name, country, component)
    for country, worker_type in stale_workers:  # a type scaled to 0, workers turned off, a tenant removed
        for g in WORKER_GAUGES:
            _remove(g, namespace, name, country, worker_type)
    record_backups(namespace, name, outcome.status.get("tenants") or [])


def _unix(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def record_backups(namespace: str, name: str, tenants: list[dict[str, Any]]) -> None:
    """The backup gauges of each tenant whose status has a ``backup`` entry; the others' series go."""
    seen = set()
    for t in tenants:
        b = t.get("backup")
        if not b:
            continue
        labels = (namespace, name, t["country"])
        BACKUP_LAST_SUCCESS.labels(*labels).set(_unix(b.get("lastSuccessTime")))
        BACKUP_INTERVAL.labels(*labels).set(b.get("intervalSeconds") or 0)
        if b.get("enabledSince"):
            BACKUP_ENABLED.labels(*labels).set(_unix(b["enabledSince"]))
        if b.get("sizeBytes") is not None:
            BACKUP_SIZE.labels(*labels).set(b["sizeBytes"])
        seen.add(t["country"])
    with _guard:
        stale = _backups.get((namespace, name), set()) - seen
        _backups[(namespace, name)] = seen
    for country in stale:
        for g in BACKUP_GAUGES:
            _remove(g, namespace, name, country)


def record_member(cloud: str, up: bool | None) -> None:
    """A member cluster's state as a pass found it; None: no cloud names it any more (its series goes)."""
    if up is None:
        _remove(MEMBER_UP, cloud)
    else:
        MEMBER_UP.labels(cloud).set(1 if up else 0)


def record_exception(namespace: str, name: str, trigger: str, duration: float) -> None:
    """A pass that raised (Kopf logs it and retries): counted so that alerts see it."""
    RECONCILE_TOTAL.labels(trigger=trigger, result="exception").inc()
    RECONCILE_DURATION.labels(trigger=trigger, result="exception").observe(duration)
    _count_error(namespace, name, "Exception")


def _remove(metric: Any, *labels: str) -> None:
    try:
        metric.remove(*labels)
    except KeyError:
        pass


def _remove_component(namespace: str, name: str, country: str, component: str) -> None:
    for g in (COMPONENT_READY, COMPONENT_REPLICAS_READY, COMPONENT_REPLICAS_DESIRED):
        _remove(g, namespace, name, country, component)
    for reason in COMPONENT_REASONS:
        _remove(COMPONENT_REASON, namespace, name, country, component, reason)


def forget_suite(namespace: str, name: str) -> None:
    """Remove every series of a deleted suite (a gauge would otherwise report it forever)."""
    with _guard:
        comps = _components.pop((namespace, name), set())
        reasons = _errors.pop((namespace, name), set())
        backups = _backups.pop((namespace, name), set())
        workers = _workers.pop((namespace, name), set())
    for country, worker_type in workers:
        for g in WORKER_GAUGES:
            _remove(g, namespace, name, country, worker_type)
    for country in backups:
        for g in BACKUP_GAUGES:
            _remove(g, namespace, name, country)
    for country, component in comps:
        _remove_component(namespace, name, country, component)
    for reason in reasons:
        _remove(ERRORS_TOTAL, namespace, name, reason)
    for metric in (SUITE_READY, SUITE_PAUSED, DRIFT_CORRECTIONS_TOTAL):
        _remove(metric, namespace, name)


def record_finetune(namespace: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> None:
    """A FineTune's gauges from the status just computed: its phase (state set) and the trainer's result fields
    the status has (the others' series go: a new run forgets the old run's loss)."""
    suite = spec.get("suite") or {}
    labels = (namespace, name, suite.get("namespace") or namespace, str(suite.get("name") or ""),
              str(spec.get("country") or "").upper())
    with _guard:
        old = _finetunes.get((namespace, name))
        _finetunes[(namespace, name)] = labels
    if old is not None and old != labels:  # not expected (immutable fields), but never two series for one
        _remove_finetune(old)
    phase = status.get("phase")
    for p in FINETUNE_PHASES:
        FINETUNE_PHASE.labels(*labels, p).set(1 if p == phase else 0)
    for field, gauge in FINETUNE_VALUES.items():
        value = status.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            gauge.labels(*labels).set(value)
        else:
            _remove(gauge, *labels)


def _remove_finetune(labels: tuple[str, ...]) -> None:
    for p in FINETUNE_PHASES:
        _remove(FINETUNE_PHASE, *labels, p)
    for gauge in FINETUNE_VALUES.values():
        _remove(gauge, *labels)


def forget_finetune(namespace: str, name: str) -> None:
    """Remove every series of a deleted FineTune."""
    with _guard:
        labels = _finetunes.pop((namespace, name), None)
    if labels is not None:
        _remove_finetune(labels)
