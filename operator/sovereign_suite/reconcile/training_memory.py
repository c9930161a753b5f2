"""Does a LoRA training run of a model fit in the memory of one GPU of a product? Pure functions, beside the serving
estimate (gpu_memory.py); docs/llm-finetuning.md ("The FineTune resource") gives the same formula.

The trainer (``python -m sovereign_suite.finetune.trainer``) is one process on one GPU: the base weights are frozen
in their dtype, only the adapter trains. What it holds at once:

    needed = weights                                  (the serving estimate's: weightsGiB or parametersBillion x dtype)
           + LoRA parameters x 16 bytes               (fp32 weight, fp32 gradient, AdamW's two fp32 moments)
           + activations                              (batch x sequence x layers x hidden x 34 bytes)
           + OVERHEAD_MIB                             (CUDA context, allocator slack, the loss's logits)
    LoRA parameters = layers x targetModules x rank x 2 x hidden   (each targeted module counted as hidden -> hidden)
    available = the GPU's memory (no vLLM-style utilisation fraction: PyTorch allocates as it goes)

- 16 bytes per trainable parameter: PEFT keeps adapter weights in float32 (``autocast_adapter_dtype=True``, the
  default of ``get_peft_model``), their gradients are float32, and torch.optim.AdamW keeps ``exp_avg`` and
  ``exp_avg_sq`` in the parameter's dtype.
- 34 bytes per token, layer and hidden unit: the activations a transformer layer keeps for its backward pass in
  16-bit training without recomputation (Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
  Models", 2022, arXiv:2205.05198, section 4.1: s*b*h*(34 + 5*a*s/h)), without the 5*a*s/h term of the attention
  scores, which fused attention (PyTorch's scaled_dot_product_attention) does not store. The backward pass runs
  through the frozen layers too (the adapters' gradients need it), so every layer counts.
- Each targeted module is counted as a hidden -> hidden projection. MLP projections are wider (about 3.5 x hidden)
  and grouped-query K/V projections narrower: with rank <= 512 the adapter is a small share of the total either way.

Unknown architecture (no ``hiddenSize``/``numHiddenLayers`` on the model): the weights and the overhead only, a lower
bound: a run refused on it cannot fit; one accepted may still run out of memory (the trainer then reports it).
Unknown weights: nothing is known, every product is accepted (as for serving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..api.finetune_models import LoRA, Training
from ..api.models import LLMModel, NationalCloud
from .gpu_memory import MIB_PER_GIB, OVERHEAD_MIB, weights_mib

BYTES_PER_TRAINABLE_PARAMETER = 16  # fp32 weight + fp32 gradient + AdamW exp_avg + exp_avg_sq
ACTIVATION_BYTES_PER_TOKEN_LAYER_HIDDEN = 34  # Korthikanti et al. 2022, without the attention-score term
MIB = 2**20


@dataclass(frozen=True)
class TrainingEstimate:
    weights_mib: float | None  # None: the model declares neither weightsGiB nor parametersBillion
    lora_parameters: int | None  # None: the architecture is unknown
    adapter_mib: float
    activations_mib: float
    overhead_mib: float = OVERHEAD_MIB

    @property
    def known(self) -> bool:
        return self.weights_mib is not None

    @property
    def needed_mib(self) -> int:
        return int((self.weights_mib or 0) + self.adapter_mib + self.activations_mib + self.overhead_mib)

    def describe(self) -> str:
        parts = [f"weights {(self.weights_mib or 0) / MIB_PER_GIB:.1f} GiB"]
        if self.lora_parameters is not None:
            parts += [f"adapter and optimizer {self.adapter_mib / MIB_PER_GIB:.1f} GiB "
                      f"({self.lora_parameters:,} parameters)",
                      f"activations {self.activations_mib / MIB_PER_GIB:.1f} GiB"]
        else:
            parts.append("adapter and activations not counted (the model declares no hiddenSize/numHiddenLayers)")
        parts.append(f"overhead {self.overhead_mib / MIB_PER_GIB:.1f} GiB")
        return f"~{self.needed_mib / MIB_PER_GIB:.1f} GiB (" + ", ".join(parts) + ")"


def lora_parameters(model: LLMModel, lora: LoRA) -> int | None:
    if model.hidden_size is None or model.num_hidden_layers is None:
        return None
    return model.num_hidden_layers * len(lora.target_modules) * lora.rank * 2 * model.hidden_size


def estimate(model: LLMModel, lora: LoRA, training: Training) -> TrainingEstimate:
    params = lora_parameters(model, lora)
    if params is None:
        return TrainingEstimate(weights_mib(model), None, 0.0, 0.0)
    assert model.hidden_size is not None and model.num_hidden_layers is not None
    activations = (training.batch_size * training.sequence_length * model.num_hidden_layers * model.hidden_size
                   * ACTIVATION_BYTES_PER_TOKEN_LAYER_HIDDEN) / MIB
    return TrainingEstimate(weights_mib(model), params, params * BYTES_PER_TRAINABLE_PARAMETER / MIB, activations)


@dataclass(frozen=True)
class ProductFit:
    product: str
    memory_mib: int | None  # None: the cloud declares no memory for it
    fits: bool


def product_fits(model: LLMModel, cloud: NationalCloud, est: TrainingEstimate,
                 memory: Mapping[str, int] | None = None) -> list[ProductFit]:
    """Each of the model's GPU products (in its order of preference) and whether one GPU of it holds the run.
    ``memory``: product -> MiB read from the cluster's nodes (gpu_memory.product_memory); absent: the cloud's
    declared ``gpu.productMemoryMiB``. A product of unknown memory, or an estimate without weights, fits."""
    out = []
    for product in model.gpu_products:
        mib = (memory or {}).get(product) or cloud.spec.gpu.product_memory_mib.get(product)
        out.append(ProductFit(product, mib, not est.known or mib is None or est.needed_mib <= mib))
    return out


def insufficient_memory_message(est: TrainingEstimate, fits: list[ProductFit]) -> str | None:
    """The InsufficientGPUMemory message when no product can hold the run, else None."""
    if any(f.fits for f in fits):
        return None
    has = "; ".join(f"{f.product} has {(f.memory_mib or 0) / MIB_PER_GIB:.1f} GiB" for f in fits)
    return f"training needs {est.describe()} on one GPU: {has}"
