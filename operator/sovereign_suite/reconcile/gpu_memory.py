"""Does one replica of a model fit in the memory of a GPU product? Pure functions (docs/gpu-scheduling.md).

vLLM takes ``gpu-memory-utilization`` of every GPU of a replica, loads the weights into it, and refuses to
start when what is left cannot hold one sequence of ``max-model-len`` tokens in the KV cache. The estimate:

    available = gpusPerReplica x GPU memory x gpuMemoryUtilization
    needed    = weights + KV cache of maxModelLen tokens + OVERHEAD_MIB per GPU (activations, CUDA graphs)

weights: ``weightsGiB``, or ``parametersBillion`` x bytes of ``dtype``; KV cache: ``kvCacheMiBPer1kTokens`` x
maxModelLen / 1000. A model that declares neither weights nor parameters has an unknown need: only GPUs count.
GPU memory: the node label GPU feature discovery sets (``nvidia.com/gpu.memory``, MiB: NVIDIA/k8s-device-plugin
docs/gpu-feature-discovery/README.md, v0.20.0), else the NationalCloud's ``gpu.productMemoryMiB``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..api.models import LLMModel, NationalCloud

BYTES_PER_PARAMETER = {"bfloat16": 2.0, "float16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
OVERHEAD_MIB = 1024  # per GPU: activations, CUDA graphs, NCCL buffers (a round margin, not a measurement)
MIB_PER_GIB = 1024
MIB_PER_BILLION_BYTES = 1e9 / 2**20


def node_gpu_memory_mib(labels: Mapping[str, str], cloud: NationalCloud) -> int | None:
    """Memory of one GPU of a node (MiB): its memory label, else the cloud's declared product memory."""
    gpu = cloud.spec.gpu
    value = labels.get(gpu.memory_label)
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return gpu.product_memory_mib.get(labels.get(gpu.product_label, ""))


def weights_mib(model: LLMModel) -> float | None:
    if model.weights_gib is not None:
        return model.weights_gib * MIB_PER_GIB
    if model.parameters_billion is not None:
        return model.parameters_billion * BYTES_PER_PARAMETER[model.dtype] * MIB_PER_BILLION_BYTES
    return None


def kv_cache_mib(model: LLMModel) -> float:
    if model.kv_cache_mib_per_1k_tokens is None or model.max_model_len is None:
        return 0.0
    return model.kv_cache_mib_per_1k_tokens * model.max_model_len / 1000


@dataclass(frozen=True)
class MemoryFit:
    fits: bool
    needed_mib: int  # 0 when the model declares no weights (unknown need)
    available_mib: int  # 0 when the GPU memory is unknown

    def describe(self, product: str) -> str:
        return (f"{product}: needs ~{self.needed_mib / MIB_PER_GIB:.1f} GiB per replica, "
                f"has {self.available_mib / MIB_PER_GIB:.1f} GiB")


def memory_fit(model: LLMModel, gpu_memory_mib: int | None) -> MemoryFit:
    """Whether one replica fits GPUs of ``gpu_memory_mib``. Unknown need or unknown memory: it fits (only GPUs
    count then, as before memory was known)."""
    weights = weights_mib(model)
    available = int(model.gpus_per_replica * (gpu_memory_mib or 0) * model.gpu_memory_utilization)
    if weights is None:
        return MemoryFit(True, 0, available)
    needed = int(weights + kv_cache_mib(model) + OVERHEAD_MIB * model.gpus_per_replica)
    return MemoryFit(not gpu_memory_mib or needed <= available, needed, available)


def product_memory(nodes_memory: Mapping[str, list[int | None]], product: str) -> int | None:
    """The memory a product's nodes all have (the smallest known value), None when none is known."""
    known = [m for m in nodes_memory.get(product, []) if m]
    return min(known) if known else None


def offline_problem(model: LLMModel, cloud: NationalCloud) -> str | None:
    """For ``validate``: a message when no product of the model that the cloud declares memory for can hold it
    (None when one can, or when nothing is known)."""
    declared = {p: cloud.spec.gpu.product_memory_mib[p] for p in model.gpu_products
                if p in cloud.spec.gpu.product_memory_mib}
    if not declared:
        return None
    fits = {p: memory_fit(model, mib) for p, mib in declared.items()}
    if any(f.fits for f in fits.values()) or len(declared) < len(model.gpu_products):
        return None
    return ("no GPU product can hold one replica (InsufficientGPUMemory): "
            + "; ".join(f.describe(p) for p, f in fits.items()))
