"""Why a training Job has no pod when the tenant's training quota refuses it (a pure function of the Job and the
quota as the watch cache holds them).

Training pods are counted by the ResourceQuota ``tenant-fine-tuning`` only (scoped to their PriorityClass;
components/tenancy/__init__.py): serving's quota never refuses them, nor they serving's replicas.

A pod the quota admission refuses is never created: the scheduler never sees it, nothing is preempted for it, and
the Job controller only records a ``FailedCreate`` event (not read by the operator: events are not watched, nor
granted in a member cluster). The quota's own status (``hard``, ``used``) says the same, and the operator already
caches the tenant's ResourceQuotas, so the FineTune's status can say why it waits (docs/llm-finetuning.md, "Quota").
"""

from __future__ import annotations

from typing import Any

from ..components.tenancy import FINE_TUNING_QUOTA
from .quantity import parse_quantity


def _pod_amounts(job: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """What one pod of the Job counts against a quota, by the quota's resource names: (amount, as written)."""
    spec = (((job.get("spec") or {}).get("template") or {}).get("spec") or {})
    out: dict[str, tuple[Any, str]] = {"pods": (1, "1")}
    for c in spec.get("containers") or []:
        for kind in ("requests", "limits"):
            for name, value in ((c.get("resources") or {}).get(kind) or {}).items():
                key = f"{kind}.{name}"
                amount = out[key][0] + parse_quantity(value) if key in out else parse_quantity(value)
                out[key] = (amount, str(value) if key not in out else _fmt(amount))
    for name in ("cpu", "memory"):  # a bare "cpu" or "memory" in a quota means its requests
        if f"requests.{name}" in out:
            out[name] = out[f"requests.{name}"]
    return out


def quota_refusal(job: dict[str, Any] | None, quota: dict[str, Any] | None) -> str:
    """"" when the quota has room for one more pod of the Job (or is unknown), else what it lacks."""
    if job is None or quota is None:
        return ""
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    pod = _pod_amounts(job)
    short = []
    for name, limit in sorted(hard.items()):
        if name not in pod:
            continue
        amount, written = pod[name]
        if parse_quantity(used.get(name, "0")) + amount > parse_quantity(limit):
            short.append(f"{name} {used.get(name, '0')} of {limit} used, the pod asks {written}")
    if not short:
        return ""
    name = (quota.get("metadata") or {}).get("name", FINE_TUNING_QUOTA)
    return (f"the tenant's training quota, ResourceQuota {name} (spec.tenants[].quota.fineTuning), has no room "
            f"for the training pod ({'; '.join(short)}): the Job cannot create it until another run ends")


def _fmt(value: Any) -> str:
    return str(int(value)) if value == int(value) else str(value)
