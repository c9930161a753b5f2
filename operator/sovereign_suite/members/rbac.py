"""What the operator may do in a member cluster: the least-privilege ClusterRole ``cloud join`` creates there.

Derived from the code it serves, not written twice: every kind a renderer produces (reconcile/pipeline.py
CHILD_KINDS) with the verbs the pipeline uses on it (list and watch for its cache, get, patch for server-side
apply and the field-manager hand-over, create for namespaces and generated Secrets, delete for pruning), the
Nodes and Pods it watches (GPU capacity, scheduler reasons), and the rules of the tenant-admin Role the tenancy
renderer creates (Kubernetes lets no one grant in a Role more than they hold).
"""

from __future__ import annotations

from typing import Any

CHILD_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
READ_VERBS = ["get", "list", "watch"]


def plural(kind: str) -> str:
    """The resource name of a kind (NetworkPolicy -> networkpolicies, Ingress -> ingresses)."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def _group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def tenant_admin_rules() -> list[dict[str, Any]]:
    """The rules of the Roles the tenancy renderer produces (rendered for a sample suite, offline)."""
    from ..api.models import NationalCloud, SovereignSuite
    from ..components.base import build_contexts
    from ..components.tenancy import render

    suite = SovereignSuite.model_validate({
        "apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
        "metadata": {"name": "sample", "namespace": "sample"},
        "spec": {"domain": "sample.example.eu", "tenants": [{"country": "FR", "cloud": "sample"}],
                 "components": {"docs": {"enabled": False}}}})
    cloud = NationalCloud.model_validate({
        "apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": "sample"},
        "spec": {"country": "FR", "provider": "sample", "regions": ["sample-1"]}})
    (ctx,) = build_contexts(suite, {"sample": cloud})
    return [rule for obj in render(ctx) if obj["kind"] == "Role" for rule in obj.get("rules") or []]


def member_rules() -> list[dict[str, Any]]:
    from ..reconcile.pipeline import CHILD_KINDS

    by_group: dict[str, list[str]] = {}
    for api_version, kind in CHILD_KINDS:
        by_group.setdefault(_group(api_version), []).append(plural(kind))
    rules = [{"apiGroups": [g], "resources": sorted(r), "verbs": CHILD_VERBS} for g, r in sorted(by_group.items())]
    rules.append({"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": READ_VERBS})
    return rules + tenant_admin_rules()
