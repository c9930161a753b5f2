"""The reconcile pipeline: one idempotent pass over a SovereignSuite.

    dereference -> validate -> place -> render (pure) -> secrets -> apply (ordered) -> prune -> status

Every read comes from the watch cache (cache.py); a pass writes only children that are out of sync
(converge.py), so a converged suite costs no request at all. Each stage returns its problems as values
(problems.py); ``conditions()`` turns them into the status. The worker (worker.py) runs passes from the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..api.models import SovereignSuite
from ..api.secret_refs import opt_in_problems, secret_references
from ..api.validation import InputError, check_suite, parse_suite
from ..components.base import OPTIONAL_APIS, build_contexts
from ..render import RenderResult, phase_of, render_suite
from . import gpu, observe
from .apply import ANN_AFTER_JOB, Applier
from .conditions import Findings, conditions, merge_conditions, transitions
from .context import OperatorContext
from .converge import ANN_OWNER, stamp
from .kube import ApiError
from .problems import ObjectKey, Problem, SuiteKey, degraded, from_api_error, stalled
from .prune import Pruner, component_of
from .secrets import copy_manifest, roll_on_rotation
from .status import now, tenants_status

log = logging.getLogger(__name__)

FINALIZER = "sovereignsuite.io/cleanup"

# Every kind a renderer may produce: watched by label to find drift and orphans. Kinds the cluster does not
# serve (CloudNativePG, Prometheus Operator) are watched from the moment their CRD appears.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("batch/v1", "Job"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
)
CAPABILITY_KINDS = {"monitoring.coreos.com/v1": ("ServiceMonitor",), "postgresql.cnpg.io/v1": ("Cluster",)}


@dataclass
class PassResult:
    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    problems: list[Problem] = field(default_factory=list)
    health: list[observe.ComponentHealth] = field(default_factory=list)
    writes: int = 0
    requeue_after: float | None = None
    complete: bool = False  # every rendered child is applied (nothing held back, no problem)
    written: dict[ObjectKey, str] = field(default_factory=dict)  # what this pass wrote (resourceVersions)


class Pass:
    """One pass over one suite. Lives on one worker thread."""

    def __init__(self, ctx: OperatorContext, body: dict[str, Any]):
        self.ctx = ctx
        self.body = body
        meta = body["metadata"]
        self.key = SuiteKey(meta["namespace"], meta["name"])
        self.uid = meta["uid"]
        self.generation = int(meta.get("generation") or 1)
        self.old_status = body.get("status") or {}
        self.live = ctx.cache.children(self.key)
        self.clouds, self.cloud_problems = ctx.clouds.snapshot()
        self.events: list[tuple[str, str, str]] = []
        self.requeue_after: float | None = None
        self._applied: set[ObjectKey] = set()  # children written by this pass (their pods are not worth a look)
        self._pods: dict[str, list[dict[str, Any]]] = {}  # namespace -> its pods, looked up once per pass

    # ---- the stages ---------------------------------------------------------------------------
    def parse(self) -> tuple[SovereignSuite | None, list[Problem]]:
        try:
            suite = parse_suite({k: self.body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        except InputError as err:
            return None, [stalled("InvalidSpec", "; ".join(str(p) for p in err.problems))]
        problems = check_suite(suite, self.clouds)
        if not problems and (remote := remote_cloud_problems(suite, self.clouds)):
            return None, [stalled("RemoteCloud", "; ".join(str(p) for p in remote))]
        if problems:
            reason = "UnknownCloud" if any("NationalCloud" in p.message for p in problems) else "InvalidSpec"
            extra = [str(p) for p in self.cloud_problems[:3]]
            return None, [stalled(reason, "; ".join([str(p) for p in problems] + extra))]
        return suite, []

    def capabilities(self) -> frozenset[str]:
        return frozenset(api for api in OPTIONAL_APIS
                         if any(self.ctx.cache.served(api, k) for k in CAPABILITY_KINDS[api]))

    def place(self, suite: SovereignSuite, contexts: list) -> dict[str, list[gpu.Placement]]:
        capacity: dict[str, gpu.Capacity] = {}
        return {c.tenant.country: gpu.place_tenant(self.ctx.cache, c, self.live, capacity) for c in contexts}

    def dereference(self, suite: SovereignSuite, contexts: list) -> tuple[list[dict[str, Any]], list[Problem]]:
        """Copies of the Secrets the suite references, for each tenant namespace. A referenced Secret must exist
        in the suite's namespace and be labelled referenceable by its owner (who opts in to sharing it); one the
        operator manages itself is never a source (api/secret_refs.py)."""
        copies, problems = [], []
        for index, c in enumerate(contexts):
            refs = secret_references(suite, index, c.tenant, c.components)
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

    def desired(self, result: RenderResult, copies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rendered manifests plus the Secret copies (right after each namespace's configuration), with the
        rotation hash on the pods that read a copy, stamped with the suite's UID and each object's hash."""
        manifests = roll_on_rotation(list(result.manifests), copies)
        idx = next((i for i, o in enumerate(manifests) if phase_of(o) not in ("namespace", "policy", "config")),
                   len(manifests))
        manifests = manifests[:idx] + copies + manifests[idx:]
        out = []
        for obj in manifests:
            if obj["kind"] == "Namespace":
                # Only a namespace the operator created carries the suite's UID (deletable with the suite); one a
                # platform team created for the namespace-scoped mode is adopted but never deleted.
                live = self.live.get(ObjectKey.of(obj)) or self.ctx.cache.tenant_namespaces.get(
                    "", obj["metadata"]["name"])
                created_by_us = live is None or bool((live["metadata"].get("annotations") or {}).get(ANN_OWNER))
                out.append(stamp(obj, self.uid if created_by_us else None))
            else:
                out.append(stamp(obj, self.uid))
        return out

    def jobs(self, desired: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], list[Problem]]:
        """Migration Jobs the held-back children wait for: (namespace, name) of the Complete ones. A Failed one is
        reported, and deleted after a backoff so that the next pass runs it again."""
        mem = self.ctx.memory(self.key)
        wanted = {(o["metadata"]["namespace"], o["metadata"]["annotations"][ANN_AFTER_JOB]) for o in desired
                  if (o["metadata"].get("annotations") or {}).get(ANN_AFTER_JOB)}
        ready, problems = set(), []
        for ns, name in sorted(wanted):
            key = ObjectKey("batch", "Job", ns, name)
            job = self.live.get(key)
            state = observe.job_state(job) if job else "Missing"
            if state == "Complete":
                ready.add((ns, name))
                mem.job_attempts.pop(name, None)
            elif state == "Failed":
                attempt = mem.job_attempts.get(name, 0)
                delay = min(self.ctx.settings.job_retry_cap, self.ctx.settings.job_retry_base * 2 ** attempt)
                failed = next((c for c in job["status"]["conditions"] if c.get("type") == "Failed"), {})
                left = delay - seconds_since(failed.get("lastTransitionTime"))
                problems.append(degraded("MigrationFailed", f"failed ({failed.get('reason') or 'Failed'}: "
                                         f"{failed.get('message') or ''}); run again "
                                         f"{'now' if left <= 0 else f'in {left:.0f} s'} (attempt {attempt + 1})", key))
                if left <= 0:
                    try:
                        self.ctx.kube.delete({"apiVersion": "batch/v1", "kind": "Job",
                                              "metadata": {"name": name, "namespace": ns}})
                        self.live.pop(key, None)
                        mem.job_attempts[name] = attempt + 1
                        self.requeue_after = 1.0
                    except ApiError as err:
                        problems.append(from_api_error(err, key))
                else:
                    self.requeue_after = max(1.0, left)
        return ready, problems

    # ---- the pass -----------------------------------------------------------------------------
    def run(self) -> PassResult:
        suite, problems = self.parse()
        if suite is None:
            return self.finish(None, [], problems, rendered=False)
        capabilities = self.capabilities()
        contexts = build_contexts(suite, self.clouds, capabilities)
        # a failing watch means what the pass reads may be stale: never report Ready on it
        watch_problems = [degraded("WatchFailed", e)
                          for e in self.ctx.cache.watch_errors({c.namespace for c in contexts})]
        placements = self.place(suite, contexts)
        try:
            result = self.ctx.render_pool.submit(
                render_suite, suite, self.clouds, capabilities,
                {c: {p.model: p.product for p in ps} for c, ps in placements.items()}).result()
        except InputError as err:
            return self.finish(None, [], [stalled("InvalidSpec", "; ".join(str(p) for p in err.problems))],
                               rendered=False)
        if suite.spec.paused:
            return self.finish(suite, self.health(suite, result, set()), [], models=self.models(contexts, placements),
                               paused=True)
        copies, problems = self.dereference(suite, contexts)
        if problems:
            return self.finish(suite, self.health(suite, result, set()), problems)
        desired = self.desired(result, copies)

        applier = Applier(self.ctx, self.key, self.live)
        for ns in (o for o in desired if o["kind"] == "Namespace"):
            applier.ensure_namespace(ns)
        if any(p.reason == "NamespaceConflict" for p in applier.problems):
            return self.finish(suite, [], applier.problems)  # nothing half-applied in someone else's namespace
        applier.ensure_secrets(result.secrets)
        ready_jobs, job_problems = self.jobs(desired)
        waiting = applier.apply_all([o for o in desired if o["kind"] != "Namespace" or
                                     ObjectKey.of(o) in self.live], ready_jobs)

        rendered = {component_of(o) for o in desired}
        pruner = Pruner(self.ctx, self.key, self.uid, self.live)
        if not applier.problems and not watch_problems:
            # prune only after a complete apply on a current view: never delete while the new state is partial
            wanted = {ObjectKey.of(o) for o in desired}
            wanted |= {ObjectKey("", "Secret", s.namespace, s.name) for s in result.secrets}
            pruner.readopt(rendered)
            pruner.prune(wanted, rendered, retain=suite.spec.deletion_policy == "Retain")
        self.events += pruner.events
        problems = applier.problems + job_problems + pruner.problems + watch_problems
        out = self.finish(suite, self.health(suite, result, applier.applied), problems, waiting=waiting,
                          models=self.models(contexts, placements))
        out.writes = applier.writes + pruner.writes
        out.written = applier.written
        out.complete = not problems and not waiting
        return out

    # ---- observing ------------------------------------------------------------------------------
    def health(self, suite: SovereignSuite, result: RenderResult, applied: set[ObjectKey]
               ) -> list[observe.ComponentHealth]:
        by_comp = observe.group_by_component(
            [o for k, o in self.live.items() if k.kind in ("Deployment", "StatefulSet", "Job")])
        self._applied = applied
        health = []
        for (country, comp), objs in sorted(result.by_component.items()):
            if comp == "tenancy":
                continue
            ns = f"{suite.name}-{country}"
            h = observe.component_health(country, ns, comp, by_comp.get((ns, comp), []), pods_of=self.pods_of)
            missing = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet") and ObjectKey.of(o) not in
                       self.live]
            for o in missing:
                h.desired += int(o["spec"].get("replicas", 1))
                h.waiting.append(f"{o['kind']}/{o['metadata']['name']}")
            if missing and not h.reason:
                h.reason, h.message = "Progressing", "waiting for " + ", ".join(h.waiting[:5])
            health.append(h)
        return health

    def pods_of(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """A workload's pods, from the cache (none for a workload this pass just wrote)."""
        if ObjectKey.of(workload) in self._applied:
            return []
        ns = workload["metadata"]["namespace"]
        if ns not in self._pods:
            self._pods[ns] = self.ctx.cache.pods_in(ns)
        match = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return [p for p in self._pods[ns] if match.items() <= (p["metadata"].get("labels") or {}).items()]

    def models(self, contexts: list, placements: dict[str, list[gpu.Placement]]) -> dict[str, list[dict[str, Any]]]:
        out = {}
        for c in contexts:
            ps = placements.get(c.tenant.country) or []
            if ps:
                entries = gpu.model_states(c, ps, self.live, self.pods_of, gpu.quota_problem(c, ps))
                gpu.record(self.key.namespace, self.key.name, c.tenant.country, entries)
                out[c.namespace] = entries
        return out

    def finish(self, suite: SovereignSuite | None, health: list[observe.ComponentHealth], problems: list[Problem],
               *, rendered: bool = True, paused: bool = False, waiting: list[str] | None = None,
               models: dict[str, list[dict[str, Any]]] | None = None) -> PassResult:
        gpu_problems = tuple((m["reason"], f"{ns.rsplit('-', 1)[-1]}/llm/{m['name']}: {m['reason']}: "
                              f"{m['message']}") for ns, entries in sorted((models or {}).items()) for m in entries
                             if m["reason"] in ("InsufficientGPU", "InsufficientGPUMemory", "GPUQuotaExceeded"))
        verdict = conditions(Findings(self.generation, tuple(problems), tuple(health), tuple(waiting or ()),
                                      gpu_problems, paused=paused, rendered=rendered))
        status = build_status(self.old_status, verdict.conditions, self.generation, suite, health, models)
        self.events += transitions(self.old_status.get("conditions") or [], status["conditions"])
        requeue = self.requeue_after
        if verdict.progressing:
            requeue = min(requeue or self.ctx.settings.requeue_seconds, self.ctx.settings.requeue_seconds)
        return PassResult(status=status, events=self.events, problems=list(problems), health=health,
                          requeue_after=requeue)


def remote_cloud_problems(suite: SovereignSuite, clouds: dict) -> list:
    """A tenant whose cloud names a member cluster (``kubeconfigSecretRef``, set by ``cloud join``) is never
    applied to this cluster instead: its Secrets and data would sit in another country's etcd. Until push mode
    applies it there (docs/multi-cluster.md), the suite is Stalled and nothing is written."""
    from ..api.validation import Problem as FieldProblem

    return [FieldProblem(f"spec.tenants[{i}].cloud", f"NationalCloud {t.cloud!r} is a member cluster "
                         "(kubeconfigSecretRef): this "
                         "operator version applies tenants to its own cluster only, and will not place this tenant's "
                         "data outside its country's cluster")
            for i, t in enumerate(suite.spec.tenants) if clouds[t.cloud].spec.kubeconfig_secret_ref is not None]


def seconds_since(stamp: str | None) -> float:
    from datetime import datetime, timezone

    if not stamp:
        return 0.0
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return (datetime.now(timezone.utc) - then).total_seconds()


def build_status(old: dict[str, Any], conds: list[dict[str, Any]], generation: int, suite: SovereignSuite | None,
                 health: list[observe.ComponentHealth], models: dict[str, list[dict[str, Any]]] | None
                 ) -> dict[str, Any]:
    status: dict[str, Any] = {"observedGeneration": generation,
                              "conditions": merge_conditions(old.get("conditions") or [], conds, now())}
    if suite is not None:
        tenants = [(t.country, f"{suite.name}-{t.country.lower()}") for t in suite.spec.tenants]
        status["countries"] = ",".join(t.country for t in suite.spec.tenants)
        ts = tenants_status(health, tenants, models or {})
        status["tenants"] = ts
        status["readySummary"] = f"{sum(1 for t in ts if t['ready'])}/{len(ts)}"
    else:
        for key in ("countries", "tenants", "readySummary"):
            if key in old:
                status[key] = old[key]
    return status


def reconcile(ctx: OperatorContext, body: dict[str, Any]) -> PassResult:
    return Pass(ctx, body).run()


def cleanup(ctx: OperatorContext, body: dict[str, Any]) -> PassResult:
    """On deletion: delete the suite's children following ``deletionPolicy``. The result's problems name every
    child that could not be deleted; the worker keeps the finalizer until there are none."""
    p = Pass(ctx, body)
    spec = body.get("spec") or {}
    if spec.get("paused"):
        # Paused means hands off, deletion included (like a suspended Flux Kustomization): the finalizer goes,
        # every child stays as it is (docs/architecture.md).
        return PassResult(status=body.get("status") or {}, complete=True)
    pruner = Pruner(ctx, p.key, p.uid, p.live)
    pruner.delete([o for o in p.live.values() if pruner.ours(o)], retain=(spec.get("deletionPolicy") or "Retain")
                  == "Retain")
    verdict = conditions(Findings(p.generation, tuple(pruner.problems), deleting=True))
    status = build_status(p.old_status, verdict.conditions, p.generation, None, [], None)
    events = pruner.events + [("Warning", pr.reason, f"cannot delete {pr}") for pr in pruner.problems]
    return PassResult(status=status, events=events, problems=pruner.problems, writes=pruner.writes,
                      complete=not pruner.problems)
