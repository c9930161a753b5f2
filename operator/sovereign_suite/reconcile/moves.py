"""A tenant never changes cluster on its own, and never while its old cluster holds its data.

A tenant's cloud cannot change (CEL), but the cloud's cluster can: ``spec.cluster`` set from member to local
(``cloud leave``, or a GitOps sync of a NationalCloud without the fields ``cloud join`` wrote), or from local to
member (``cloud join`` while suites use the cloud). Applying the tenant in its new cluster would create new
database passwords, a new Synapse signing key and copies of its Secrets there, while its data stays in the old
one. The status remembers where each tenant was last applied (``status.tenants[].cluster``); a pass that finds
another cluster now refuses the move (``TenantMoveRefused``, Stalled) while the old cluster still holds the
tenant's data (PersistentVolumeClaims, generated Secrets, CloudNativePG clusters: ``prune.is_data``), or when
the operator cannot tell (the old cluster is a member it no longer reaches). Nothing of the tenant is applied or
pruned anywhere meanwhile.

The same holds when the cluster behind a cloud's name changes: a member's kubeconfig Secret replaced by one that
reaches another cluster. The status also remembers the identity of the cluster each tenant was applied to
(``status.tenants[].clusterUID``, targets.identify); a pass whose cluster has another identity refuses it the same
way (the old cluster is not reached any more, so the operator cannot tell what it holds), unless the tenant is
being restored (``restoreFrom``: a new cluster after a lost one is what a restore is for).

``deletionPolicy: Delete`` lets the move go on: the suite's editor has said its data may be deleted, and the
old cluster's children, data included, are pruned there (where the operator still reaches it). ``Retain`` (the
default) never lets it: move the data and delete it from the old cluster first (the move then goes on by
itself), or set ``Delete``.
"""

from __future__ import annotations

from typing import Any, Callable

from .problems import Problem, stalled
from .prune import is_data
from .targets import LOCAL, REMOTE, Target
from .views import ClusterView, Homes, namespace_of_key

SHOWN = 5  # data objects named in the message


def describe(cluster: str) -> str:
    return "the operator's own cluster (local)" if cluster == LOCAL else f"member cluster {cluster}"


def held_data(view: ClusterView | None, namespace: str) -> list[str] | None:
    """The tenant's data objects the old cluster holds, as seen in its watch cache; None: cannot tell (the
    cluster is not reached from here any more, or does not answer)."""
    if view is None or view.problem is not None:
        return None
    return sorted(str(k) for k, o in view.live.items() if namespace_of_key(k) == namespace and is_data(o))


def move_problem(namespace: str, last: str, now: str, held: list[str] | None, deletion_policy: str
                 ) -> Problem | None:
    """Whether the tenant may be applied to ``now`` after it was last applied to ``last`` ("" never applied)."""
    if not last or REMOTE in (last, now) or last == now:
        return None
    if deletion_policy == "Delete" or held == []:
        return None
    if held is None:
        what = "may still hold its data (the operator cannot tell: it no longer reaches that cluster)"
    else:
        more = f" and {len(held) - SHOWN} more" if len(held) > SHOWN else ""
        what = f"still holds its data ({', '.join(held[:SHOWN])}{more})"
    return stalled("TenantMoveRefused", f"tenant {namespace}: its NationalCloud now places it in {describe(now)}, "
                   f"but it was applied to {describe(last)}, which {what}; nothing of it is applied or pruned in "
                   "either cluster. Move its data and delete it from the old cluster, put the NationalCloud's "
                   "spec.cluster back, or set deletionPolicy: Delete to let it move (its data in the old cluster "
                   "is then deleted)")


def identity_problem(namespace: str, cluster: str, last_uid: str, now_uid: str, deletion_policy: str,
                     restoring: bool) -> Problem | None:
    """Whether the tenant may be applied to the cluster ``cluster`` names now (identity ``now_uid``) after it was
    applied to the cluster of identity ``last_uid`` under the same name ("": not known, nothing to compare)."""
    if not last_uid or not now_uid or last_uid == now_uid or deletion_policy == "Delete" or restoring:
        return None
    return stalled("TenantMoveRefused", f"tenant {namespace}: {describe(cluster)} is now another cluster (its "
                   f"kube-system namespace uid {now_uid}) than the one the tenant was applied to ({last_uid}): the "
                   "NationalCloud's credentials were replaced by another cluster's. The old cluster may still hold "
                   "its data (the operator no longer reaches it); nothing of the tenant is applied or pruned. Put "
                   "the credentials of the tenant's cluster back, restore the tenant into the new cluster "
                   "(backups.restoreFrom), or set deletionPolicy: Delete to start it there anew")


def last_identities(old_status: dict[str, Any]) -> dict[str, str]:
    """Tenant namespace -> the identity of the cluster the status says it was applied to."""
    return {t["namespace"]: t.get("clusterUID") or "" for t in old_status.get("tenants") or []
            if isinstance(t, dict) and t.get("namespace")}


def last_clusters(old_status: dict[str, Any]) -> dict[str, str]:
    """Tenant namespace -> the cluster the status says it was applied to."""
    return {t["namespace"]: t.get("cluster") or "" for t in old_status.get("tenants") or []
            if isinstance(t, dict) and t.get("namespace")}


def hold_moves(homes: Homes, last: dict[str, str], deletion_policy: str, last_uids: dict[str, str] | None = None,
               identify: Callable[[Target], str] = lambda target: "", restoring: frozenset[str] = frozenset()
               ) -> None:
    """Take every tenant whose move is refused out of its new cluster (``homes`` is changed in place): it is
    unresolved (its problem says why, nothing of its namespace is pruned anywhere). Every unresolved tenant's
    status keeps naming the cluster it was last applied to (a member whose Secret is missing for a while must
    not become the remembered cluster of a tenant still on the hub), and its identity. ``last_uids``: the
    identities the status remembers; ``identify(target)``: a cluster's identity now ("" unknown); ``restoring``:
    the tenants created from a backup."""
    last_uids = last_uids or {}
    for ns in homes.unresolved:  # its cluster unknown this pass: the status must not forget where it was
        if last.get(ns) and last[ns] != REMOTE:
            homes.held_by[ns] = last[ns]
            homes.identities[ns] = last_uids.get(ns, "")
    by_name = {v.target.name: v for v in homes.views}
    for ns, view in list(homes.home.items()):
        before = last.get(ns, "")
        problem = move_problem(ns, before, view.target.name, held_data(by_name.get(before), ns), deletion_policy)
        # a cluster that does not answer is not asked who it is (its problem is the pass's already)
        now_uid = identify(view.target) if view.problem is None else ""
        if problem is None and before == view.target.name:
            problem = identity_problem(ns, before, last_uids.get(ns, ""), now_uid, deletion_policy,
                                       ns in restoring)
        if problem is None:
            homes.identities[ns] = now_uid or (last_uids.get(ns, "") if before == view.target.name else "")
            continue
        homes.identities[ns] = last_uids.get(ns, "")
        del homes.home[ns]
        view.namespaces.discard(ns)
        homes.unresolved[ns] = problem
        homes.held_by[ns] = before
