"""The suite's conditions, as a pure function of what a pass found (tests/test_conditions.py is its table).

| condition   | True when                                                                         |
|-------------|-----------------------------------------------------------------------------------|
| Ready       | every component of every tenant is ready and no problem was found                 |
| Reconciling | the operator is applying, or children are rolling out (False when paused)         |
| Stalled     | a problem that needs a person: invalid spec, missing Secret, child rejected       |
| Degraded    | a problem while the rest goes on: 403/409/5xx, unschedulable, GPUs, failed Job    |

Stalled wins over everything (Ready=False with its reason); a Degraded problem makes Ready False too, so a
suite whose pass failed is never left Ready (kstatus: Stalled -> Failed, Reconciling -> InProgress).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .observe import ComponentHealth
from .problems import Problem, Severity

GPU_REASONS = ("InsufficientGPU", "InsufficientGPUMemory", "GPUQuotaExceeded")


@dataclass(frozen=True)
class Findings:
    """What a pass found, for ``conditions()``."""

    generation: int
    problems: tuple[Problem, ...] = ()
    health: tuple[ComponentHealth, ...] = ()
    waiting: tuple[str, ...] = ()  # children held back (e.g. waiting for a migration Job)
    gpu_problems: tuple[tuple[str, str], ...] = ()  # (reason, message) of models that cannot be placed
    paused: bool = False
    deleting: bool = False
    rendered: bool = True  # False when the spec could not be rendered at all


@dataclass(frozen=True)
class Verdict:
    conditions: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False
    progressing: bool = False  # come back soon: the status follows a rollout
    blocked: bool = False  # needs something else to change first (no point requeueing soon)


def condition(type_: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": type_, "status": "True" if status else "False", "reason": reason,
            "message": message[:4000], "observedGeneration": generation}


def _join(items: list[str], limit: int = 8) -> str:
    more = len(items) - limit
    return "; ".join(items[:limit]) + (f"; and {more} more" if more > 0 else "")


def conditions(f: Findings) -> Verdict:
    gen = f.generation
    stalled = [p for p in f.problems if p.severity is Severity.STALLED]
    degraded = [p for p in f.problems if p.severity is Severity.DEGRADED]
    not_ready = [h for h in f.health if not h.is_ready]
    unschedulable = [h for h in not_ready if h.reason == "Unschedulable"]
    out: list[dict[str, Any]] = []

    if stalled:
        reason, message = stalled[0].reason, _join([str(p) for p in stalled])
        out += [condition("Ready", False, reason, message, gen),
                condition("Reconciling", False, reason, "fix the spec or the cluster", gen),
                condition("Stalled", True, reason, message, gen)]
        ready = progressing = False
    else:
        ready = f.rendered and not not_ready and not degraded and not f.waiting and not f.deleting
        if f.deleting:
            msg = _join([str(p) for p in degraded]) or "deleting the suite's children"
            out.append(condition("Ready", False, "Terminating", msg, gen))
        elif ready:
            out.append(condition("Ready", True, "Ready", f"{len(f.health)} components ready", gen))
        else:
            detail = [f"{h.country}/{h.name}: {h.reason} {h.message}".strip() for h in not_ready]
            detail += [str(p) for p in degraded]
            if f.paused:
                reason = "Paused"
            elif degraded:
                reason = degraded[0].reason
            elif not_ready:
                reason = "ComponentsNotReady"
            else:
                reason = "Progressing"
            out.append(condition("Ready", False, reason, _join(detail + list(f.waiting)), gen))
        progressing = not ready and not f.paused
        if f.paused:
            out.append(condition("Reconciling", False, "Paused", "spec.paused is true: the operator writes nothing",
                                 gen))
        elif ready:
            out.append(condition("Reconciling", False, "Converged", "every child is applied and ready", gen))
        else:
            msg = _join(list(f.waiting)) or ("deleting" if f.deleting else "waiting for components to become ready")
            out.append(condition("Reconciling", True, "Progressing", msg, gen))
        out.append(condition("Stalled", False, "NotStalled", "", gen))

    degraded_msgs = [str(p) for p in degraded] + [m for _, m in f.gpu_problems] + [
        f"{h.country}/{h.name}: {h.message}" for h in unschedulable]
    if degraded_msgs and not stalled:
        reason = degraded[0].reason if degraded else (f.gpu_problems[0][0] if f.gpu_problems else "Unschedulable")
        out.append(condition("Degraded", True, reason, _join(degraded_msgs), gen))
    else:
        out.append(condition("Degraded", False, "NotDegraded", "", gen))
    blocked = bool(stalled or unschedulable or degraded or f.gpu_problems)
    return Verdict(out, ready=ready, progressing=progressing and not blocked, blocked=blocked)


def merge_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]], stamp: str) -> list[dict[str, Any]]:
    """New conditions, keeping ``lastTransitionTime`` when a condition's status did not change."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        prev = before.get(c["type"])
        keep = prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append({**c, "lastTransitionTime": prev["lastTransitionTime"] if keep else stamp})
    return out


def transitions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Events for condition changes: (type Normal|Warning, reason, message). Ready turning True or False, and
    Stalled or Degraded turning True (or changing reason)."""
    before = {c.get("type"): c for c in old or []}
    events = []
    for c in new:
        prev = before.get(c["type"])
        if prev and prev.get("status") == c["status"] and prev.get("reason") == c["reason"]:
            continue
        if c["type"] == "Ready" and (prev or c["status"] == "True"):
            kind = "Normal" if c["status"] == "True" else "Warning"
            events.append((kind, "Ready" if c["status"] == "True" else c["reason"], c["message"][:1000]))
        elif c["type"] in ("Stalled", "Degraded") and c["status"] == "True":
            events.append(("Warning", c["reason"], c["message"][:1000]))
    return events
