"""The suite's status: conditions in the Kubernetes shape (what kstatus, Argo CD and kubectl read), and
per-tenant, per-component readiness."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .observe import ComponentHealth


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
