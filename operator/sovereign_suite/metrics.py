"""Prometheus metrics of the operator (served on ``--metrics-port``, path ``/metrics``).

Label cardinality is bounded: suite namespace and name, country, component, trigger, result and a fixed set
of reasons. No UID, no free-text message is ever a label. docs/observability.md lists every metric.
"""

from __future__ import annotations

import threading
from importlib import metadata
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

NS = "sovereign_suite"

BUILD_INFO = Info(f"{NS}_build", "Version of the operator.")
SUITE_READY = Gauge(f"{NS}_ready", "1 when the suite's Ready condition is True.", ["suite_namespace", "suite"])
COMPONENT_READY = Gauge(
    f"{NS}_component_ready", "1 when every workload of a tenant's component is ready.",
    ["suite_namespace", "suite", "country", "component"],
)
COMPONENT_REPLICAS_READY = Gauge(
    f"{NS}_component_replicas_ready", "Ready replicas of a tenant's component (all its workloads).",
    ["suite_namespace", "suite", "country", "component"],
)
COMPONENT_REPLICAS_DESIRED = Gauge(
    f"{NS}_component_replicas_desired", "Desired replicas of a tenant's component (all its workloads).",
    ["suite_namespace", "suite", "country", "component"],
)
RECONCILE_TOTAL = Counter(f"{NS}_reconcile_total", "Reconcile passes.", ["trigger", "result"])
RECONCILE_DURATION = Histogram(
    f"{NS}_reconcile_duration_seconds", "Duration of one reconcile pass.", ["trigger"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ERRORS_TOTAL = Counter(f"{NS}_reconcile_errors_total", "Problems found by reconcile passes, by reason.", ["reason"])
CHILD_WRITES_TOTAL = Counter(
    f"{NS}_child_writes_total", "Mutating requests the operator sent for children, by trigger.", ["trigger"])
DRIFT_CORRECTIONS_TOTAL = Counter(
    f"{NS}_drift_corrections_total", "Children re-applied or re-created by the drift timer.",
    ["suite_namespace", "suite"],
)

_known: dict[tuple[str, str], set[tuple[str, str]]] = {}
_guard = threading.Lock()
KNOWN_REASONS = {
    "InvalidSpec", "UnknownCloud", "MissingSecret", "NamespaceConflict", "InvalidChild", "Conflict", "Forbidden",
    "ApiError", "MissingAPI", "InsufficientGPU",
}


def version() -> str:
    try:
        return metadata.version("sovereign-suite-operator")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def record_pass(namespace: str, name: str, outcome: Any, result: str, trigger: str) -> None:
    RECONCILE_TOTAL.labels(trigger=trigger, result=result).inc()
    for reason in outcome.error_reasons:
        reason = reason.split(":", 1)[-1]
        ERRORS_TOTAL.labels(reason=reason if reason in KNOWN_REASONS else "Other").inc()
    if outcome.writes:
        CHILD_WRITES_TOTAL.labels(trigger=trigger).inc(outcome.writes)
        if trigger == "timer":
            DRIFT_CORRECTIONS_TOTAL.labels(suite_namespace=namespace, suite=name).inc(outcome.writes)
    ready = next((c for c in outcome.status.get("conditions", []) if c["type"] == "Ready"), None)
    SUITE_READY.labels(suite_namespace=namespace, suite=name).set(1 if ready and ready["status"] == "True" else 0)
    seen = set()
    for h in outcome.health:
        labels = dict(suite_namespace=namespace, suite=name, country=h.country, component=h.name)
        COMPONENT_READY.labels(**labels).set(1 if h.is_ready else 0)
        COMPONENT_REPLICAS_READY.labels(**labels).set(h.ready)
        COMPONENT_REPLICAS_DESIRED.labels(**labels).set(h.desired)
        seen.add((h.country, h.name))
    with _guard:
        stale = _known.get((namespace, name), set()) - seen
        _known[(namespace, name)] = seen
    for country, component in stale:
        _remove_component(namespace, name, country, component)


def _remove_component(namespace: str, name: str, country: str, component: str) -> None:
    for g in (COMPONENT_READY, COMPONENT_REPLICAS_READY, COMPONENT_REPLICAS_DESIRED):
        try:
            g.remove(namespace, name, country, component)
        except KeyError:
            pass


def forget_suite(namespace: str, name: str) -> None:
    with _guard:
        comps = _known.pop((namespace, name), set())
    for country, component in comps:
        _remove_component(namespace, name, country, component)
    try:
        SUITE_READY.remove(namespace, name)
    except KeyError:
        pass
