"""The pass's side of the egress checks (api/egress_checks.py): the networks read from the tenants' clusters, and
the suite's warnings in its status and Events."""

from __future__ import annotations

from typing import Any

from ..api.egress_checks import EgressFinding, node_pod_networks, overlap_problems
from ..api.models import NationalCloud, SovereignSuite
from .problems import Problem, stalled
from .views import Homes

WARNING_REASON = "EgressNotDeclared"


def cluster_egress_problems(suite: SovereignSuite, clouds: dict[str, NationalCloud], homes: Homes) -> list[Problem]:
    """A declared egress range over the pod networks the Nodes of a tenant's cluster hold (the ranges the
    NationalClouds declare were checked with the spec: check_suite), refused like an invalid spec: nothing is
    written. Read from the cluster's watch cache: no request."""
    read = {homes.cloud_of[ns]: node_pod_networks(view.target.cache.nodes.items())
            for ns, view in homes.home.items() if ns in homes.cloud_of}
    found = overlap_problems(suite, clouds, read)
    return [stalled("InvalidSpec", "; ".join(str(f) for f in found))] if found else []


def add_warnings(status: dict[str, Any], old_status: dict[str, Any], warnings: list[EgressFinding] | None
                 ) -> list[tuple[str, str, str]]:
    """Sets status.warnings (as they were when the spec could not be read: ``warnings`` None) and returns a Warning
    Event for each new one. Conditions never look at them: a warning does not make a suite not Ready."""
    if warnings is None:
        if "warnings" in old_status:
            status["warnings"] = old_status["warnings"]
        return []
    status["warnings"] = [{"reason": WARNING_REASON, "field": w.path, "message": w.message} for w in warnings]
    before = {w.get("message") for w in old_status.get("warnings") or []}
    return [("Warning", WARNING_REASON, str(w)[:1000]) for w in warnings if w.message not in before]
