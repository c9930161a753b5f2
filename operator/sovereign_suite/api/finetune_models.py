"""The FineTune API (namespaced, group sovereignsuite.io): an administration's use case, a LoRA adapter of a model
a suite's tenant serves, trained on the administration's data in its country's object storage (issue 25;
docs/llm-finetuning.md, "The FineTune resource").

A separate kind, not a field of the suite: many per country, each with its own RBAC (an administration may write
FineTunes in its namespace without any right on the SovereignSuite), lifecycle and status. Shaped after KubeAI's
``Model.spec.adapters`` (an adapter is a name and a URL of the base model it adapts) and Kubeflow Trainer's
``TrainJob`` (a dataset and a model by storage URI, the hyper-parameters apart from the runtime), with what
neither has: a promotion gate and the data-residency rules of the suite.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from .common import API_VERSION, DNS_LABEL_RE, Country, Model
from .fieldtypes import NamespaceName
from .lora_rules import MAX_LORA_RANK_VALUES

MAX_TARGET_MODULES = 16
MAX_CONSUMERS = 32
# s3://<bucket>/<key>: the bucket as S3 names it (api/backups.py BUCKET_PATTERN), a key of printable ASCII without
# spaces, quotes, backslashes or control characters (it reaches the trainer's arguments and JSON status).
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]+[a-z0-9]/[A-Za-z0-9!_.*()/=+,@:-]+$"
S3_URI_RE = re.compile(S3_URI_PATTERN)
# A module name of a PyTorch model (q_proj, model.layers.0.self_attn.q_proj), as PEFT matches target_modules.
MODULE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"

ModuleName = Annotated[str, Field(min_length=1, max_length=128, pattern=MODULE_PATTERN)]

PHASES = ("Pending", "Training", "Evaluating", "Ready", "Failed", "NotPromoted")


class SuiteRef(Model):
    name: str = Field(pattern=DNS_LABEL_RE.pattern, max_length=40, description="The SovereignSuite's name.")
    namespace: NamespaceName | None = Field(
        None, description="The SovereignSuite's namespace; default: the FineTune's own. The suite's tenant must "
        "admit FineTunes of this namespace (spec.tenants[].fineTuneNamespaces).",
    )


class Dataset(Model):
    uri: str = Field(
        min_length=8, max_length=1024, pattern=S3_URI_PATTERN,
        description="s3://<bucket>/<key> of a JSONL file: the bucket must be the objectStorage of the tenant's "
        "NationalCloud and the key under fine-tuning/<the FineTune's namespace>/ (the data stays in the country, "
        "and one administration's FineTune cannot read another's data or the backups).",
    )
    eval_fraction: float = Field(
        0.1, gt=0, le=0.5,
        description="The share of the dataset's records held out for the evaluation the promotion gate reads.",
    )

    @field_validator("uri")
    @classmethod
    def _no_dot_segments(cls, v: str) -> str:
        if any(part in (".", "..", "") for part in v[len("s3://"):].split("/")[1:]):
            raise ValueError("the key may not have empty, '.' or '..' segments")
        return v


class LoRA(Model):
    """The adapter's hyper-parameters (PEFT's LoraConfig: r, lora_alpha, lora_dropout, target_modules)."""

    rank: int = Field(
        16, ge=1, le=MAX_LORA_RANK_VALUES[-1],
        description=f"r. At most {MAX_LORA_RANK_VALUES[-1]}, the largest --max-lora-rank of the vLLM this "
        "release serves with (vllm/config/lora.py MaxLoRARanks, v0.33.0); the tenant's vLLM sizes --max-lora-rank "
        "from its adapters' ranks.",
    )
    alpha: int = Field(32, ge=1, le=4096, description="lora_alpha (the update is scaled by alpha/rank).")
    dropout: float = Field(0.05, ge=0, lt=1, description="lora_dropout.")
    target_modules: list[ModuleName] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], min_length=1, max_length=MAX_TARGET_MODULES,
        description="Module names the adapter wraps (target_modules). No modules_to_save and no DoRA: vLLM serves "
        "neither (vllm/lora/peft_helper.py, v0.33.0).",
    )

    @field_validator("target_modules")
    @classmethod
    def _modules(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("duplicate module names")
        return v


class Training(Model):
    learning_rate: float = Field(2e-4, gt=0, le=1, description="AdamW's learning rate.")
    steps: int = Field(1000, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, le=1024, description="Sequences per step.")
    sequence_length: int = Field(2048, ge=16, le=131072, description="Tokens per sequence (longer ones are cut).")


class Promotion(Model):
    """When the adapter is served: after training, the trainer evaluates the base model and the adapter on the
    held-out split (mean token cross-entropy)."""

    max_eval_loss: float | None = Field(
        None, gt=0,
        description="Serve when the adapter's eval loss is at most this. Absent: serve when it is below the base "
        "model's eval loss on the same split (the adapter must be better than no adapter).",
    )


class Consumer(Model):
    name: str = Field(
        pattern=DNS_LABEL_RE.pattern, max_length=40,
        description="A caller of the adapter (an application of the administration): it gets its own API key, in "
        "a Secret of the FineTune's namespace, valid for this adapter only.",
    )


class FineTuneSpec(Model):
    suite: SuiteRef
    country: Country = Field(description="The tenant (country) of the suite whose model is adapted and whose cloud "
                             "trains and serves it.")
    base_model: str = Field(
        pattern=DNS_LABEL_RE.pattern, max_length=40,
        description="The name of a model the tenant serves (components.llm.models[].name); its license must be open.",
    )
    dataset: Dataset
    lora: LoRA = Field(default_factory=LoRA)
    training: Training = Field(default_factory=Training)
    promotion: Promotion = Field(default_factory=Promotion)
    consumers: list[Consumer] = Field(
        default_factory=list, max_length=MAX_CONSUMERS,
        description="Who may call the adapter once it is served; none: nobody (it is trained and evaluated only).",
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        "Retain", description="What deleting the FineTune does to its artifacts in the country's object storage "
        "(the adapter and its evaluation under fine-tuning/<namespace>/<name>/): Retain keeps them, Delete "
        "removes them. The adapter is unloaded from serving either way.",
    )

    @field_validator("consumers")
    @classmethod
    def _unique_consumers(cls, v: list[Consumer]) -> list[Consumer]:
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError("duplicate consumer names")
        return v


# --------------------------------------------------------------------------------------------------
# Status


class FineTuneCondition(Model):
    type: Literal["Ready", "Reconciling", "Stalled"]
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field("", max_length=32768)
    observed_generation: int | None = None
    last_transition_time: str


class FineTuneStatus(Model):
    observed_generation: int | None = None
    phase: Literal["Pending", "Training", "Evaluating", "Ready", "Failed", "NotPromoted"] | None = Field(
        None, description="Pending (waiting for a GPU or refused: see conditions), Training, Evaluating, Ready "
        "(served), Failed (the trainer's reason), NotPromoted (trained, but the promotion gate kept it unserved).")
    conditions: list[FineTuneCondition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    job: str | None = Field(None, description="The training Job, <namespace>/<name> in the tenant's cluster.")
    step: int | None = Field(None, description="Optimizer steps done.")
    total_steps: int | None = None
    progress: str | None = Field(None, description="step/totalSteps, for the printer column.")
    loss: float | None = Field(None, description="The last training loss.")
    base_eval_loss: float | None = Field(None, description="The base model's loss on the held-out split.")
    eval_loss: float | None = Field(None, description="The adapter's loss on the held-out split.")
    tokens_per_second: float | None = None
    duration_seconds: float | None = None
    adapter_uri: str | None = Field(None, description="s3:// URI of the adapter (adapter_config.json, "
                                    "adapter_model.safetensors).")
    served_name: str | None = Field(None, description="The model name clients ask the gateway for, once served.")


class FineTuneMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(pattern=DNS_LABEL_RE.pattern, max_length=40)
    namespace: NamespaceName | None = None


class FineTune(Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    api_version: Literal["sovereignsuite.io/v1alpha1"] = Field(API_VERSION, validation_alias=AliasChoices("apiVersion"))
    kind: Literal["FineTune"] = "FineTune"
    metadata: FineTuneMeta
    spec: FineTuneSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def suite_namespace(self) -> str:
        return self.spec.suite.namespace or self.namespace


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI that matched S3_URI_PATTERN."""
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def promoted(promotion: Promotion, base_eval_loss: float | None, eval_loss: float | None) -> tuple[bool, str]:
    """The promotion gate: (serve it, why). A loss that is missing or not a finite number never promotes."""
    if eval_loss is None or eval_loss != eval_loss or eval_loss in (float("inf"), float("-inf")):
        return False, "the trainer reported no eval loss"
    if promotion.max_eval_loss is not None:
        if eval_loss <= promotion.max_eval_loss:
            return True, f"eval loss {eval_loss:.4g} is at most the threshold {promotion.max_eval_loss:.4g}"
        return False, f"eval loss {eval_loss:.4g} is above the threshold {promotion.max_eval_loss:.4g}"
    if base_eval_loss is None or base_eval_loss != base_eval_loss:
        return False, "the trainer reported no base eval loss to compare with"
    if eval_loss < base_eval_loss:
        return True, f"eval loss {eval_loss:.4g} is below the base model's {base_eval_loss:.4g}"
    return False, f"eval loss {eval_loss:.4g} does not beat the base model's {base_eval_loss:.4g}"
