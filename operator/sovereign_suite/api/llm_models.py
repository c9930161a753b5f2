"""The LLM part of the SovereignSuite API: vLLM models and the OpenAI-compatible gateway (re-exported by
models.py, the API's one import point)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from .common import (DNS_LABEL_RE, MAX_EXTRA_ARGS, MAX_GPU_PRODUCTS, MAX_MODELS, Model, Quantity, Resources,
                     SecretKeyRef, resources)
from .ingress_annotations import IngressAnnotations, ingress_annotations_field
from .image_pins import pinned
from .fieldtypes import CommandArg, ImageRef, LabelValue, ModelId, ServedName
from .licences import LICENCE_PATTERN, OPEN_LICENCES


class LLMModel(Model):
    """One model served by vLLM."""

    name: str = Field(pattern=DNS_LABEL_RE.pattern, max_length=40, description="Short name, used in object names.")
    model_id: ModelId = Field(description="Hugging Face model id (org/name) or an absolute path in the model cache.")
    served_name: ServedName | None = Field(None, description="Name clients ask for; default: name.")
    gpus_per_replica: int = Field(1, ge=1, le=16, description="GPUs per replica = --tensor-parallel-size.")
    gpu_products: list[LabelValue] = Field(
        min_length=1, max_length=MAX_GPU_PRODUCTS,
        description="Acceptable values of the GPU product label, in order of preference.",
    )
    replicas: int = Field(1, ge=0, le=64)
    max_model_len: int | None = Field(None, ge=256)
    gpu_memory_utilization: float = Field(0.9, gt=0.1, le=0.99)
    weights_gib: float | None = Field(
        None, gt=0, alias="weightsGiB",
        description="GPU memory the weights take (GiB); default: parametersBillion x the dtype's bytes.",
    )
    parameters_billion: float | None = Field(None, gt=0, description="Parameter count in billions (e.g. 24).")
    dtype: Literal["bfloat16", "float16", "fp8", "int8", "int4"] = Field(
        "bfloat16", description="Weight type, for the weights estimate from parametersBillion.")
    kv_cache_mib_per_1k_tokens: float | None = Field(
        None, gt=0, alias="kvCacheMiBPer1kTokens",
        description="KV cache per 1,000 tokens (MiB): 2 x layers x KV heads x head size x 2 bytes x 1000 / 2^20 "
        "(from the model's config.json). With maxModelLen, placement reserves one full-length sequence.",
    )
    family: Literal["auto", "generic", "mistral"] = Field(
        "auto",
        description="Model family, for the flags its upstream requires (mistral: --tokenizer-mode, --config-format "
        "and --load-format mistral); auto: mistral when modelId starts with mistralai/.",
    )
    license: str | None = Field(
        None, min_length=1, max_length=64, pattern=LICENCE_PATTERN,
        description="The licence of the model's weights: an SPDX identifier (Apache-2.0, MIT, ...) or the name its "
        "Hugging Face model card gives (llama3.1, gemma, mnpl-0.1, ...). Only a model whose licence is open ("
        + ", ".join(OPEN_LICENCES) + ") may be fine-tuned (FineTune); absent: not declared, never taken as open. "
        "Serving does not depend on it.",
    )
    hidden_size: int | None = Field(
        None, ge=1, le=65536,
        description="hidden_size of the model's config.json, for the training memory estimate of a FineTune "
        "(LoRA parameters, their optimizer state and the activations); absent: only the weights are counted.",
    )
    num_hidden_layers: int | None = Field(
        None, ge=1, le=1024, description="num_hidden_layers of the model's config.json (with hiddenSize).",
    )
    extra_args: list[CommandArg] = Field(
        default_factory=list, max_length=MAX_EXTRA_ARGS,
        description="Further arguments of `vllm serve`; may not set (or abbreviate) a flag the operator sets.",
    )
    cache_size: Quantity = "200Gi"
    shm_size: Quantity = "8Gi"
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "4", "memory": "16Gi"}, {"cpu": "8", "memory": "32Gi"})
    )

    @property
    def served(self) -> str:
        return self.served_name or self.name


class LLMGateway(Model):
    image: ImageRef = pinned("litellm")
    replicas: int = Field(2, ge=0, le=20)
    max_body_size: str = Field(
        "32m", pattern=r"^[0-9]+[kmgKMG]?$",
        description="Largest request the Ingress accepts (images sent to vision models are base64 in the body).",
    )
    timeout_seconds: int = Field(
        600, ge=30, le=3600,
        description="How long the Ingress waits for the gateway (a long generation streams for minutes).",
    )
    resources: Resources = Field(
        default_factory=lambda: resources({"cpu": "250m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"})
    )


class LLM(Model):
    """Open-weight LLM inference: vLLM per model, and one OpenAI-compatible gateway per tenant."""

    enabled: bool = False
    image: ImageRef = pinned("vllm")
    models: list[LLMModel] = Field(default_factory=list, max_length=MAX_MODELS)
    hugging_face_token_secret_ref: SecretKeyRef | None = None
    startup_timeout_seconds: int = Field(1800, ge=60, le=6 * 3600, description="How long a model may take to load.")
    gateway: LLMGateway = Field(default_factory=LLMGateway)
    ingress_annotations: IngressAnnotations = ingress_annotations_field()  # the gateway's Ingress
    extra_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Merged into the gateway's configuration; may not set a key the operator owns.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, v: list[LLMModel]) -> list[LLMModel]:
        seen: set[str] = set()
        for m in v:
            if m.name in seen:
                raise ValueError(f"duplicate model name {m.name!r}")
            seen.add(m.name)
        return v
