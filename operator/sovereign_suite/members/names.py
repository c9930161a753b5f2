"""Names of what ``cloud join`` makes in a member cluster, shared by join (members/join.py), the rules
(members/rbac.py, members/policy.py) and the operator (the member cache and the pass: reconcile/).

Per cloud: the ServiceAccount the hub uses, its token Secret, its ClusterRole and ClusterRoleBinding, and its
ValidatingAdmissionPolicy and binding, so that two clouds joined to one member never share a credential and
``cloud leave`` of one takes nothing of the other's. Shared by every join to one member, under fixed names because
objects the operator writes in tenant namespaces reference them: the namespace ``sovereign-suite-system``, the
tenant-admin ClusterRole (the tenants' RoleBindings) and the Secret-reader ClusterRole (the operator's own
RoleBinding in each tenant namespace). ``cloud leave`` deletes those only when nothing uses them any more.
"""

from __future__ import annotations

MANAGER = "sovereign-suite-cloud-join"
MEMBER_NAMESPACE = "sovereign-suite-system"
LABEL = "sovereignsuite.io/member-of"
# the Secret reads the hub's ServiceAccount gets in each tenant namespace, and only there (a RoleBinding the operator
# writes in the namespace it created; cluster-wide it reads no Secret)
SECRET_READER_ROLE = "sovereign-suite-member-secrets"
SECRET_READER_BINDING = "sovereign-suite-hub-secrets"

# what a `cloud join` before per-cloud names made (one for every cloud of a member): removed by join and leave
LEGACY_SERVICE_ACCOUNT = "sovereign-suite-hub"
LEGACY_TOKEN_SECRET = "sovereign-suite-hub-token"
LEGACY_CLUSTER_ROLE = "sovereign-suite-member"


def service_account(cloud: str) -> str:
    """The hub's ServiceAccount for ``cloud`` in the member (a NationalCloud name is a DNS label of at most 63
    characters: every name here stays a valid object name)."""
    return f"sovereign-suite-hub-{cloud}"


def username(cloud: str) -> str:
    """The user name the member's API server gives requests made with that ServiceAccount's token."""
    return f"system:serviceaccount:{MEMBER_NAMESPACE}:{service_account(cloud)}"


def token_secret(cloud: str) -> str:
    return f"{service_account(cloud)}-token"


def cluster_role(cloud: str) -> str:
    """The ClusterRole (and its ClusterRoleBinding) of the hub's ServiceAccount for ``cloud``."""
    return f"sovereign-suite-member-{cloud}"


def policy(cloud: str) -> str:
    """The ValidatingAdmissionPolicy (and its binding) that confines that ServiceAccount's writes."""
    return f"sovereign-suite-hub-{cloud}"
