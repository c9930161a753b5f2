"""Capacity-aware placement of LLM models on the GPUs of each national cloud (docs/gpu-scheduling.md).

Observe: the GPU nodes of a cloud's regions (nodes carrying the cloud's product label and node selector), with
their allocatable GPUs and the GPUs requested by the pods bound to them.

Place: for each model, the first product in its preference list whose nodes can hold *all* its replicas
(each replica needs ``gpusPerReplica`` GPUs on one node), counting the model's own pods as free for it. The
choice is stable: a model keeps the product it runs on (read from its live Deployment) for as long as that
product can still hold it, so small capacity changes never make it flap. When no product can hold it, it keeps
its current product (or its first preference) so that the scheduler places it as soon as capacity frees up,
and the model is reported Unschedulable with the numbers (``InsufficientGPU``).

The tenant's GPU quota (``requests.<gpu resource>`` of its ResourceQuota ``tenant-serving``, which training pods
do not count against: components/tenancy) is checked the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from ..api.models import LLMModel, NationalCloud
from ..components.base import REGION_LABEL, RenderContext
from .cache import ClusterCache
from .gpu_memory import memory_fit, node_gpu_memory_mib, product_memory
from .problems import ObjectKey
from .quantity import parse_quantity

GPUS_ALLOCATABLE = Gauge("sovereign_suite_gpus_allocatable", "Allocatable GPUs of a national cloud's GPU nodes.",
                         ["country", "product"])
GPUS_REQUESTED = Gauge("sovereign_suite_gpus_requested",
                       "GPUs requested by pods bound to a national cloud's GPU nodes.", ["country", "product"])
MODEL_UNSCHEDULABLE = Gauge(
    "sovereign_suite_llm_model_unschedulable", "1 when no GPU product of its cloud can hold the model.",
    ["suite_namespace", "suite", "country", "model"])
MODEL_READY = Gauge("sovereign_suite_llm_model_ready", "1 when every replica of the model is ready.",
                    ["suite_namespace", "suite", "country", "model"])

MODEL_LABEL = "sovereignsuite.io/model"


@dataclass
class GpuNode:
    name: str
    product: str
    allocatable: int
    requested: int = 0
    by_model: dict[tuple[str, str], int] = field(default_factory=dict)  # (namespace, model) -> GPUs
    gpu_memory_mib: int | None = None  # memory of one GPU (gpu_memory.node_gpu_memory_mib); None: unknown


@dataclass
class Capacity:
    """The GPU nodes of one cloud's regions."""

    resource: str
    nodes: list[GpuNode]

    def free_for(self, node: GpuNode, namespace: str, model: str) -> int:
        """GPUs of ``node`` the model may use: what is free plus what its own pods hold."""
        return max(0, node.allocatable - node.requested + node.by_model.get((namespace, model), 0))

    def products(self) -> dict[str, tuple[int, int]]:
        """product -> (allocatable, requested)."""
        out: dict[str, tuple[int, int]] = {}
        for n in self.nodes:
            a, r = out.get(n.product, (0, 0))
            out[n.product] = (a + n.allocatable, r + n.requested)
        return out


def _gpu_count(value: Any) -> int:
    try:
        return int(parse_quantity(value))
    except (ValueError, TypeError):
        return 0


def _pod_gpus(pod: dict[str, Any], resource: str) -> int:
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        total += _gpu_count((res.get("limits") or {}).get(resource) or (res.get("requests") or {}).get(resource) or 0)
    return total


def observe(cache: ClusterCache, cloud: NationalCloud) -> Capacity:
    """The cloud's GPU nodes and the GPUs requested on them, from the watch cache (no request)."""
    gpu = cloud.spec.gpu
    regions = set(cloud.spec.regions)
    pods_by_node: dict[str, list[dict[str, Any]]] = {}
    for pod in cache.pods():
        pods_by_node.setdefault((pod.get("spec") or {}).get("nodeName") or "", []).append(pod)
    nodes = []
    for node in sorted(cache.nodes.items(), key=lambda n: n["metadata"]["name"]):
        labels = node["metadata"].get("labels") or {}
        if gpu.product_label not in labels or any(labels.get(k) != v for k, v in gpu.node_selector.items()):
            continue
        if labels.get(REGION_LABEL) not in regions:
            continue
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        allocatable = _gpu_count(((node.get("status") or {}).get("allocatable") or {}).get(gpu.resource_name, 0))
        if allocatable <= 0:
            continue
        n = GpuNode(node["metadata"]["name"], labels[gpu.product_label], allocatable,
                    gpu_memory_mib=node_gpu_memory_mib(labels, cloud))
        for pod in pods_by_node.get(n.name, []):
            g = _pod_gpus(pod, gpu.resource_name)
            if not g:
                continue
            n.requested += g
            model = (pod["metadata"].get("labels") or {}).get(MODEL_LABEL)
            if model:
                key = (pod["metadata"]["namespace"], model)
                n.by_model[key] = n.by_model.get(key, 0) + g
        nodes.append(n)
    cap = Capacity(gpu.resource_name, sorted(nodes, key=lambda n: n.name))
    for product, (alloc, req) in cap.products().items():
        GPUS_ALLOCATABLE.labels(country=cloud.spec.country, product=product).set(alloc)
        GPUS_REQUESTED.labels(country=cloud.spec.country, product=product).set(req)
    return cap


def replicas_fit(cap: Capacity, product: str, namespace: str, model: LLMModel) -> int:
    """How many replicas of ``model`` the product's nodes can hold."""
    return sum(cap.free_for(n, namespace, model.name) // model.gpus_per_replica
               for n in cap.nodes if n.product == product)


@dataclass
class Placement:
    model: str
    product: str  # the product the model is pinned to ("" offline)
    fits: bool
    gpus: int
    message: str = ""
    reason: str = ""  # when not fits: InsufficientGPU, or InsufficientGPUMemory (no product has the memory)


def current_product(deployment: dict[str, Any] | None, product_label: str) -> str | None:
    """The product a live vLLM Deployment is pinned to (None when not pinned to exactly one)."""
    if not deployment:
        return None
    terms = (((deployment["spec"]["template"]["spec"].get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == product_label and expr.get("operator") == "In" and len(expr.get("values")) == 1:
                return expr["values"][0]
    return None


def place(model: LLMModel, cap: Capacity, namespace: str, current: str | None) -> Placement:
    gpus = model.replicas * model.gpus_per_replica
    if model.replicas == 0:
        return Placement(model.name, current or model.gpu_products[0], True, 0)
    # Products whose GPUs cannot hold one replica (weights + KV cache of maxModelLen) are skipped.
    memory: dict[str, list[int | None]] = {}
    for n in cap.nodes:
        memory.setdefault(n.product, []).append(n.gpu_memory_mib)
    fit = {p: memory_fit(model, product_memory(memory, p)) for p in model.gpu_products}
    usable = [p for p in model.gpu_products if fit[p].fits]
    if not usable:
        keep = current if current in model.gpu_products else model.gpu_products[0]
        return Placement(model.name, keep, False, gpus, "; ".join(fit[p].describe(p) for p in model.gpu_products),
                         reason="InsufficientGPUMemory")
    if current in usable and replicas_fit(cap, current, namespace, model) >= model.replicas:
        return Placement(model.name, current, True, gpus)  # stable: keep it while it still fits
    for product in usable:
        if replicas_fit(cap, product, namespace, model) >= model.replicas:
            return Placement(model.name, product, True, gpus)
    free = []
    for product in model.gpu_products:
        nodes = [n for n in cap.nodes if n.product == product]
        largest = max((cap.free_for(n, namespace, model.name) for n in nodes), default=0)
        free.append(f"{product}: {sum(cap.free_for(n, namespace, model.name) for n in nodes)} free on "
                    f"{len(nodes)} nodes, at most {largest} on one")
    message = (f"needs {model.replicas} x {model.gpus_per_replica} {cap.resource} on one node each; "
               + "; ".join(free))
    keep = current if current in usable else usable[0]
    return Placement(model.name, keep, False, gpus, message, reason="InsufficientGPU")


def place_tenant(cache: ClusterCache, ctx: RenderContext, live: dict, capacity: dict[str, Capacity]
                 ) -> list[Placement]:
    """Placements of a tenant's models. ``capacity``: per-cloud cache shared by one pass."""
    llm = ctx.components.llm
    if not llm.enabled or not llm.models:
        return []
    if ctx.cloud.name not in capacity:
        capacity[ctx.cloud.name] = observe(cache, ctx.cloud)
    cap = capacity[ctx.cloud.name]
    out = []
    for model in llm.models:
        dep = live.get(ObjectKey("apps", "Deployment", ctx.namespace, f"vllm-{model.name}"))
        out.append(place(model, cap, ctx.namespace, current_product(dep, ctx.cloud.spec.gpu.product_label)))
    return out


def quota_problem(ctx: RenderContext, placements: list[Placement]) -> str | None:
    needed = sum(p.gpus for p in placements)
    if needed > ctx.tenant.quota.gpus:
        return (f"the models need {needed} {ctx.cloud.spec.gpu.resource_name} in total, the tenant's quota "
                f"(spec.tenants[].quota.gpus) allows {ctx.tenant.quota.gpus}")
    return None


def model_states(ctx: RenderContext, placements: list[Placement], live: dict, pods_of,
                 quota: str | None) -> list[dict[str, Any]]:
    """The per-model status entries (``status.tenants[].models``)."""
    from .observe import pending_reason, workload_ready

    out = []
    for p in placements:
        dep = live.get(ObjectKey("apps", "Deployment", ctx.namespace, f"vllm-{p.model}"))
        entry = {"name": p.model, "product": p.product if p.fits else "", "gpus": p.gpus, "reason": "",
                 "message": ""}
        if not p.fits:
            entry.update(state="Unschedulable", reason=p.reason or "InsufficientGPU", message=p.message)
        elif quota:
            entry.update(state="Unschedulable", reason="GPUQuotaExceeded", message=quota)
        elif dep is None:
            entry.update(state="Pending", reason="NotApplied")
        else:
            desired, ready, done = workload_ready(dep)
            pods = pods_of(dep)
            why = pending_reason(pods)
            if done:
                entry["state"] = "Ready"
            elif why:
                entry.update(state="Unschedulable", reason=why[0], message=why[1])
            elif any((pod.get("spec") or {}).get("nodeName") for pod in pods):
                entry.update(state="Loading", reason="ModelLoading",
                             message=f"{ready}/{desired} replicas ready")
            else:
                entry.update(state="Scheduled" if pods else "Pending", reason="")
        out.append(entry)
    return out


def record(namespace: str, suite: str, country: str, models: list[dict[str, Any]]) -> None:
    for m in models:
        labels = dict(suite_namespace=namespace, suite=suite, country=country, model=m["name"])
        MODEL_UNSCHEDULABLE.labels(**labels).set(1 if m["state"] == "Unschedulable" else 0)
        MODEL_READY.labels(**labels).set(1 if m["state"] == "Ready" else 0)


def forget(namespace: str, suite: str) -> None:
    for g in (MODEL_UNSCHEDULABLE, MODEL_READY):
        for labels in list(g._metrics):  # noqa: SLF001 - prometheus_client has no public "remove matching"
            if labels[0] == namespace and labels[1] == suite:
                g.remove(*labels)
