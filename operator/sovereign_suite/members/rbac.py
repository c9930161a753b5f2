"""What the operator may do in a member cluster: the least-privilege ClusterRole ``cloud join`` creates there.

Derived from the code it serves, not written twice: every kind a renderer produces (reconcile/pipeline.py
CHILD_KINDS) with the verbs the pipeline uses on it (list and watch for its cache, get, patch for server-side
apply and the field-manager hand-over, create for namespaces and generated Secrets, delete for pruning), the
Nodes and Pods it watches (GPU capacity, scheduler reasons), and "bind" on the one tenant-admin ClusterRole the
tenants' RoleBindings reference (never the rights that role grants).
"""

from __future__ import annotations

from typing import Any

from ..components.tenancy import TENANT_ADMIN_CLUSTER_ROLE

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


# What a tenant's admin group may do in its namespace: the rules of the chart's ClusterRole
# sovereign-suite-tenant-admin (templates/rbac-tenant-admin.yaml), which join creates in a member too (the tenant
# namespaces' RoleBindings reference it there). tests/test_chart.py checks both are the same.
TENANT_ADMIN_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "endpoints", "configmaps",
                                       "persistentvolumeclaims", "events"], "verbs": READ_VERBS},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"], "verbs": READ_VERBS},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": READ_VERBS},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": READ_VERBS},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
]


def member_rules() -> list[dict[str, Any]]:
    from ..reconcile.pipeline import CHILD_KINDS

    by_group: dict[str, list[str]] = {}
    for api_version, kind in CHILD_KINDS:
        by_group.setdefault(_group(api_version), []).append(plural(kind))
    rules = [{"apiGroups": [g], "resources": sorted(r), "verbs": CHILD_VERBS} for g, r in sorted(by_group.items())]
    rules.append({"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": READ_VERBS})
    # the tenant-admin RoleBindings it renders: "bind" on that one ClusterRole, not the rights it grants
    rules.append({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
                  "resourceNames": [TENANT_ADMIN_CLUSTER_ROLE]})
    return rules
