"""What the operator may do in a member cluster: the rules of the ClusterRoles ``cloud join`` creates there.

Derived from the code it serves, not written twice: every kind a renderer produces (reconcile/pipeline.py
CHILD_KINDS) with the verbs the pipeline uses on it (list and watch for its cache, get, patch for server-side
apply and the field-manager hand-over, create for namespaces and generated Secrets, delete for pruning), the
Nodes and Pods it watches (GPU capacity, scheduler reasons), and "bind" on the two ClusterRoles the RoleBindings it
writes reference (never the rights those roles grant).

RBAC alone cannot say "only in the namespaces the suites own" (a ClusterRoleBinding grants a verb in every
namespace, a RoleBinding needs the namespace to exist first), so the writes granted here cluster-wide are confined
by the ValidatingAdmissionPolicy of members/policy.py, and the one read that matters, Secrets, is not granted
cluster-wide at all: ``SECRET_READER_RULES`` is bound per tenant namespace (``secret_reader_binding``).
"""

from __future__ import annotations

from typing import Any

from ..components.base import LABEL_SUITE, MANAGED_BY
from ..components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from . import names

CHILD_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
READ_VERBS = ["get", "list", "watch"]
WRITE_VERBS = ["create", "patch", "delete"]


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

# The hub's reads bound in each tenant namespace only (secret_reader_binding): its Secrets, and "list" on every kind,
# so that before a tenant namespace is deleted the operator can see all it holds (reconcile/namespace_content.py:
# a kind it may not list keeps the namespace). Both only where the hub already writes everything.
SECRET_READER_RULES: list[dict[str, Any]] = [{"apiGroups": [""], "resources": ["secrets"], "verbs": READ_VERBS},
                                             {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]}]


def member_rules() -> list[dict[str, Any]]:
    """The hub's cluster-wide rules in a member. Every write is confined to tenant namespaces by the admission
    policy (members/policy.py); Secrets are written here (create, patch, delete) but read only through the
    per-namespace binding."""
    from ..reconcile.child_kinds import CHILD_KINDS

    by_group: dict[str, list[str]] = {}
    for api_version, kind in CHILD_KINDS:
        if (api_version, kind) != ("v1", "Secret"):
            by_group.setdefault(_group(api_version), []).append(plural(kind))
    rules = [{"apiGroups": [g], "resources": sorted(r), "verbs": CHILD_VERBS} for g, r in sorted(by_group.items())]
    rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": WRITE_VERBS})
    rules.append({"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": READ_VERBS})
    # the RoleBindings it writes: "bind" on those two ClusterRoles, not the rights they grant
    rules.append({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
                  "resourceNames": [TENANT_ADMIN_CLUSTER_ROLE, names.SECRET_READER_ROLE]})
    return rules


def secret_reader_binding(cloud: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """The RoleBinding the operator writes in each tenant namespace it holds in ``cloud``'s member: its own
    ServiceAccount may read the Secrets there (the member cache watches them per namespace: reconcile/cache.py).
    ``labels``: the tenant's (a child of the suite, pruned with it)."""
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": names.SECRET_READER_BINDING, "namespace": namespace, "labels": dict(labels)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": names.SECRET_READER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": names.service_account(cloud),
                          "namespace": names.MEMBER_NAMESPACE}]}


def tenant_labels(namespace_obj: dict[str, Any]) -> dict[str, str]:
    """The suite's labels of a rendered tenant Namespace, without its Pod Security ones."""
    return {k: v for k, v in (namespace_obj["metadata"].get("labels") or {}).items()
            if not k.startswith("pod-security.kubernetes.io/")}


def is_secret_reader_binding(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    return (obj.get("kind") == "RoleBinding" and meta.get("name") == names.SECRET_READER_BINDING
            and (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY
            and LABEL_SUITE in (meta.get("labels") or {}))

