"""The reconcile pipeline: one idempotent pass over a SovereignSuite.

    dereference -> validate -> render -> ensure secrets -> server-side apply (ordered) -> prune -> status

Every step reads before it writes, and writes only what differs: on a converged suite a pass sends no
mutating request at all. The Kopf handlers (handlers.py) only call ``reconcile`` and ``cleanup``.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..api.models import NationalCloud, SovereignSuite
from ..api.validation import InputError, Problem, check_suite, parse_cloud, parse_suite
from ..components.base import (
    LABEL_COMPONENT,
    LABEL_RETAINED,
    LABEL_SUITE,
    LABEL_SUITE_NS,
    OPTIONAL_APIS,
    build_contexts,
)
from ..render import RenderResult, phase_of, render_suite
from . import gpu, observe
from .compare import contains, first_difference
from .kube import ApiError, Kube, ref
from .secrets import LABEL_GENERATED, copy_manifest, ensure_generated, referenced_secrets
from .status import condition, merge_conditions, now, tenants_status

log = logging.getLogger(__name__)

FIELD_MANAGER = "sovereign-suite-operator"
FINALIZER = "sovereignsuite.io/cleanup"
ANN_WAIT_FOR = "sovereignsuite.io/wait-for"
ANN_AFTER_JOB = "sovereignsuite.io/after-job"

# Every kind a renderer may produce: listed by label to find drift and orphans. Kinds the cluster does not
# serve (CloudNativePG, Prometheus Operator) are skipped by Kube.list.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ResourceQuota"),
    ("v1", "LimitRange"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("v1", "ServiceAccount"),
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
    ("monitoring.coreos.com/v1", "PrometheusRule"),
)
CAPABILITY_KINDS = {"monitoring.coreos.com/v1": ("ServiceMonitor",), "postgresql.cnpg.io/v1": ("Cluster",)}
# Objects of one apply phase go to the API server in parallel, over one pool shared by every pass.
APPLY_POOL = ThreadPoolExecutor(max_workers=int(os.environ.get("SOVEREIGN_SUITE_APPLY_WORKERS", "8")),
                                thread_name_prefix="apply")
# Rendering is pure and fast (tens of ms for four countries); it runs on one thread so that the YAML parser's
# native allocator keeps one heap, not one per worker thread (measured: 16 concurrent passes took the
# operator's RSS from ~80 to ~160 MiB; on one thread it stays near its idle size).
RENDER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
# What Retain keeps: the data.
RETAINED_KINDS = {"PersistentVolumeClaim"}


@dataclass
class Settings:
    job_wait_seconds: float = 30.0  # how long one pass waits for a migration Job before coming back later
    requeue_seconds: float = 5.0  # how soon a pass comes back while children are still rolling out


@dataclass
class Outcome:
    status: dict[str, Any]
    writes: int = 0
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    health: list[observe.ComponentHealth] = field(default_factory=list)
    error_reasons: list[str] = field(default_factory=list)  # for metrics (bounded set of reasons)
    complete: bool = False  # every rendered child was applied (nothing held back, no error)


def selector(name: str, namespace: str) -> str:
    return f"{LABEL_SUITE}={name},{LABEL_SUITE_NS}={namespace}"


def identity(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""
    return group, obj["kind"], meta.get("namespace") or "", meta["name"]


_clouds_cache: tuple[float, dict[str, NationalCloud], list[Problem]] | None = None
_clouds_lock = threading.Lock()
CLOUDS_TTL = 2.0  # seconds a listing of the NationalClouds serves every pass (forget_clouds() on a change)


def forget_clouds() -> None:
    global _clouds_cache
    with _clouds_lock:
        _clouds_cache = None


def load_clouds(kube: Kube) -> tuple[dict[str, NationalCloud], list[Problem]]:
    """The NationalClouds, listed at most once per CLOUDS_TTL for all passes (many suites, one listing)."""
    global _clouds_cache
    with _clouds_lock:
        if _clouds_cache is not None and time.monotonic() - _clouds_cache[0] < CLOUDS_TTL:
            return dict(_clouds_cache[1]), list(_clouds_cache[2])
        clouds, problems = _list_clouds(kube)
        _clouds_cache = (time.monotonic(), clouds, problems)
        return dict(clouds), list(problems)


def _list_clouds(kube: Kube) -> tuple[dict[str, NationalCloud], list[Problem]]:
    clouds: dict[str, NationalCloud] = {}
    problems: list[Problem] = []
    for doc in kube.list("sovereignsuite.io/v1alpha1", "NationalCloud"):
        doc = {k: v for k, v in doc.items() if k in ("apiVersion", "kind", "metadata", "spec")}
        doc["metadata"] = {"name": doc["metadata"]["name"]}
        try:
            cloud = parse_cloud(doc)
            clouds[cloud.name] = cloud
        except InputError as err:
            problems += err.problems
    return clouds, problems


def list_children(kube: Kube, name: str, namespace: str) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Every child of the suite, found by its labels: its Namespaces first, then each namespaced kind in each of
    them. Listing inside a namespace costs the API server that namespace's objects only (a cluster-wide listing
    by label scans every object of the kind), and needs no cluster-wide rights (namespace-scoped mode)."""
    sel = selector(name, namespace)
    live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for api_version, kind in CHILD_KINDS:
        if kind != "Namespace":
            tenants = sorted(k[3] for k in live if k[1] == "Namespace")
            objs = [o for ns in tenants for o in kube.list(api_version, kind, label_selector=sel, namespace=ns)]
        else:
            objs = kube.list(api_version, kind, label_selector=sel)
        for obj in objs:
            live[identity(obj)] = obj
    return live


class Reconciler:
    """One pass over one suite. Not shared between threads (the handlers lock per suite)."""

    def __init__(self, kube: Kube, body: dict[str, Any], settings: Settings | None = None):
        self.kube = kube
        self.body = body
        self.settings = settings or Settings()
        self.name = body["metadata"]["name"]
        self.namespace = body["metadata"]["namespace"]
        self.generation = int(body["metadata"].get("generation") or 1)
        self.old_status = body.get("status") or {}
        self.writes = 0
        self._writes_lock = threading.Lock()
        self._applied: set[tuple[str, str, str, str]] = set()  # children written in this pass
        self._pods: dict[str, list[dict[str, Any]]] = {}  # namespace -> its pods, listed once per pass
        self._result_secrets: list = []  # the Secrets the render declared (kept from pruning)
        self._ctx_cache: list | None = None
        self.events: list[tuple[str, str, str]] = []
        self.errors: list[tuple[str, str, str]] = []  # (severity Stalled|Degraded, reason, message)

    # ---- helpers ------------------------------------------------------------------------------
    def _wrote(self, verb: str, obj: dict[str, Any]) -> None:
        with self._writes_lock:  # applies of one phase run in parallel
            self.writes += 1
        log.debug("%s %s", verb, ref(obj))

    def _fail(self, obj: dict[str, Any], err: ApiError) -> None:
        severity = "Stalled" if err.status in (400, 422) else "Degraded"
        reason = {400: "InvalidChild", 422: "InvalidChild", 409: "Conflict", 403: "Forbidden"}.get(
            err.status, "ApiError")
        self.errors.append((severity, reason, f"{ref(obj)}: {err.status} {err.reason}: {err.message}"))

    # ---- the pass -----------------------------------------------------------------------------
    def run(self) -> Outcome:
        spec_problems: list[Problem] = []
        suite: SovereignSuite | None = None
        try:
            suite = parse_suite({k: self.body[k] for k in ("apiVersion", "kind", "metadata", "spec")})
        except InputError as err:
            spec_problems = err.problems
        clouds, cloud_problems = load_clouds(self.kube)
        self._clouds = clouds
        if suite is not None:
            spec_problems = check_suite(suite, clouds)
        if suite is None or spec_problems:
            msg = "; ".join(str(p) for p in spec_problems + cloud_problems[:3])
            reason = "UnknownCloud" if any("NationalCloud" in p.message for p in spec_problems) else "InvalidSpec"
            return self._finish(None, [], stalled=(reason, msg))  # keeps the last observed tenants

        live = list_children(self.kube, self.name, self.namespace)
        placements = self._place(suite, live)
        try:
            result = RENDER_POOL.submit(render_suite, suite, clouds, self._capabilities(),
                                        {c: {p.model: p.product for p in ps} for c, ps in placements.items()}
                                        ).result()
        except InputError as err:
            return self._finish(None, [], stalled=("InvalidSpec", "; ".join(str(p) for p in err.problems)))
        self._result_secrets = result.secrets
        if suite.spec.paused:
            health = self._health(suite, result, live)
            return self._finish(suite, health, paused=True, models=self._models(suite, placements, live))

        desired = self._with_referenced_secrets(suite, result)
        if desired is None:
            return self._finish(suite, self._health(suite, result, live))
        if not self._check_namespaces(result, live):
            return self._finish(suite, [])
        self._ensure_generated(result, live)
        waiting = self._apply_all(desired, live)
        self._prune(suite, desired, live)
        health = self._health(suite, result, live)
        return self._finish(suite, health, waiting=waiting, models=self._models(suite, placements, live))

    def _contexts(self, suite: SovereignSuite) -> list:
        """The tenants' render contexts, built once per pass (placement, Secrets and status all need them)."""
        if self._ctx_cache is None:
            self._ctx_cache = build_contexts(suite, self._clouds, self._capabilities())
        return self._ctx_cache

    def _place(self, suite: SovereignSuite, live: dict) -> dict[str, list[gpu.Placement]]:
        """country -> placements of its models (capacity observed once per cloud per pass)."""
        capacity: dict[str, gpu.Capacity] = {}
        return {ctx.tenant.country: gpu.place_tenant(self.kube, ctx, live, capacity)
                for ctx in self._contexts(suite)}

    def _models(self, suite: SovereignSuite, placements: dict[str, list[gpu.Placement]], live: dict
                ) -> dict[str, list[dict[str, Any]]]:
        """namespace -> status entries of its models."""
        out = {}
        for ctx in self._contexts(suite):
            ps = placements.get(ctx.tenant.country) or []
            if not ps:
                continue
            entries = gpu.model_states(ctx, ps, live, self._pods_of, gpu.quota_problem(ctx, ps))
            gpu.record(self.namespace, self.name, ctx.tenant.country, entries)
            out[ctx.namespace] = entries
        return out

    def _capabilities(self) -> frozenset[str]:
        return frozenset(api for api in OPTIONAL_APIS
                         if any(self.kube.kind(api, k) for k in CAPABILITY_KINDS[api]))

    def _with_referenced_secrets(self, suite: SovereignSuite, result: RenderResult) -> list[dict[str, Any]] | None:
        """The rendered manifests plus copies of referenced Secrets, placed right after each namespace's
        configuration. None (with a Stalled error) when a referenced Secret does not exist."""
        sources: dict[str, dict[str, Any] | None] = {}
        copies: list[dict[str, Any]] = []
        missing: list[str] = []
        for ctx in self._contexts(suite):
            for r in referenced_secrets(suite, ctx):
                if r.name not in sources:
                    sources[r.name] = self.kube.get("v1", "Secret", r.name, self.namespace)
                src = sources[r.name]
                if src is None:
                    missing.append(f"Secret {self.namespace}/{r.name} ({r.path}) not found")
                    continue
                copies.append(copy_manifest(src, ctx.namespace, ctx.labels(r.component)))
        if missing:
            self.errors.append(("Stalled", "MissingSecret", "; ".join(sorted(set(missing)))))
            return None
        manifests = list(result.manifests)
        # insert before the first object of the "data" phase (copies are configuration)
        idx = next((i for i, o in enumerate(manifests) if phase_of(o) not in ("namespace", "policy", "config")),
                   len(manifests))
        return manifests[:idx] + copies + manifests[idx:]

    def _check_namespaces(self, result: RenderResult, live: dict) -> bool:
        """A tenant namespace that exists but belongs to someone else is never taken over."""
        for obj in result.manifests:
            if obj["kind"] != "Namespace" or identity(obj) in live:
                continue
            other = self.kube.get("v1", "Namespace", obj["metadata"]["name"])
            if other is None:
                continue
            labels = other["metadata"].get("labels") or {}
            owner = f"{labels.get(LABEL_SUITE_NS, '?')}/{labels.get(LABEL_SUITE, '?')}"
            self.errors.append(("Stalled", "NamespaceConflict",
                                f"Namespace {obj['metadata']['name']} exists and is not managed by this suite "
                                f"(labels say {owner})"))
            return False
        return True

    def _ensure_generated(self, result: RenderResult, live: dict) -> None:
        for spec in result.secrets:
            current = live.get(("", "Secret", spec.namespace, spec.name))
            if current is None and ("", "Namespace", "", spec.namespace) not in live:
                # brand-new namespace: apply it (with its baseline) before the Secret
                ns = next(o for o in result.manifests if o["kind"] == "Namespace"
                          and o["metadata"]["name"] == spec.namespace)
                self._apply_one(ns, live)
            try:
                written = ensure_generated(self.kube, spec, current)
                if written is not None:
                    self._wrote("generate", {"kind": "Secret", "metadata": {"name": spec.name,
                                                                            "namespace": spec.namespace}})
                    live[("", "Secret", spec.namespace, spec.name)] = {"apiVersion": "v1", "kind": "Secret",
                                                                       **written}
            except ApiError as err:
                self._fail({"kind": "Secret", "metadata": {"name": spec.name, "namespace": spec.namespace}}, err)

    def _apply_one(self, obj: dict[str, Any], live: dict) -> dict[str, Any] | None:
        key = identity(obj)
        current = live.get(key)
        if current is not None and (contains(current, obj) or obj["kind"] == "Job"):
            # a Job's template is immutable: a new image gives a new Job name (renderers hash it)
            return current
        if current is not None:
            log.info("drift on %s at %s", ref(obj), first_difference(current, obj))
        try:
            applied = self.kube.apply(obj, FIELD_MANAGER)
        except ApiError as err:
            if err.status == 404 and "the cluster does not serve" in err.message:
                self.errors.append(("Stalled", "MissingAPI", f"{ref(obj)}: {err.message}"))
            else:
                self._fail(obj, err)
            return None
        self._wrote("apply", obj)
        self._applied.add(key)
        live[key] = applied
        return applied

    def _apply_all(self, desired: list[dict[str, Any]], live: dict) -> list[str]:
        """Apply phase by phase (the objects of one phase in parallel); what depends on a migration Job comes
        last, once the Job completed (a pass waits for it a bounded time), so the Job runs while the rest of
        the suite is applied."""
        waiting: list[str] = []
        held: list[dict[str, Any]] = []
        for _, group in itertools.groupby(desired, key=phase_of):
            now = []
            for obj in group:
                (held if (obj["metadata"].get("annotations") or {}).get(ANN_AFTER_JOB) else now).append(obj)
            self._apply_parallel(now, live)
        job_state = self._wait_jobs(
            {(o["metadata"].get("namespace"), o["metadata"]["annotations"][ANN_AFTER_JOB]) for o in held}, live)
        ready = []
        for obj in held:
            meta = obj["metadata"]
            job = (meta.get("namespace"), meta["annotations"][ANN_AFTER_JOB])
            if job_state[job] == "Complete":
                ready.append(obj)
            else:
                waiting.append(f"{ref(obj)} waits for Job {job[1]} ({job_state[job]})")
        self._apply_parallel(ready, live)
        return waiting

    def _apply_parallel(self, objs: list[dict[str, Any]], live: dict) -> None:
        if len(objs) <= 1:
            for obj in objs:
                self._apply_one(obj, live)
            return
        list(APPLY_POOL.map(lambda o: self._apply_one(o, live), objs))

    def _wait_jobs(self, jobs: set[tuple[str, str]], live: dict) -> dict[tuple[str, str], str]:
        """(namespace, name) -> Complete, Failed, Running or Missing, polling the Jobs still running together
        until none is or ``job_wait_seconds`` passed."""
        state: dict[tuple[str, str], str] = {}
        deadline = time.monotonic() + self.settings.job_wait_seconds
        while True:
            for ns, name in sorted(jobs):
                if state.get((ns, name)) not in (None, "Running"):
                    continue
                job = live.get(("batch", "Job", ns, name))
                state[(ns, name)] = "Missing" if job is None else observe.job_state(job)
            running = [j for j, st in state.items() if st == "Running"]
            if not running or time.monotonic() > deadline:
                return state
            time.sleep(0.2)
            for ns, name in running:
                job = self.kube.get("batch/v1", "Job", name, ns)
                if job is not None:
                    live[("batch", "Job", ns, name)] = job

    def _prune(self, suite: SovereignSuite, desired: list[dict[str, Any]], live: dict) -> None:
        wanted = {identity(o) for o in desired}
        wanted |= {("", "Secret", s.namespace, s.name) for s in self._result_secrets}
        components = {(o["metadata"].get("namespace"), (o["metadata"].get("labels") or {}).get(LABEL_COMPONENT))
                      for o in desired}
        retain = suite.spec.deletion_policy == "Retain"
        orphans = [o for k, o in live.items() if k not in wanted]
        self._delete(orphans, retain, keep_pvc=lambda o: (o["metadata"].get("namespace"),
                     (o["metadata"].get("labels") or {}).get(LABEL_COMPONENT)) in components, live=live)

    def _delete(self, objs: list[dict[str, Any]], retain: bool, keep_pvc=lambda o: False, live=None) -> None:
        """Delete ``objs``; with ``retain`` keep PVCs, generated Secrets and the namespaces holding them,
        labelled as retained."""
        keep_ns: set[str] = set()
        for obj in sorted(objs, key=lambda o: o["kind"] == "Namespace"):  # namespaces last
            labels = obj["metadata"].get("labels") or {}
            kind = obj["kind"]
            if kind == "PersistentVolumeClaim" and keep_pvc(obj):
                continue  # a StatefulSet's claim of a component that is still rendered
            is_data = kind in RETAINED_KINDS or (kind == "Secret" and labels.get(LABEL_GENERATED) == "true")
            if kind == "Namespace":
                name = obj["metadata"]["name"]
                if retain and (name in keep_ns or self._holds_data(name)):
                    self._mark_retained(obj)
                    continue
            elif retain and is_data:
                keep_ns.add(obj["metadata"]["namespace"])
                self._mark_retained(obj)
                continue
            try:
                if self.kube.delete(obj):
                    self._wrote("delete", obj)
                    if live is not None:
                        live.pop(identity(obj), None)
            except ApiError as err:
                self._fail(obj, err)

    def _holds_data(self, namespace: str) -> bool:
        return bool(self.kube.list("v1", "PersistentVolumeClaim", namespace=namespace))

    def _mark_retained(self, obj: dict[str, Any]) -> None:
        labels = obj["metadata"].get("labels") or {}
        if labels.get(LABEL_RETAINED) == "true":
            return
        meta = obj["metadata"]
        try:
            self.kube.merge_patch(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"),
                                  {"metadata": {"labels": {LABEL_RETAINED: "true"}}})
            self._wrote("retain", obj)
        except ApiError as err:
            if err.status != 404:
                self._fail(obj, err)

    def _health(self, suite: SovereignSuite, result: RenderResult, live: dict) -> list[observe.ComponentHealth]:
        by_comp = observe.group_by_component(
            [o for k, o in live.items() if k[1] in ("Deployment", "StatefulSet", "Job")])
        desired_comps = {(ns, comp) for (country, comp) in result.by_component
                         for ns in [f"{suite.name}-{country}"] if comp != "tenancy"}
        health = []
        for ns, comp in sorted(desired_comps):
            country = ns.rsplit("-", 1)[-1]
            objs = by_comp.get((ns, comp), [])
            # count workloads that are rendered but not (yet) applied as not ready
            rendered = [o for o in result.by_component.get((country, comp), [])
                        if o["kind"] in ("Deployment", "StatefulSet")]
            h = observe.component_health(country, ns, comp, objs, pods_of=self._pods_of)
            missing = [o for o in rendered if identity(o) not in live]
            for o in missing:
                h.desired += int(o["spec"].get("replicas", 1))
                h.waiting.append(f"{o['kind']}/{o['metadata']['name']}")
            if missing and not h.reason:
                h.reason, h.message = "Progressing", "waiting for " + ", ".join(h.waiting[:5])
            health.append(h)
        return health

    def _pods_of(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        """The workload's pods, from one listing per namespace and pass (a workload applied in this very pass
        has no pods worth a look yet)."""
        if identity(workload) in self._applied:
            return []
        ns = workload["metadata"]["namespace"]
        if ns not in self._pods:
            self._pods[ns] = self.kube.list("v1", "Pod", namespace=ns)
        match = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return [p for p in self._pods[ns]
                if match.items() <= ((p["metadata"].get("labels") or {}).items())]

    # ---- status -------------------------------------------------------------------------------
    def _finish(self, suite: SovereignSuite | None, health: list[observe.ComponentHealth], *,
                stalled: tuple[str, str] | None = None, paused: bool = False,
                waiting: list[str] | None = None, models: dict[str, list[dict[str, Any]]] | None = None) -> Outcome:
        gen = self.generation
        stalled_errors = [e for e in self.errors if e[0] == "Stalled"]
        degraded_errors = [e for e in self.errors if e[0] == "Degraded"]
        if stalled is None and stalled_errors:
            stalled = (stalled_errors[0][1], "; ".join(e[2] for e in stalled_errors))
        not_ready = [h for h in health if not h.is_ready]
        unschedulable = [h for h in not_ready if h.reason == "Unschedulable"]
        conds = []
        if stalled:
            conds.append(condition("Ready", False, stalled[0], stalled[1], gen))
            conds.append(condition("Reconciling", False, stalled[0], "fix the spec or the cluster", gen))
            conds.append(condition("Stalled", True, stalled[0], stalled[1], gen))
        else:
            ready = not not_ready and not degraded_errors and suite is not None
            if ready:
                conds.append(condition("Ready", True, "Ready", f"{len(health)} components ready", gen))
            else:
                detail = [f"{h.country}/{h.name}: {h.reason} {h.message}".strip() for h in not_ready]
                detail += [e[2] for e in degraded_errors]
                reason = "Paused" if paused else ("ComponentsNotReady" if not_ready else degraded_errors[0][1])
                conds.append(condition("Ready", False, reason, "; ".join(detail), gen))
            if paused:
                conds.append(condition("Reconciling", False, "Paused", "spec.paused is true: the operator writes nothing", gen))
            elif ready:
                conds.append(condition("Reconciling", False, "Converged", "every child is applied and ready", gen))
            else:
                msg = "; ".join((waiting or [])[:5]) or "waiting for components to become ready"
                conds.append(condition("Reconciling", True, "Progressing", msg, gen))
            conds.append(condition("Stalled", False, "NotStalled", "", gen))
        gpu_problems = [(m["reason"], f"{ns.rsplit('-', 1)[-1]}/llm/{m['name']}: {m['reason']}: {m['message']}")
                        for ns, entries in sorted((models or {}).items()) for m in entries
                        if m["reason"] in ("InsufficientGPU", "GPUQuotaExceeded")]
        degraded_msgs = [e[2] for e in degraded_errors] + [g[1] for g in gpu_problems] + [
            f"{h.country}/{h.name}: {h.message}" for h in unschedulable]
        if degraded_msgs:
            reason = degraded_errors[0][1] if degraded_errors else (
                gpu_problems[0][0] if gpu_problems else "Unschedulable")
            conds.append(condition("Degraded", True, reason, "; ".join(degraded_msgs), gen))
        else:
            conds.append(condition("Degraded", False, "NotDegraded", "", gen))
        conds = merge_conditions(self.old_status.get("conditions") or [], conds, now())

        status: dict[str, Any] = {"observedGeneration": gen, "conditions": conds}
        if suite is not None:
            tenants = [(t.country, f"{suite.name}-{t.country.lower()}") for t in suite.spec.tenants]
            status["countries"] = ",".join(t.country for t in suite.spec.tenants)
            ts = tenants_status(health, tenants, models or {})
            status["tenants"] = ts
            status["readySummary"] = f"{sum(1 for t in ts if t['ready'])}/{len(ts)}"
        else:
            for key in ("countries", "tenants", "readySummary"):
                if key in self.old_status:
                    status[key] = self.old_status[key]
        self._transitions(conds)
        # Come back soon while children are still rolling out (the status follows them); a suite that is
        # Ready, Stalled or waiting on something that needs a person is left to the drift timer.
        progressing = any(c["type"] == "Reconciling" and c["status"] == "True" for c in conds)
        blocked = bool(unschedulable or degraded_errors or gpu_problems)
        return Outcome(status=status, writes=self.writes, events=self.events, health=health,
                       complete=suite is not None and not stalled and not waiting and not self.errors and not paused,
                       requeue_after=self.settings.requeue_seconds if progressing and not blocked else None,
                       error_reasons=[e[1] for e in self.errors] + (["Stalled:" + stalled[0]] if stalled else []))

    def _transitions(self, conds: list[dict[str, Any]]) -> None:
        before = {c.get("type"): c for c in self.old_status.get("conditions") or []}
        for c in conds:
            prev = before.get(c["type"])
            if prev and prev.get("status") == c["status"] and prev.get("reason") == c["reason"]:
                continue
            if c["type"] == "Ready" and (prev or c["status"] == "True"):
                kind = "Normal" if c["status"] == "True" else "Warning"
                self.events.append((kind, "Ready" if c["status"] == "True" else c["reason"], c["message"][:1000]))
            elif c["type"] in ("Stalled", "Degraded") and c["status"] == "True":
                self.events.append(("Warning", c["reason"], c["message"][:1000]))


def reconcile(kube: Kube, body: dict[str, Any], settings: Settings | None = None) -> Outcome:
    return Reconciler(kube, body, settings).run()


def cleanup(kube: Kube, body: dict[str, Any], settings: Settings | None = None) -> int:
    """On deletion: delete the suite's children following ``deletionPolicy``. Returns the number of writes."""
    r = Reconciler(kube, body, settings)
    policy = ((body.get("spec") or {}).get("deletionPolicy")) or "Retain"
    live = list_children(kube, r.name, r.namespace)
    r._delete(list(live.values()), retain=policy == "Retain")
    return r.writes
