"""The reconcile pipeline: one idempotent pass over a SovereignSuite.

    validate -> locate (each tenant's cluster) -> place -> render (pure) -> dereference -> secrets
             -> apply (ordered, per cluster) -> prune (per cluster) -> status

Each tenant is applied to its national cloud's cluster: the operator's own, or a member (views.py, targets.py);
a member that does not answer holds back its own tenants only: each cluster is written on its own threads
(pools.py), and a pass stops waiting for a member as soon as it is known not to answer.

Every read comes from the watch cache (cache.py); a pass writes only children that are out of sync
(converge.py), so a converged suite costs no request at all. Each stage returns its problems as values
(problems.py); ``conditions()`` turns them into the status. The worker (worker.py) runs passes from the queue.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..api.derived_names import namespace_of
from ..api.egress_checks import EgressFinding, missing_egress
from ..api.models import SovereignSuite
from ..api.secret_refs import opt_in_problems, secret_references
from ..api.upgrade_rules import upgrade_problems
from ..api.validation import OUTSIDE_COUNTRY, InputError, check_suite, effective_backups, parse_suite
from ..components.base import OPTIONAL_APIS, build_contexts
from ..members.rbac import secret_reader_binding, tenant_labels
from ..render import RenderResult, phase_of, render_suite
from . import gpu, observe
from .apply import Applier
from .conditions import Findings, conditions, transitions
from .egress import add_warnings, cluster_egress_problems
from .finetune_serving import served_adapters, training_countries
from .context import OperatorContext
from .converge import ANN_OWNER, stamp
from .kube import ApiError
from .jobs import migration_jobs
from .moves import hold_moves, last_clusters, last_identities
from .pass_observe import Observing
from .pools import each_cluster
from .problems import UNREACHABLE, ObjectKey, Problem, SuiteKey, degraded, from_api_error, stalled
from .prune import Pruner, component_of
from .secrets import copy_manifest, roll_on_rotation
from .backup_status import backup_entry
from .child_kinds import CAPABILITY_KINDS, CHILD_KINDS, wanted_apis  # noqa: F401 (CHILD_KINDS: imported from here too)
from . import restore_pass, rollout_pass, writer_change
from .status import build_status
from .storage_hold import hold_immutable_storage
from .targets import Target, identify
from .views import (ClusterView, Homes, give_up, idle_problems, namespace_of_key, namespace_of_obj, on_cluster, owns,
                    resolve)

log = logging.getLogger(__name__)

FINALIZER = "sovereignsuite.io/cleanup"

@dataclass
class PassResult:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    problems: list[Problem] = field(default_factory=list)
    health: list[observe.ComponentHealth] = field(default_factory=list)
    writes: int = 0
    requeue_after: float | None = None
    complete: bool = False  # every rendered child is applied (nothing held back, no problem)
    # what this pass wrote: (cluster, child) -> its resourceVersion (the next pass waits for the caches to show it)
    written: dict[tuple[str, ObjectKey], str] = field(default_factory=dict)


class Pass(Observing):
    """One pass over one suite. Lives on one worker thread."""

    def __init__(self, ctx: OperatorContext, body: dict[str, Any]):
        self.ctx = ctx
        self.body = body
        meta = body["metadata"]
        self.key = SuiteKey(meta["namespace"], meta["name"])
        self.uid = meta["uid"]
        self.generation = int(meta.get("generation") or 1)
        self.old_status = body.get("status") or {}
        self.clouds, self.cloud_problems = ctx.clouds.snapshot()
        self.homes: Homes | None = None  # which cluster holds each tenant (views.py), once the spec is valid
        self.live: dict[ObjectKey, dict[str, Any]] = {}  # the tenants' children where they live
        self.events: list[tuple[str, str, str]] = []
        self.requeue_after: float | None = None
        self._applied: set[ObjectKey] = set()  # children written by this pass (their pods are not worth a look)
        self._pods: dict[str, list[dict[str, Any]]] = {}  # namespace -> its pods, looked up once per pass
        self.warnings: list[EgressFinding] = []  # valid but will not work: status.warnings (never changes Ready)
        self.restores = restore_pass.Plan()  # the tenants restored from a backup (restore.py)
        self.held: set[ObjectKey] = set()  # workloads a release rollout keeps at their live version (rollout.py)
        self.upgrades: dict[str, dict[str, Any]] = {}  # namespace -> its rollout's status.tenants[].upgrade

    # ---- the stages ---------------------------------------------------------------------------
    def parse(self) -> tuple[SovereignSuite | None, list[Problem]]:
        try:
            suite = parse_suite({k: self.body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        except InputError as err:
            return None, [stalled("InvalidSpec", "; ".join(str(p) for p in err.problems))]
        problems = check_suite(suite, self.clouds, self.ctx.settings.operator_namespace)
        if not problems:  # what an upgrade may not do, against what the databases reached (api/upgrade_rules.py)
            refused = upgrade_problems(suite, rollout_pass.recorded(self.old_status))
            if refused:
                return None, [stalled("UpgradeRefused", "; ".join(str(p) for p in refused))]
        if problems:
            reason = ("BackupOutsideCountry" if any(OUTSIDE_COUNTRY in p.message for p in problems)
                      else "UnknownCloud" if any("NationalCloud" in p.message for p in problems) else "InvalidSpec")
            extra = [str(p) for p in self.cloud_problems[:3]]
            return None, [stalled(reason, "; ".join([str(p) for p in problems] + extra))]
        return suite, []

    def locate(self, suite: SovereignSuite) -> Homes:
        if not self.ctx.settings.local_clouds:
            self.ctx.members.drop_unused(self.clouds)
        self.homes = resolve(self.ctx, self.key, suite, self.clouds)
        restoring = frozenset(namespace_of(suite, t) for t in suite.spec.tenants
                              if effective_backups(suite, t).restore_from is not None)
        hold_moves(self.homes, last_clusters(self.old_status), suite.spec.deletion_policy,
                   last_identities(self.old_status), identify, restoring)
        self.live = self.homes.live()
        return self.homes

    def capabilities(self, target: Target, wanted: frozenset[str]) -> frozenset[str]:
        """The optional APIs the target serves; those the suite asks for (``wanted``) are asked of discovery
        when the cache's watch has not found them (at most every discovery interval: reconcile/unserved.py)."""
        return frozenset(api for api in OPTIONAL_APIS
                         if any(target.cache.served(api, k, ask=api in wanted) for k in CAPABILITY_KINDS[api]))

    def place(self, contexts: list) -> dict[str, list[gpu.Placement]]:
        capacity: dict[str, gpu.Capacity] = {}
        assert self.homes is not None
        return {c.tenant.country: gpu.place_tenant(self.homes.home[c.namespace].target.cache, c, self.live, capacity)
                for c in contexts if c.namespace in self.homes.home}

    def dereference(self, suite: SovereignSuite, contexts: list) -> tuple[list[dict[str, Any]], list[Problem]]:
        """Copies of the Secrets the suite references, for each tenant namespace served here. A referenced Secret
        must exist in the suite's namespace (in the operator's cluster) and be labelled referenceable by its owner
        (who opts in to sharing it); one the operator manages itself is never a source (api/secret_refs.py)."""
        copies, problems = [], []
        # the tenants that train or serve adapters mount the cloud's storage credentials, backups on or off
        training = training_countries(self.key, self.ctx.finetunes.bodies())
        for index, c in enumerate(contexts):
            if self.homes is not None and c.namespace not in self.homes.home:
                continue  # another operator's tenant (pull mode), or a cluster not known yet
            found = secret_references(suite, index, c.tenant, c.components, c.backups, c.object_storage,
                                      c.cloud.spec.object_storage if c.tenant.country in training else None)
            refs = [r for r in found if r.required]
            copies += self.optional_copies([r for r in found if not r.required], c)
            sources: dict[str, dict[str, Any] | None] = {}
            for r in refs:
                sources[r.name] = self.ctx.cache.referenced_secret(self.key.namespace, r.name)
                if sources[r.name] is None:  # not opted in, or missing: read it once to say which
                    try:
                        sources[r.name] = self.ctx.kube.get("v1", "Secret", r.name, self.key.namespace)
                    except ApiError as err:
                        problems.append(from_api_error(err, ObjectKey("", "Secret", self.key.namespace, r.name)))
                        continue
                    if sources[r.name] is None:
                        problems.append(stalled("MissingSecret", f"{r.path}: not found",
                                                ObjectKey("", "Secret", self.key.namespace, r.name)))
            labels = {n: (s["metadata"].get("labels") or {}) if s else None for n, s in sources.items()}
            refused = opt_in_problems(refs, labels, self.key.namespace)
            problems += [stalled("SecretNotReferenceable", f"{path}: {msg}") for path, msg in refused]
            if not refused:
                copies += [copy_manifest(sources[r.name], c.namespace, c.labels(r.component)) for r in refs
                           if sources.get(r.name) is not None]
        unique = {ObjectKey.of(c): c for c in copies}
        return list(unique.values()), list(dict.fromkeys(problems))

    def optional_copies(self, refs: list, c: Any) -> list[dict[str, Any]]:
        """Copies of the references a tenant's FineTunes need (api/secret_refs.py ``required=False``): made when the
        Secret is referenceable, skipped otherwise without a problem of the suite (the FineTune pass reports it)."""
        out = []
        for r in refs:
            source = self.ctx.cache.referenced_secret(self.key.namespace, r.name)
            labels = {r.name: (source["metadata"].get("labels") or {}) if source else None}
            if source is not None and not opt_in_problems([r], labels, self.key.namespace):
                out.append(copy_manifest(source, c.namespace, c.labels(r.component)))
        return out

    def desired(self, result: RenderResult, copies: list[dict[str, Any]], key: bytes) -> list[dict[str, Any]]:
        """The rendered manifests plus the Secret copies (right after each namespace's configuration), with the
        rotation digest (keyed with ``key``) on the pods that read a copy, stamped with the suite's UID and each
        object's hash."""
        manifests = roll_on_rotation(list(result.manifests), copies, key)
        idx = next((i for i, o in enumerate(manifests) if phase_of(o) not in ("namespace", "policy", "config")),
                   len(manifests))
        manifests = manifests[:idx] + copies + manifests[idx:]
        out = []
        for obj in manifests:
            if obj["kind"] == "Namespace":
                # Only a namespace the operator created carries the suite's UID (deletable with the suite); one a
                # platform team created for the namespace-scoped mode is adopted but never deleted.
                view = self.homes.home.get(obj["metadata"]["name"]) if self.homes else None
                live = self.live.get(ObjectKey.of(obj)) or (view.target.cache.tenant_namespaces.get(
                    "", obj["metadata"]["name"]) if view else None)
                created_by_us = live is None or bool((live["metadata"].get("annotations") or {}).get(ANN_OWNER))
                out.append(stamp(obj, self.uid if created_by_us else None))
            else:
                out.append(stamp(obj, self.uid))
        return out

    def owns(self, view: ClusterView) -> bool:
        return owns(view, Pruner(view.target, self.key, self.uid, {}).ours,
                    self.homes.protected() if self.homes else set())

    def idle(self, view: ClusterView, owned: bool, found: list[Problem] | None = None) -> tuple:
        """A cluster not written: it did not answer (``view.problem``), or stopped answering during the pass
        (``found``: its problems so far). Its tenants wait, the others go on."""
        if found is not None:
            give_up(view, found)
        return None, Pruner(view.target, self.key, self.uid, {}), idle_problems(view, owned), [], None

    def write(self, view: ClusterView, desired: list[dict[str, Any]], result: RenderResult, retain: bool,
              cancel: threading.Event | None = None
              ) -> tuple[Applier | None, Pruner, list[Problem], list[str], float | None]:
        """Apply a cluster's tenants, then prune the suite's children there that are no longer rendered (or whose
        tenant lives elsewhere now). Returns the applier (None: nothing applied), the pruner, the problems, what
        waits for a migration Job and when to look again. Runs on the cluster's writer thread: it changes only
        ``view``; ``cancel`` set: the pass no longer waits for it, nothing more is sent."""
        protected = self.homes.protected() if self.homes else set()

        def pruner() -> Pruner:  # over the children as they are now (the applier adds what it writes)
            return Pruner(view.target, self.key, self.uid, {k: o for k, o in view.live.items()
                                                            if namespace_of_key(k) not in protected},
                          cancel=applier.cancel)

        if view.problem is not None:  # a member that does not answer: its tenants wait, the others go on
            return self.idle(view, self.owns(view))
        objs = [o for o in desired if namespace_of_obj(o) in view.namespaces]
        if view.target.is_member:  # the hub reads Secrets in a member only where it binds itself (members/rbac.py)
            readers = [stamp(secret_reader_binding(view.target.name, o["metadata"]["name"], tenant_labels(o)),
                             self.uid) for o in objs if o["kind"] == "Namespace"]
            first = next((i for i, o in enumerate(objs) if phase_of(o) != "namespace"), len(objs))
            objs = objs[:first] + readers + objs[first:]  # with the policy phase, before any Secret is written
        applier = Applier(self.ctx, view.target, self.key, view.live, uid=self.uid,
                          cancel=cancel or threading.Event())
        # each namespace as found (or created): it carries the suite's UID only if the operator created it
        found = {ObjectKey.of(ns): applier.ensure_namespace(ns) for ns in objs if ns["kind"] == "Namespace"}
        objs = [found.get(ObjectKey.of(o)) or o if o["kind"] == "Namespace" else o for o in objs]
        if any(p.reason == "NamespaceConflict" for p in applier.problems):
            return applier, pruner(), on_cluster(view.target, applier.problems), [], None  # nothing half-applied
        # a tenant restored from a backup: its Secrets re-created from it first; none generated in their place
        restored, restore_found, specs = restore_pass.write_secrets(
            view.target.kube, self.restores, [s for s in result.secrets if s.namespace in view.namespaces], view.live)
        for secret in restored:
            applier.record_secret(secret)
        applier.problems += restore_found
        applier.ensure_secrets(specs)
        ready_jobs, job_problems, requeue = migration_jobs(self.ctx, self.ctx.memory(self.key), view.target.kube,
                                                           view.live, objs)
        waiting = applier.apply_all([o for o in objs if o["kind"] != "Namespace" or ObjectKey.of(o) in view.live],
                                    ready_jobs, hold=self.restores.held, held=self.held)
        watch = [degraded("WatchFailed", e) for e in view.target.cache.watch_errors(view.namespaces)] \
            if not view.target.is_member else []
        pruning = pruner()
        if not applier.problems and not watch and not applier.stopped():
            # prune only after a complete apply on a current view: never delete while the new state is partial
            wanted = {ObjectKey.of(o) for o in objs}
            wanted |= {ObjectKey("", "Secret", s.namespace, s.name) for s in result.secrets}
            rendered = {component_of(o) for o in objs}
            try:
                pruning.readopt(rendered)
                pruning.prune(wanted, rendered, retain=retain)
            except ApiError as err:  # a namespace's content could not be listed
                pruning.problems.append(from_api_error(err, None))
        found = applier.problems + job_problems + pruning.problems
        if view.target.is_member and (applier.stopped() or any(p.reason == UNREACHABLE for p in found)):
            return self.idle(view, self.owns(view), found)  # stopped answering during the pass
        return applier, pruning, on_cluster(view.target, found + watch), waiting, requeue

    # ---- the pass -----------------------------------------------------------------------------
    def run(self) -> PassResult:
        suite, problems = self.parse()
        if suite is None:
            return self.finish(None, [], problems, rendered=False)
        homes = self.locate(suite)
        problems = cluster_egress_problems(suite, self.clouds, homes)
        if problems:
            return self.finish(None, [], problems, rendered=False)
        self.warnings = missing_egress(suite, self.clouds)
        wanted = wanted_apis(self.body.get("spec") or {})
        capabilities = {t.country: self.capabilities(homes.home[ns].target if ns in homes.home else self.ctx.local,
                                                     wanted)
                        for t in suite.spec.tenants for ns in [namespace_of(suite, t)]}
        contexts = build_contexts(suite, self.clouds, capabilities)
        placements = self.place(contexts)
        # the adapters of the FineTunes that passed their promotion gate (finetune_serving.py)
        adapters = served_adapters(suite, self.clouds, self.ctx.finetunes.bodies()) or None
        try:
            result = self.ctx.render_pool.submit(
                render_suite, suite, self.clouds, capabilities,
                {c: {p.model: p.product for p in ps} for c, ps in placements.items()},
                self.ctx.settings.operator_namespace, adapters).result()
        except InputError as err:
            return self.finish(None, [], [stalled("InvalidSpec", "; ".join(str(p) for p in err.problems))],
                               rendered=False)
        if suite.spec.paused:
            return self.finish(suite, self.health(suite, result, set()), [], models=self.models(contexts, placements),
                               paused=True)
        copies, problems = self.dereference(suite, contexts)
        key = self.ctx.rotation_keys.key(self.key.namespace) if copies else b""
        if isinstance(key, Problem):
            problems.append(key)
        if problems:
            return self.finish(suite, self.health(suite, result, set()), problems)
        # a storage change the API server would refuse is held back and reported; the rest goes on
        result.manifests, held = hold_immutable_storage(result.manifests, self.live, suite, self.clouds)
        self.restores = self.plan_restores(contexts, result)
        desired = self.desired(result, copies, key)
        labels = {c.tenant.country: c.labels for c in contexts}
        desired, self.held, self.upgrades = rollout_pass.plan(
            suite, desired, self.live, self.old_status, self.uid,
            served=lambda ns: ns in homes.home and ns not in homes.remote, pods_of=self.pods_matching,
            job_pods=self.job_pods,
            labels=lambda tenant, comp, part: labels[tenant.country](comp, part),
            deadline=self.ctx.settings.rollout_step_deadline)
        # a new Synapse writer set: every process of the old one stops first (writer_change.py)
        desired, stopping = writer_change.plan(desired, lambda ns: ns in homes.home and ns not in homes.remote,
                                               self.pods_matching)
        problems = list(homes.unresolved.values()) + held + self.restores.problems
        problems += [degraded(u["reason"], f"{ns}: upgrade {u['fromRelease']} -> {u['toRelease']} stopped at "
                              f"step {u['step']}: {u['message']}")
                     for ns, u in self.upgrades.items() if u["state"] == "Failed"]
        waiting: list[str] = list(stopping)
        applied: set[ObjectKey] = set()
        writes, written = 0, {}
        retain = suite.spec.deletion_policy == "Retain"
        # the clusters are written at the same time, each on its own threads (each phase's objects in parallel
        # within a cluster), as one kubectl per cluster would; results are gathered in the views' order. A member
        # that stops answering meanwhile is not waited for (pools.each_cluster).
        owned = {v.target.name: self.owns(v) for v in homes.views}
        outcomes = each_cluster(homes.views, lambda v: v.target, lambda v, c: self.write(v, desired, result, retain, c),
                                lambda v: self.idle(v, owned[v.target.name], []))
        for view, (applier, pruner, found, waits, requeue) in zip(homes.views, outcomes):
            if requeue is not None:
                self.requeue_after = min(self.requeue_after or requeue, requeue)
            problems += found
            waiting += waits
            self.events += pruner.events
            writes += pruner.writes
            if applier is not None:
                writes += applier.writes
                applied |= applier.applied
                written.update({(view.target.name, k): rv for k, rv in applier.written.items()})
                self.live.update(view.held())
        out = self.finish(suite, self.health(suite, result, applied), problems, waiting=waiting,
                          models=self.models(contexts, placements))
        out.writes = writes
        out.written = written
        out.complete = not problems and not waiting
        return out

    def add_backups(self, suite: SovereignSuite, status: dict[str, Any]) -> None:
        """Each tenant's last successful backup (reconcile/backup_status.py), for the tenants served here."""
        old = {t.get("namespace"): t.get("backup") for t in self.old_status.get("tenants") or []}
        for tenant, entry in zip(suite.spec.tenants, status.get("tenants") or []):
            backups = effective_backups(suite, tenant)
            ns = entry["namespace"]
            view = self.homes.home.get(ns) if self.homes else None
            if not backups.enabled or (self.homes is not None and view is None):
                continue
            kube = view.target.kube if view else self.ctx.kube
            cronjob = self.live.get(ObjectKey("batch", "CronJob", ns, "backup"))
            entry["backup"] = backup_entry(backups.schedule, cronjob, old.get(ns),
                                           lambda sel: kube.list("v1", "Pod", sel, ns), ns)

    def plan_restores(self, contexts: list, result: RenderResult) -> restore_pass.Plan:
        """The tenants created from a backup (restore_pass.py): the Job added to ``result``, what waits."""
        homes = self.homes
        return restore_pass.plan(contexts, result, self.live, restore_pass.recorded(self.old_status),
                                 lambda ns: homes is None or ns in homes.home, self.job_pods, self.ctx.read_secret,
                                 self.key.namespace)

    def finish(self, suite: SovereignSuite | None, health: list[observe.ComponentHealth], problems: list[Problem],
               *, rendered: bool = True, paused: bool = False, waiting: list[str] | None = None,
               models: dict[str, list[dict[str, Any]]] | None = None) -> PassResult:
        gpu_problems = tuple((m["reason"], f"{ns.rsplit('-', 1)[-1]}/llm/{m['name']}: {m['reason']}: "
                              f"{m['message']}") for ns, entries in sorted((models or {}).items()) for m in entries
                             if m["reason"] in ("InsufficientGPU", "InsufficientGPUMemory", "GPUQuotaExceeded"))
        verdict = conditions(Findings(self.generation, tuple(problems), tuple(health), tuple(waiting or ()),
                                      gpu_problems, paused=paused, rendered=rendered))
        clusters = {ns: self.homes.cluster(ns) for ns in self.homes.cloud_of} if self.homes else None
        status = build_status(self.old_status, verdict.conditions, self.generation, suite, health, models, clusters)
        if suite is not None and rendered:
            self.add_backups(suite, status)
            rollout_pass.add_releases(suite, status, self.old_status, self.upgrades)
        restore_pass.add_status(self.restores, self.old_status, status)
        self.events += transitions(self.old_status.get("conditions") or [], status["conditions"])
        self.events += add_warnings(status, self.old_status, self.warnings if suite is not None else None)
        requeue = self.requeue_after
        if verdict.progressing:
            requeue = min(requeue or self.ctx.settings.requeue_seconds, self.ctx.settings.requeue_seconds)
        return PassResult(status=status, events=self.events, problems=list(problems), health=health,
                          requeue_after=requeue)


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> PassResult:
    return Pass(ctx, body).run()

