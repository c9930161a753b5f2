"""What a pass observes of the children it applied: each component's health, the models' GPU states, and the pods
behind them, all from the clusters' caches (a mixin of reconcile/pipeline.py's Pass, kept apart to keep that file
about the stages)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..api.models import SovereignSuite
from ..render import RenderResult
from . import gpu, observe
from .kube import ApiError
from .problems import ObjectKey

if TYPE_CHECKING:
    from .context import OperatorContext
    from .views import Homes


log = logging.getLogger(__name__)


class Observing:
    """Needs, from the pass: ctx, key, live, homes, and the per-pass ``_applied`` and ``_pods``."""

    ctx: "OperatorContext"
    homes: "Homes | None"
    live: dict[ObjectKey, dict[str, Any]]
    _applied: set[ObjectKey]
    _pods: dict[str, list[dict[str, Any]]]

    def health(self, suite: SovereignSuite, result: RenderResult, applied: set[ObjectKey]
               ) -> list[observe.ComponentHealth]:
        by_comp = observe.group_by_component(
            [o for k, o in self.live.items() if k.kind in ("Deployment", "StatefulSet", "Job")])
        self._applied = applied
        cluster_problems = self.homes.problems() if self.homes else {}
        health = []
        for (country, comp), objs in sorted(result.by_component.items()):
            ns = f"{suite.name}-{country}"
            # tenancy runs nothing; the backup's health is its last success (status.tenants[].backup, the alert)
            if comp in ("tenancy", "backup") or (self.homes is not None and ns in self.homes.remote):
                continue
            h = observe.component_health(country, ns, comp, by_comp.get((ns, comp), []), pods_of=self.pods_of)
            missing = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and ObjectKey.of(o) not in
                       self.live]
            for o in missing:
                h.desired += int(o["spec"].get("replicas", 1))
                h.waiting.append(f"{o['kind']}/{o['metadata']['name']}")
            if missing and not h.reason:
                h.reason, h.message = "Progressing", "waiting for " + ", ".join(h.waiting[:5])
            if ns in cluster_problems:  # what was last seen there is not a current health: never a stale Ready
                h.reason, h.message = cluster_problems[ns].reason, cluster_problems[ns].message
            health.append(h)
        return health

    def pods_of(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """A workload's pods, from its cluster's cache (none for a workload this pass just wrote)."""
        if ObjectKey.of(workload) in self._applied:
            return []
        match = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return self.pods_matching(workload["metadata"]["namespace"], match)

    def pods_matching(self, ns: str, match: dict[str, str]) -> list[dict[str, Any]]:
        """The pods of namespace ``ns`` with the labels ``match``, from its cluster's cache (read once a pass)."""
        if ns not in self._pods:
            view = self.homes.home.get(ns) if self.homes else None
            self._pods[ns] = (view.target.cache if view else self.ctx.cache).pods_in(ns)
        return [p for p in self._pods[ns] if match.items() <= (p["metadata"].get("labels") or {}).items()]

    def job_pods(self, ns: str, job: dict[str, Any]) -> list[dict[str, Any]]:
        """A finished Job's pods, read from its cluster: the caches keep no finished pod (cache.py watches pods
        with ``status.phase!=Succeeded,status.phase!=Failed``), so a failed Job's words are read when it has failed
        (reconcile/rollout_pass.py, once a pass while a rollout stays Failed). Stripped as that cluster's cache
        strips pods: a member's come without their log text. Its own pods only (its uid): a Job deleted to run
        again leaves pods of the same name for a while. When they cannot be read, the Job's condition says why."""
        view = self.homes.home.get(ns) if self.homes else None
        target = view.target if view else None
        kube, cache = (target.kube, target.cache) if target else (self.ctx.kube, self.ctx.cache)
        uid = job["metadata"].get("uid")
        selector = f"batch.kubernetes.io/controller-uid={uid}" if uid else f"job-name={job['metadata']['name']}"
        try:
            return [cache.strip_pod(p) for p in kube.list("v1", "Pod", selector, ns)]
        except ApiError as err:
            log.warning("the pods of Job %s/%s could not be read (%s): its condition says why it failed", ns,
                        job["metadata"]["name"], err)
            return []

    def models(self, contexts: list, placements: dict[str, list[gpu.Placement]]) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for c in contexts:
            ps = placements.get(c.tenant.country) or []
            if ps:
                entries = gpu.model_states(c, ps, self.live, self.pods_of, gpu.quota_problem(c, ps))
                gpu.record(self.key.namespace, self.key.name, c.tenant.country, entries)
                out[c.namespace] = entries
        return out
