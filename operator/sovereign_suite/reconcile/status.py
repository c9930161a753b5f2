"""The suite's status: conditions in the Kubernetes shape (what kstatus, Argo CD and kubectl read), and
per-tenant, per-component readiness."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .conditions import merge_conditions
from .observe import ComponentHealth
from .targets import REMOTE


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tenants_status(health: list[ComponentHealth], tenants: list[tuple[str, str]],
                   models: dict[str, list[dict[str, Any]]] | None = None,
                   clusters: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``tenants``: (country, namespace) in spec order; ``models``: namespace -> its LLM models' entries;
    ``clusters``: namespace -> its ``cluster`` and ``clusterReachable`` fields (views.Homes.cluster)."""
    out = []
    for country, ns in tenants:
        comps = [h for h in health if h.namespace == ns]
        where = (clusters or {}).get(ns, {})
        out.append({
            "country": country,
            "namespace": ns,
            **where,
            # a tenant another country's operator serves (pull mode) is not reported ready from here
            "ready": where.get("cluster") != REMOTE and where.get("clusterReachable", True)
            and all(h.is_ready for h in comps),
            "components": [
                {
                    "name": h.name,
                    "ready": h.is_ready,
                    "readyReplicas": h.ready,
                    "desiredReplicas": h.desired,
                    "reason": h.reason,
                    "message": h.message[:1000],
                    **({"workers": [{"type": t, "readyReplicas": r, "desiredReplicas": d}
                                    for t, (r, d) in sorted(h.parts.items())]} if h.parts else {}),
                }
                for h in sorted(comps, key=lambda h: h.name)
            ],
            **({"models": models[ns]} if (models or {}).get(ns) else {}),
        })
    return out


def components_summary(tenants: list[dict[str, Any]]) -> str:
    """Ready/desired replicas per tenant and component, for `kubectl get -o wide`: "FR matrix 7/7 docs 5/5; DE ..."."""
    return "; ".join(
        " ".join([t["country"], *(f"{c['name']} {c['readyReplicas']}/{c['desiredReplicas']}" for c in t["components"])])
        for t in tenants
    )


def same_status(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """True when writing ``new`` would change nothing the operator owns (the ``operator`` field is Kopf's)."""
    old = {k: v for k, v in (old or {}).items() if k != "operator"}
    return old == new


def build_status(old: dict[str, Any], conds: list[dict[str, Any]], generation: int, suite: Any,
                 health: list[ComponentHealth], models: dict[str, list[dict[str, Any]]] | None,
                 clusters: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole status. ``readySummary`` counts the tenants this operator serves (pull mode: the local ones)."""
    status: dict[str, Any] = {"observedGeneration": generation,
                              "conditions": merge_conditions(old.get("conditions") or [], conds, now())}
    if suite is not None:
        tenants = [(t.country, f"{suite.name}-{t.country.lower()}") for t in suite.spec.tenants]
        status["countries"] = ",".join(t.country for t in suite.spec.tenants)
        ts = tenants_status(health, tenants, models or {}, clusters)
        status["tenants"] = ts
        served = [t for t in ts if t.get("cluster") != REMOTE]
        status["readySummary"] = f"{sum(1 for t in served if t['ready'])}/{len(served)}"
        status["componentsSummary"] = components_summary(served)
    else:
        for key in ("countries", "tenants", "readySummary", "componentsSummary"):
            if key in old:
                status[key] = old[key]
    return status
