"""The suite's status: conditions in the Kubernetes shape (what kstatus, Argo CD and kubectl read), and
per-tenant, per-component readiness."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .observe import ComponentHealth


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:4000],
        "observedGeneration": generation,
    }


def merge_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]], stamp: str) -> list[dict[str, Any]]:
    """New conditions, keeping ``lastTransitionTime`` when a condition's status did not change."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        prev = before.get(c["type"])
        keep = prev and prev.get("status") == c["status"] and prev.get("lastTransitionTime")
        out.append({**c, "lastTransitionTime": prev["lastTransitionTime"] if keep else stamp})
    return out


def tenants_status(health: list[ComponentHealth], tenants: list[tuple[str, str]],
                   models: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """``tenants``: (country, namespace) in spec order; ``models``: namespace -> its LLM models' entries."""
    out = []
    for country, ns in tenants:
        comps = [h for h in health if h.namespace == ns]
        out.append({
            "country": country,
            "namespace": ns,
            "ready": all(h.is_ready for h in comps),
            "components": [
                {
                    "name": h.name,
                    "ready": h.is_ready,
                    "readyReplicas": h.ready,
                    "desiredReplicas": h.desired,
                    "reason": h.reason,
                    "message": h.message[:1000],
                }
                for h in sorted(comps, key=lambda h: h.name)
            ],
            **({"models": models[ns]} if (models or {}).get(ns) else {}),
        })
    return out


def same_status(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True when writing ``new`` would change nothing the operator owns (the ``operator`` field is Kopf's)."""
    old = {k: v for k, v in (old or {}).items() if k != "operator"}
    return old == new


def summary(status: dict[str, Any] | None) -> Any:
    """What a reader must see at once: the generation, the conditions (type, status, reason), the countries, and
    where each LLM model runs or that it cannot. Per-tenant and per-component details (ready flags, replica
    counts, messages) follow at the next write, at most STATUS_MIN_INTERVAL later; the metrics follow them live.
    A rollout of a fresh suite thus costs two status writes (Progressing, then Ready)."""
    status = status or {}
    return (
        status.get("observedGeneration"),
        tuple((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []),
        status.get("countries"),
        tuple((t.get("country"),
               tuple((m.get("name"), m.get("product"), m.get("state") == "Unschedulable")
                     for m in t.get("models") or []))
              for t in status.get("tenants") or []),
    )
