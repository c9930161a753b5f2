"""The operator's reads in a member's audit log, told apart by path: API discovery (``GET /api``, ``/api/v1``,
``/apis``, ``/apis/<group>``, ``/apis/<group>/<version>``: no object) vs reads of objects (a get or a list of a
resource: the audit event names it in ``objectRef``).

Why apart: a converged fleet's passes read nothing (they work from the watch caches), while the watches of kinds a
member does not serve (CloudNativePG, the Prometheus Operator on a light member) ask discovery in the background on
a backoff of their own (operator/sovereign_suite/reconcile/unserved.py), whatever the passes do. bench/eu_scale.py
judges the passes by their object reads and reports the discovery requests per member per minute beside them.
"""

from __future__ import annotations

import re
from typing import Any

from lib import audit_time

READ = {"get", "list"}
DISCOVERY_PATH = re.compile(r"^/(api|apis)(/[^/]+){0,2}$")


def path(ev: dict[str, Any]) -> str:
    return ev.get("requestURI", "").split("?")[0]


def is_discovery(ev: dict[str, Any]) -> bool:
    """A discovery GET: no object concerned, and a path of the discovery documents (``/apis/<group>/<version>``)."""
    return ev.get("verb") == "get" and not ev.get("objectRef") and bool(DISCOVERY_PATH.match(path(ev)))


def object_reads(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("verb") in READ and not is_discovery(e)]


def discovery(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if is_discovery(e)]


def discovery_summary(events: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The discovery requests of one member between ``start`` and ``end`` (wall clock): per minute, and the gaps
    between successive requests for each group (what shows the backoff)."""
    found = [(audit_time(e), path(e)) for e in discovery(events) if start <= audit_time(e) <= end]
    gaps: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    for t, p in sorted(found):
        if p in last:
            gaps.setdefault(p, []).append(round(t - last[p], 1))
        last[p] = t
    minutes = max(end - start, 1.0) / 60
    return {"requests": len(found), "per_minute": len(found) / minutes, "window_s": round(end - start, 1),
            "gaps_s": gaps}
