"""Typed values the pipeline passes around: an object's key, and a problem found by a stage.

Failures are values: every stage returns the problems it found (never a swallowed exception), and the pure
``conditions()`` function (conditions.py) turns them into the suite's conditions. Metrics read ``reason``
directly; nothing parses a message back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, NamedTuple


class ObjectKey(NamedTuple):
    """Identifies one Kubernetes object: API group ("" for core), kind, namespace ("" if cluster-scoped), name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectKey:
        meta = obj["metadata"]
        api_version = obj["apiVersion"]
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return cls(group, obj["kind"], meta.get("namespace") or "", meta["name"])

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace + '/' if self.namespace else ''}{self.name}"


class SuiteKey(NamedTuple):
    """A SovereignSuite: the unit the work queue handles."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class Severity(enum.Enum):
    """STALLED: nothing progresses until a person changes the spec or the cluster (invalid spec, missing Secret,
    a child the API server rejects). DEGRADED: something needs attention while the rest goes on (a forbidden or
    failed request, unschedulable pods, a failed migration)."""

    STALLED = "Stalled"
    DEGRADED = "Degraded"


@dataclass(frozen=True)
class Problem:
    severity: Severity
    reason: str  # CamelCase, from a bounded set (metrics.KNOWN_REASONS)
    message: str
    object: ObjectKey | None = None

    def __str__(self) -> str:
        return f"{self.object}: {self.message}" if self.object else self.message


def stalled(reason: str, message: str, obj: ObjectKey | None = None) -> Problem:
    return Problem(Severity.STALLED, reason, message, obj)


def degraded(reason: str, message: str, obj: ObjectKey | None = None) -> Problem:
    return Problem(Severity.DEGRADED, reason, message, obj)


UNREACHABLE = "ClusterUnreachable"


def from_api_error(err: Any, obj: ObjectKey | None) -> Problem:
    """A problem from an ApiError (kube.py): 400/422 mean the object itself is wrong (Stalled); no HTTP answer at
    all (status 0: a timeout, a connection refused, a TLS failure) means the cluster does not answer; anything
    else can pass (Degraded, and the key is retried with backoff)."""
    if err.status == 0:
        return degraded(UNREACHABLE, f"does not answer: {err.message}", obj)
    message = f"{err.status} {err.reason}: {err.message}".strip()
    if err.status in (400, 422):
        return stalled("InvalidChild", message, obj)
    if err.status == 404 and "does not serve" in err.message:
        return stalled("MissingAPI", err.message, obj)
    reason = {409: "Conflict", 403: "Forbidden", 401: "Unauthorized"}.get(err.status, "ApiError")
    return degraded(reason, message, obj)
