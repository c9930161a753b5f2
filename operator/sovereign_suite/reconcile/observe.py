"""Readiness of the suite's children, from the live objects: what the status and the metrics report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..components.base import LABEL_COMPONENT
from ..components.matrix.workers import WORKER_LABEL
from .crash_causes import classify

WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass
class ComponentHealth:
    country: str
    namespace: str
    name: str
    desired: int = 0
    ready: int = 0
    reason: str = ""
    message: str = ""
    waiting: list[str] = field(default_factory=list)  # workloads not ready yet
    # Synapse worker type -> [ready, desired] (the workloads labelled sovereignsuite.io/synapse-worker)
    parts: dict[str, list[int]] = field(default_factory=dict)

    @property
    def is_ready(self) -> bool:
        return self.ready >= self.desired and not self.waiting and not self.reason


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def workload_ready(obj: dict[str, Any]) -> tuple[int, int, bool]:
    """(desired, ready, rolled-out) of a Deployment or StatefulSet."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    if obj["kind"] == "Deployment":
        ready = min(ready, int(status.get("availableReplicas") or 0))
    observed = int(status.get("observedGeneration") or 0) >= int(obj["metadata"].get("generation") or 0)
    updated = int(status.get("updatedReplicas") or 0) >= desired
    if obj["kind"] == "StatefulSet" and status.get("updateRevision") and status.get("currentRevision"):
        updated = updated or status["updateRevision"] == status["currentRevision"]
    return desired, ready, observed and updated and ready >= desired


def job_state(obj: dict[str, Any]) -> str:
    """Complete, Failed or Running."""
    for type_ in ("Complete", "Failed"):
        c = _cond(obj, type_)
        if c and c.get("status") == "True":
            return type_
    return "Running"


def pending_reason(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The scheduler's reason for a Pending pod of a workload, if any (e.g. Unschedulable + its message)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if (pod.get("status") or {}).get("phase") != "Pending":
            continue
        c = _cond(pod, "PodScheduled")
        if c and c.get("status") == "False":
            return c.get("reason") or "Pending", c.get("message") or ""
    return None


# A container's waiting reasons that mean it will not get ready by itself (kubelet's and the runtime's names).
STUCK = ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName",
         "CreateContainerConfigError", "CreateContainerError", "RunContainerError")


def container_reason(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """Why a scheduled pod of a workload does not get ready: a container stuck waiting (CrashLoopBackOff, an
    image that cannot be pulled, a missing Secret key...), with its last exit and termination message (the tail
    of its log for containers rendered with terminationMessagePolicy FallbackToLogsOnError). A member cluster's
    pods come without the termination message (cache.strip_pod): reason and exit code only."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = c.get("waiting") or {}
            if waiting.get("reason") not in STUCK:
                continue
            msg = f"pod {pod['metadata']['name']}, container {c.get('name')}: {waiting['reason']}"
            if waiting.get("message"):
                msg += f" ({waiting['message']})"
            last = c.get("lastTerminated")
            if last:
                msg += f"; last exit {last.get('exitCode')} ({last.get('reason')})"
                if last.get("message"):
                    msg += ": " + " ".join(last["message"].split())[-500:]
                cause = classify(last.get("message"))  # a known refusal says what it is, not just that it crashed
                if cause is not None:
                    return cause.reason, f"{cause.message}; {msg}"
            return waiting["reason"], msg
    return None


def component_health(
    country: str, namespace: str, component: str, objs: list[dict[str, Any]], pods_of=None
) -> ComponentHealth:
    """Readiness of one component from its live objects. ``pods_of(workload)`` lists a workload's pods (only
    called for workloads that are not ready, to find why)."""
    h = ComponentHealth(country, namespace, component)
    for obj in sorted(objs, key=lambda o: (o["kind"], o["metadata"]["name"])):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in WORKLOAD_KINDS:
            desired, ready, done = workload_ready(obj)
            h.desired += desired
            h.ready += min(ready, desired)
            part = (obj["metadata"].get("labels") or {}).get(WORKER_LABEL)
            if part:
                counts = h.parts.setdefault(part, [0, 0])
                counts[0] += min(ready, desired)
                counts[1] += desired
            if not done:
                h.waiting.append(name)
                if pods_of is not None and not h.reason:
                    pods = pods_of(obj)
                    why = pending_reason(pods) or container_reason(pods)
                    if why:
                        h.reason, h.message = why[0], f"{name}: {why[1]}"
        elif obj["kind"] == "Job":
            state = job_state(obj)
            if state == "Failed":
                h.reason, h.message = "JobFailed", f"{name} failed"
            elif state == "Running":
                h.waiting.append(name)
    if not h.reason and h.waiting:
        h.reason, h.message = "Progressing", "waiting for " + ", ".join(h.waiting[:5])
    return h


def group_by_component(objs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for o in objs:
        labels = o["metadata"].get("labels") or {}
        comp = labels.get(LABEL_COMPONENT)
        ns = o["metadata"].get("namespace")
        if comp and ns and comp != "tenancy":
            out.setdefault((ns, comp), []).append(o)
    return out
