"""Memory fit of LLM replicas on GPU products (reconcile/gpu_memory.py, gpu.place), no cluster."""

from __future__ import annotations

from sovereign_suite.api.models import LLMModel, NationalCloud
from sovereign_suite.components.llm import vllm_args
from sovereign_suite.reconcile.gpu import Capacity, GpuNode, place
from sovereign_suite.reconcile.gpu_memory import memory_fit, node_gpu_memory_mib, offline_problem

from .helpers import load_example

H100, A100, L40S = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"


def mistral(**fields) -> LLMModel:
    return LLMModel.model_validate({"name": "mistral", "modelId": "mistralai/Mistral-Small-3.2-24B-Instruct-2506",
                                    "parametersBillion": 24, "kvCacheMiBPer1kTokens": 160, "maxModelLen": 32768,
                                    "gpuProducts": [L40S, A100], **fields})


def test_node_memory_from_the_gpu_feature_discovery_label_else_the_cloud() -> None:
    # NVIDIA/k8s-device-plugin docs/gpu-feature-discovery/README.md (v0.20.0): nvidia.com/gpu.memory is the
    # memory of the GPU in MiB.
    _, clouds = load_example("four-countries")
    de = clouds["de-c5"]
    assert node_gpu_memory_mib({"nvidia.com/gpu.product": L40S, "nvidia.com/gpu.memory": "45000"}, de) == 45000
    assert node_gpu_memory_mib({"nvidia.com/gpu.product": L40S}, de) == 46068  # spec.gpu.productMemoryMiB
    assert node_gpu_memory_mib({"nvidia.com/gpu.product": "other"}, de) is None


def test_24b_bf16_does_not_fit_one_l40s_but_fits_two_or_one_80gb() -> None:
    assert not memory_fit(mistral(), 46068).fits  # ~44.7 GiB weights > 48 GB x 0.9
    assert memory_fit(mistral(gpusPerReplica=2), 46068).fits
    assert memory_fit(mistral(), 81920).fits


def test_70b_with_32k_context_does_not_fit_two_80gb_gpus_but_8k_does() -> None:
    llama = {"name": "llama", "modelId": "meta-llama/Llama-3.3-70B-Instruct", "parametersBillion": 70.6,
             "kvCacheMiBPer1kTokens": 320, "gpusPerReplica": 2, "gpuProducts": [H100]}
    assert not memory_fit(LLMModel.model_validate({**llama, "maxModelLen": 32768}), 81559).fits
    assert memory_fit(LLMModel.model_validate({**llama, "maxModelLen": 8192}), 81559).fits


def test_unknown_need_or_memory_counts_gpus_only() -> None:
    bare = LLMModel.model_validate({"name": "m", "modelId": "x/y", "gpuProducts": [L40S]})
    assert memory_fit(bare, 1024).fits
    assert memory_fit(mistral(), None).fits


def cap(*nodes: GpuNode) -> Capacity:
    return Capacity("nvidia.com/gpu", list(nodes))


def test_place_skips_a_product_without_the_memory_and_falls_back() -> None:
    c = cap(GpuNode("l40s-0", L40S, 4, gpu_memory_mib=46068), GpuNode("a100-0", A100, 4, gpu_memory_mib=81920))
    p = place(mistral(), c, "ns", None)
    assert (p.product, p.fits) == (A100, True)


def test_place_reports_insufficient_gpu_memory_with_the_numbers() -> None:
    p = place(mistral(gpuProducts=[L40S]), cap(GpuNode("l40s-0", L40S, 4, gpu_memory_mib=46068)), "ns", None)
    assert (p.fits, p.reason, p.product) == (False, "InsufficientGPUMemory", L40S)
    assert "NVIDIA-L40S: needs ~" in p.message and "has 40.5 GiB" in p.message


def test_place_without_enough_gpus_is_still_insufficient_gpu() -> None:
    p = place(mistral(replicas=3), cap(GpuNode("a100-0", A100, 2, gpu_memory_mib=81920)), "ns", None)
    assert (p.fits, p.reason) == (False, "InsufficientGPU")


def test_offline_check_names_models_no_declared_product_can_hold() -> None:
    _, clouds = load_example("four-countries")
    assert "InsufficientGPUMemory" in offline_problem(mistral(gpuProducts=[L40S]), clouds["lu-govcloud"])
    assert offline_problem(mistral(gpuProducts=[L40S], gpusPerReplica=2), clouds["lu-govcloud"]) is None


def test_mistral_family_flags_from_the_model_card() -> None:
    # mistralai/Mistral-Small-3.2-24B-Instruct-2506 model card: vllm serve ... --tokenizer_mode mistral
    # --config_format mistral --load_format mistral.
    args = vllm_args(mistral(), "p")
    for flag in ("--tokenizer-mode", "--config-format", "--load-format"):
        assert args[args.index(flag) + 1] == "mistral"
    generic = LLMModel.model_validate({"name": "m", "modelId": "meta-llama/Llama-3.3-70B-Instruct",
                                       "gpuProducts": [H100]})
    assert "--tokenizer-mode" not in vllm_args(generic, "p")
    assert "--tokenizer-mode" not in vllm_args(mistral(family="generic"), "p")


def test_examples_fit_their_clouds() -> None:
    suite, clouds = load_example("four-countries")
    from sovereign_suite.api.validation import effective_components
    for tenant in suite.spec.tenants:
        for model in effective_components(suite, tenant).llm.models:
            assert offline_problem(model, clouds[tenant.cloud]) is None, (tenant.country, model.name)
