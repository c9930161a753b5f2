"""A pass's clusters: which cluster holds each tenant, and the suite's children found in each.

Every cluster the operator writes to is looked at, not only those holding a tenant now: a tenant whose cloud was
joined to a member (or left it) still has children where it lived before, which the pass prunes there. A tenant
whose cluster cannot be resolved (its kubeconfig Secret missing or unusable) is *protected*: nothing of its
namespace is pruned anywhere until its cluster is known again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .. import metrics
from ..api.models import NationalCloud, SovereignSuite
from ..api.derived_names import namespace_of
from .problems import UNREACHABLE, ObjectKey, Problem, SuiteKey, degraded
from .targets import REMOTE, Target, rejoin_hint


def namespace_of_key(key: ObjectKey) -> str:
    """The tenant namespace an object belongs to (a Namespace: its own name)."""
    return key.name if key.kind == "Namespace" and not key.namespace else key.namespace


def namespace_of_obj(obj: dict[str, Any]) -> str:
    return namespace_of_key(ObjectKey.of(obj))


@dataclass
class ClusterView:
    target: Target
    namespaces: set[str]  # the tenant namespaces this cluster holds
    live: dict[ObjectKey, dict[str, Any]]  # every child of the suite found there (its watch cache)
    problem: Problem | None = None  # a member that does not answer, or refuses the operator's credentials

    def held(self) -> dict[ObjectKey, dict[str, Any]]:
        return {k: o for k, o in self.live.items() if namespace_of_key(k) in self.namespaces}


@dataclass
class Homes:
    views: list[ClusterView]
    home: dict[str, ClusterView]  # tenant namespace -> the cluster holding it
    cloud_of: dict[str, str]  # tenant namespace -> its NationalCloud
    remote: set[str] = field(default_factory=set)  # pull mode: namespaces another country's operator serves
    unresolved: dict[str, Problem] = field(default_factory=dict)  # namespace -> why its cluster is unknown
    # namespace -> the cluster it was last applied to, for a tenant not applied this pass (a refused move, or its
    # cluster unknown): the status keeps naming it, so that the next pass still knows where its data is
    held_by: dict[str, str] = field(default_factory=dict)
    # namespace -> the identity of its cluster (targets.identify; moves.py), "" when not known
    identities: dict[str, str] = field(default_factory=dict)

    def live(self) -> dict[ObjectKey, dict[str, Any]]:
        """The children of the tenants where they live (what status and health read)."""
        out: dict[ObjectKey, dict[str, Any]] = {}
        for view in self.views:
            out.update(view.held())
        return out

    def protected(self) -> set[str]:
        return set(self.unresolved)

    def problems(self) -> dict[str, Problem]:
        """Tenant namespace -> why its cluster cannot be worked on now."""
        out = dict(self.unresolved)
        for ns, view in self.home.items():
            if view.problem is not None:
                out[ns] = view.problem
        return out

    def cluster(self, ns: str) -> dict[str, Any]:
        """The tenant's ``cluster``, ``clusterReachable`` and ``clusterUID`` status fields."""
        if ns in self.remote:
            return {"cluster": REMOTE}
        uid = {"clusterUID": self.identities[ns]} if self.identities.get(ns) else {}
        if ns in self.held_by:  # not applied this pass (moves.py): the status keeps the cluster it was applied to
            return {"cluster": self.held_by[ns], "clusterReachable": False, **uid}
        view = self.home.get(ns)
        if view is None:
            return {"cluster": self.cloud_of.get(ns, ""), "clusterReachable": False}
        return {"cluster": view.target.name, "clusterReachable": view.problem is None, **uid}


def resolve(ctx: Any, key: SuiteKey, suite: SovereignSuite, clouds: dict[str, NationalCloud]) -> Homes:
    """Each tenant's cluster (``ctx.target_for``), and a view of every cluster the operator writes to."""
    by_name: dict[str, ClusterView] = {}
    home: dict[str, ClusterView] = {}
    homes = Homes([], home, {})
    for tenant in suite.spec.tenants:
        ns = namespace_of(suite, tenant)
        homes.cloud_of[ns] = tenant.cloud
        found = ctx.target_for(clouds[tenant.cloud])
        if found == REMOTE:
            homes.remote.add(ns)
        elif isinstance(found, Problem):
            homes.unresolved[ns] = found
        else:
            view = by_name.get(found.name)
            if view is None:
                view = by_name[found.name] = ClusterView(found, set(), found.cache.children(key), found.problem())
            view.namespaces.add(ns)
            home[ns] = view
    for target in ctx.targets():
        if target.name not in by_name:
            by_name[target.name] = ClusterView(target, set(), target.cache.children(key), target.problem())
        if target.is_member:
            metrics.record_member(target.name, by_name[target.name].problem is None)
    homes.views = list(by_name.values())
    return homes


def on_cluster(target: Target, problems: list[Problem]) -> list[Problem]:
    """A member's problems name the member (the API server's message alone does not say which cluster)."""
    if not target.is_member:
        return problems
    return [Problem(p.severity, p.reason, f"{target}: {p.message}{_hint(target, p)}", p.object) for p in problems]


def _hint(target: Target, problem: Problem) -> str:
    """A write the member's RBAC refused (not its admission policy, which refuses on purpose): join again."""
    if problem.reason in ("Forbidden", "Unauthorized") and "ValidatingAdmissionPolicy" not in problem.message:
        return f"; {rejoin_hint(target.name)}"
    return ""


def stray_problem(view: ClusterView, owned: bool) -> Problem | None:
    """Children of the suite remain in a cluster that holds none of its tenants and cannot be reached."""
    if view.problem is None or view.namespaces or not owned:
        return None
    return degraded(view.problem.reason, f"children of this suite remain there and cannot be pruned: "
                    f"{view.problem.message}")


def owns(view: ClusterView, ours: Callable[[dict[str, Any]], bool], protected: set[str]) -> bool:
    """Whether the suite's children (``ours``) are in the view's cluster, those of protected namespaces aside."""
    return any(ours(o) for k, o in view.live.items() if namespace_of_key(k) not in protected)


def idle_problems(view: ClusterView, owned: bool) -> list[Problem]:
    """What a cluster that is not written (``view.problem``) reports: its tenants' problem, or its strays'."""
    stray = stray_problem(view, owned)
    return [stray] if stray else ([view.problem] if view.problem and view.namespaces else [])


def give_up(view: ClusterView, problems: list[Problem]) -> None:
    """A member that stopped answering during a pass: its tenants are reported like those of a member that did
    not answer before it (``ClusterUnreachable``, what was last seen there is not current health)."""
    first = next((p for p in problems if p.reason == UNREACHABLE), None)
    view.problem = view.target.problem() or degraded(
        UNREACHABLE, f"{view.target} {first.message if first else 'does not answer'}")
