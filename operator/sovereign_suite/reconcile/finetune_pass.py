"""One idempotent pass over a FineTune (docs/llm-finetuning.md, "The controller"):

    parse -> check (finetune_checks, against the suites and clouds the context holds) -> locate (the tenant's
    cluster, as a suite pass finds it) -> render (components/finetune, pure) -> apply (Applier: a converged
    FineTune writes nothing) -> observe (the live Job and its pod) -> status (finetune_status, pure)

Every read but two comes from the watch caches, and those two are made once, not on every pass: the pod of a Job
that has ended is no longer in the pod cache (it keeps running pods only) and carries the trainer's result in its
termination message, so it is read with one list request when the Job has ended (then remembered: FineTuneMemory);
the adapters ConfigMap's data (the caches keep no data) is read once per resourceVersion the cache shows. A
converged FineTune's passes read nothing. The Job's pod template is immutable: when what the run does changes (the run hash of
components/finetune), the old Job is deleted with its pods and the next pass creates the new one.
The worker (finetune_worker.py) adds the finalizer, writes the status and runs the deletion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api.finetune_models import FineTune, Promotion
from ..api.finetune_models import promoted as gate
from ..api.models import SovereignSuite
from ..api.validation import InputError, parse_suite, problems_from
from ..components import finetune as renderer
from . import gpu
from .apply import Applier
from .context import OperatorContext
from .converge import stamp
from .finetune_artifacts import credentials_problem
from .finetune_checks import Resolved, check_finetune
from ..components.llm.adapters import loader_config_name
from .finetune_serving import is_served, served_name
from .finetune_status import finetune_status, termination_message, trainer_result
from .finetune_quota import FINE_TUNING_QUOTA, quota_refusal
from .finetune_store import FineTuneKey, FineTuneMemory, suite_of_body
from .gpu_memory import product_memory
from .kube import ApiError
from .problems import ObjectKey, Problem, SuiteKey, degraded, from_api_error, stalled
from .targets import REMOTE, Target

log = logging.getLogger(__name__)

JOB_KIND = ("batch/v1", "Job")
POLICY_KIND = ("networking.k8s.io/v1", "NetworkPolicy")
RESTART_DELAY = 1.0  # after deleting a Job whose run changed: look again (its deletion event also enqueues)


@dataclass
class FineTuneResult:
    status: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    writes: int = 0
    requeue_after: float | None = None


def parse(body: dict[str, Any]) -> tuple[FineTune | None, list[Problem]]:
    """The FineTune, or an InvalidSpec problem naming each bad field (the CRD's schema refuses most of them
    first; this is what a FineTune written before a schema change, or with the schema off, gets)."""
    try:
        return FineTune.model_validate({k: body[k] for k in ("apiVersion", "kind", "metadata", "spec")
                                        if k in body}), []
    except ValidationError as err:
        return None, [stalled("InvalidSpec", "; ".join(str(p) for p in problems_from(err)))]


def suite_problem(ctx: OperatorContext, body: dict[str, Any]) -> tuple[SovereignSuite | None, list[Problem]]:
    """The suite the FineTune names, parsed from what the context holds; a suite that is invalid or being
    deleted is a problem of the FineTune's spec.suite (absent: check_finetune says SuiteNotFound)."""
    key = suite_of_body(body)
    doc = ctx.suite(key) if key is not None else None
    if doc is None:
        return None, []
    where = f"spec.suite: SovereignSuite {key}"
    if doc["metadata"].get("deletionTimestamp"):
        return None, [stalled("SuiteNotFound", f"{where} is being deleted")]
    try:
        return parse_suite({k: doc[k] for k in ("apiVersion", "kind", "metadata", "spec")}), []
    except InputError as err:
        return None, [stalled("SuiteInvalid", f"{where} is invalid (its own status says why): "
                              + "; ".join(str(p) for p in err.problems[:3]))]


def gpu_memory_of(target: Target, resolved_cloud: Any) -> dict[str, int]:
    """Memory of one GPU of each product of the cloud's nodes in the tenant's cluster (the nodes' label), as GPU
    placement reads it (gpu.observe), for the training memory check."""
    memory: dict[str, list[int | None]] = {}
    for node in gpu.observe(target.cache, resolved_cloud).nodes:
        memory.setdefault(node.product, []).append(node.gpu_memory_mib)
    out = {p: product_memory(memory, p) for p in memory}
    return {p: m for p, m in out.items() if m}


def locate(ctx: OperatorContext, resolved: Resolved) -> Target | Problem:
    """The tenant's cluster (ctx.target_for: local, a member, or REMOTE in pull mode)."""
    found = ctx.target_for(resolved.cloud)
    if found == REMOTE:
        return degraded("RemoteCloud", f"spec.country: the {resolved.tenant.country} tenant's NationalCloud "
                        f"{resolved.cloud.name} is served by the operator in its own country (pull mode): that "
                        "operator trains this FineTune, not this one")
    if isinstance(found, Problem):
        return found
    assert isinstance(found, Target)
    problem = found.problem()
    return problem if problem is not None else found


def ended(job: dict[str, Any] | None) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in ((job or {}).get("status") or {}).get("conditions") or [])


def newest(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A Job's latest pod (a preempted pod is replaced by a new one): a running one first."""
    if not pods:
        return None
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
    return max(running or pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))


def job_pod(target: Target, job: dict[str, Any] | None, selector: dict[str, str],
            mem: FineTuneMemory) -> dict[str, Any] | None:
    """The Job's pod: from the cache while it runs; read (one list) once the Job ended, for its result, and
    remembered for that Job's uid once it carries a termination message (the kubelet writes it with the phase
    that ends the Job; a pod without one is read again, in case it comes later)."""
    if job is None:
        return None
    ns, name, uid = job["metadata"]["namespace"], job["metadata"]["name"], job["metadata"].get("uid", "")
    if ended(job):
        if mem.ended_pod is not None and mem.ended_pod[0] == uid and uid:
            return mem.ended_pod[1]
        pod = newest(target.kube.list("v1", "Pod", label_selector=f"job-name={name}", namespace=ns))
        mem.ended_pod = (uid, pod) if uid and termination_message(pod) else None
        return pod
    return newest([p for p in target.cache.pods_in(ns)
                   if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())])


def served_at_version(target: Target, ns: str, model: Any, name: str, uri: str, mem: FineTuneMemory) -> bool:
    """``is_served``, read once per resourceVersion of the adapters ConfigMap the watch cache shows (no cached
    ConfigMap: read every time, as it may be newer than the cache)."""
    cached = target.cache.child("v1", "ConfigMap", ns, loader_config_name(model))
    version = (cached or {}).get("metadata", {}).get("resourceVersion") or ""
    if version and mem.served is not None and mem.served[0] == (version, name, uri):
        return mem.served[1]
    answer = is_served(target.kube.get, ns, model, name, uri)
    mem.served = ((version, name, uri), answer) if version else None
    return answer


class FineTunePass:
    def __init__(self, ctx: OperatorContext, body: dict[str, Any], stamp_time: str):
        self.ctx = ctx
        self.body = body
        self.meta = body["metadata"]
        self.generation = int(self.meta.get("generation") or 1)
        self.old = body.get("status") or {}
        self.stamp = stamp_time
        self.writes = 0
        self.requeue_after: float | None = None

    def finish(self, problems: list[Problem], job: dict[str, Any] | None = None, pod: dict[str, Any] | None = None,
               promotion: Promotion | None = None, adapter_uri: str = "", served: str = "",
               quota: str = "") -> FineTuneResult:
        """``served``: the adapter's served name once the tenant's serving lists it ("" : not served); ``quota``:
        why the tenant's training quota refuses the Job's pod."""
        status = finetune_status(generation=self.generation, problems=problems, job=job, pod=pod,
                                 promotion=promotion or Promotion(), adapter_uri=adapter_uri, served=bool(served),
                                 old=self.old, stamp=self.stamp, quota_refusal=quota)
        if served and status.get("phase") == "Ready":
            status["servedName"] = served
        return FineTuneResult(status, problems, self.writes, self.requeue_after)

    def check(self) -> tuple[FineTune | None, Resolved | None, Target | None, list[Problem]]:
        ft, problems = parse(self.body)
        if ft is None:
            return None, None, None, problems
        suite, problems = suite_problem(self.ctx, self.body)
        if problems:
            return ft, None, None, problems
        suites = {(suite.metadata.namespace or "", suite.name): suite} if suite is not None else {}
        clouds, _ = self.ctx.clouds.snapshot()
        resolved, found = check_finetune(ft, suites, clouds)
        if resolved is None:
            return ft, None, None, [p.problem() for p in found]
        target = locate(self.ctx, resolved)
        if isinstance(target, Problem):
            return ft, resolved, None, [target]
        # again with the GPU memory the tenant's nodes report (their label), as serving's placement reads it
        memory = gpu_memory_of(target, resolved.cloud)
        if memory:
            resolved, found = check_finetune(ft, suites, clouds, memory)
            if resolved is None:
                return ft, None, None, [p.problem() for p in found]
        return ft, resolved, target, []

    def run(self) -> FineTuneResult:
        ft, resolved, target, problems = self.check()
        if ft is None or resolved is None or target is None:
            return self.finish(problems)
        promotion, uri = ft.spec.promotion, renderer.adapter_uri(ft, resolved)
        uid = self.meta.get("uid", "")
        desired = [stamp(o, uid) for o in renderer.render(ft, resolved)]
        job_obj = next(o for o in desired if o["kind"] == "Job")
        ns, name = job_obj["metadata"]["namespace"], job_obj["metadata"]["name"]
        if target.cache.tenant_namespaces.get("", ns) is None:
            return self.finish([degraded("TenantNamespaceMissing", f"the tenant namespace {ns} does not exist in "
                                         f"{target} yet (the suite's pass creates it)")], promotion=promotion,
                               adapter_uri=uri)
        # the training pod mounts the storage credentials: refused here, not left waiting for its volume
        missing = credentials_problem(self.ctx, resolved.suite.metadata.namespace or "", resolved.cloud)
        if missing is not None:
            return self.finish([missing], promotion=promotion, adapter_uri=uri)
        live = {ObjectKey.of(o): c for o in desired
                if (c := target.cache.child(o["apiVersion"], o["kind"], ns, name)) is not None}
        job = live.get(ObjectKey.of(job_obj))
        if job is not None and job["metadata"].get("deletionTimestamp"):
            self.requeue_after = RESTART_DELAY
            return self.finish([degraded("Restarting", f"the previous run's Job {ns}/{name} is being deleted")],
                               promotion=promotion, adapter_uri=uri)
        want_hash = job_obj["metadata"]["annotations"][renderer.RUN_HASH]
        if job is not None and (job["metadata"].get("annotations") or {}).get(renderer.RUN_HASH) != want_hash:
            return self.restart(target, job, promotion, uri)
        applier = Applier(self.ctx, target, SuiteKey(resolved.suite.metadata.namespace or "", resolved.suite.name),
                          live, uid=uid)
        applier.apply_all(desired, set())
        self.writes += applier.writes
        problems = list(applier.problems)
        job = applier.live.get(ObjectKey.of(job_obj))
        served = ""
        try:
            mem = self.ctx.finetunes.memory(FineTuneKey(ft.namespace, ft.name))
            pod = job_pod(target, job, renderer.pod_selector(ft), mem)
            if self.passed_gate(job, pod, promotion, uri):
                name_served = served_name(ft.namespace, ft.name)
                if served_at_version(target, ns, resolved.model, name_served, uri, mem):
                    served = name_served
        except ApiError as err:
            problems.append(from_api_error(err, ObjectKey("", "Pod", ns, name)))
            pod = None
        # no pod: is it the quota? (what the pod asks: the rendered template; the cache keeps no Job spec)
        quota = "" if job is None or pod is not None or ended(job) else quota_refusal(
            job_obj, target.cache.child("v1", "ResourceQuota", ns, FINE_TUNING_QUOTA))
        return self.finish(problems, job, pod, promotion, uri, served, quota)

    @staticmethod
    def passed_gate(job: dict[str, Any] | None, pod: dict[str, Any] | None, promotion: Promotion, uri: str) -> bool:
        """The Job completed and the trainer's result passes the promotion gate (then serving is asked)."""
        complete = any(c.get("type") == "Complete" and c.get("status") == "True"
                       for c in ((job or {}).get("status") or {}).get("conditions") or [])
        result = trainer_result(pod, uri)
        return complete and gate(promotion, result.get("baseEvalLoss"), result.get("evalLoss"))[0]

    def restart(self, target: Target, job: dict[str, Any], promotion: Promotion, uri: str) -> FineTuneResult:
        """What the run does changed: its Job goes, with its pods (foreground: the Job stays until they are
        gone), and the next pass creates the new one."""
        key = ObjectKey.of(job)
        log.info("%s: the run changed; deleting its Job to start it again", key)
        try:
            if target.kube.delete({"apiVersion": JOB_KIND[0], "kind": JOB_KIND[1], "metadata": job["metadata"]},
                                  propagation="Foreground"):
                self.writes += 1
        except ApiError as err:
            return self.finish([from_api_error(err, key)], promotion=promotion, adapter_uri=uri)
        self.requeue_after = RESTART_DELAY
        return self.finish([degraded("Restarting", f"the spec changed what the run does: its Job {key.namespace}/"
                                     f"{key.name} is deleted and starts again")], promotion=promotion,
                           adapter_uri=uri)


def reconcile_finetune(ctx: OperatorContext, body: dict[str, Any], stamp_time: str) -> FineTuneResult:
    return FineTunePass(ctx, body, stamp_time).run()
