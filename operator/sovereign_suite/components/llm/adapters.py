"""Serving LoRA adapters (issue 25): the vLLM flags, the loader sidecar and the gateway's per-key access for the
adapters a tenant serves.

The list of adapters is an input of the render (``render_suite(..., adapters={country: [ServedAdapter...]})``):
the FineTune controller produces it from the FineTunes that are Ready and promoted; without it nothing of this
module is rendered and a suite renders exactly as before.

Upstream facts, read in the pinned releases (api/image_pins.py):

- vLLM v0.33.0 (the ``vllm-0.33.0`` wheel): ``vllm/config/lora.py`` LoRAConfig: ``max_loras`` (default 1, "max
  number of LoRAs in a single batch"), ``max_lora_rank`` one of ``MaxLoRARanks`` (default 16), ``max_cpu_loras``
  (default ``max_loras``, must be >= it); ``max_loras`` and ``max_lora_rank`` are part of the config hash (they size
  the GPU buffers). ``vllm/entrypoints/common/cli_args.py`` ``--lora-modules``: ``name=path`` or JSON
  ``{"name", "path", "base_model_name"}``, loaded once at start (``init_static_loras``). ``vllm/envs.py``
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` ("1"/"true") attaches ``POST /v1/load_lora_adapter``
  ``{lora_name, lora_path, load_inplace}`` and ``POST /v1/unload_lora_adapter`` ``{lora_name}``
  (``vllm/entrypoints/serve/lora/api_router.py``, ``protocol.py``); a name already loaded is refused unless
  ``load_inplace`` (``vllm/entrypoints/openai/models/serving.py``), and ``/v1/models`` lists each loaded adapter
  with ``root`` = its path and ``parent`` = the base model. Both endpoints are under ``/v1``: vLLM's API key
  guards them (``serve/middleware/authenticate.py`` GUARDED_PREFIX). ``vllm/lora/utils.py``
  ``get_adapter_absolute_path``: a path is a local directory, or else a Hugging Face (or ModelScope) repository
  id; no ``s3://``: hence the loader.
- KubeAI (substratusai/kubeai ``internal/modelcontroller/adapters.go``): a ``loader`` container beside the engine
  shares an emptyDir ``/adapters`` (read-only in the engine), the controller downloads each adapter into
  ``/adapters/<id>`` and calls ``load_lora_adapter``; a pod label holds a hash of the URL to see a change.
  Here the loader is a program of its own in the pod (``sovereign_suite.adapterloader``): no controller exec into
  pods, no API rights for anyone; the path carries a hash of the URI, so a new version loads in place under the
  same name from a new path (vLLM warns that a reload from the same path reuses prefix-cache blocks).
- LiteLLM v1.77.7 (the ``litellm-1.77.7`` wheel): without a database a key other than the master key is refused
  ("No connected db", ``litellm/proxy/auth/user_api_key_auth.py``): virtual keys and per-key model lists need
  PostgreSQL. ``general_settings.custom_auth: <module>.<function>`` loads a function from a file beside the
  config file (``litellm/proxy/types_utils/utils.py`` get_instance_fn) and returns its UserAPIKeyAuth as is,
  before any model check: so the function itself decides which key may call which model (gateway_access.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...api.backups import BACKUP_IMAGE
from ...api.kubenames import DNS1123_LABEL_RE
from ...api.lora_rules import MAX_LORA_RANK_VALUES, max_lora_rank_flag
from ...api.models import LLMModel
from ...api.validation import InputError, Problem
from ..base import RenderContext, SecretKey, SecretSpec, container_security, dump_yaml
from ..secret_files import SecretFile, mount

ADAPTER_DIR = "/adapters"  # the emptyDir the loader writes and vLLM reads (KubeAI's adaptersRootDir)
ADAPTER_DIR_SIZE = "16Gi"  # a rank-64 adapter of every linear layer of a 70B model is about 1.6 GB
LOADER_CONFIG_DIR = "/etc/adapter-loader"
LOADER_S3_DIR = "/etc/adapter-loader/s3"
LOADER_KEY_DIR = "/run/secrets/vllm-api-key"
LOADER_INTERVAL_SECONDS = 30
LOADER_RESOURCES = {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "2Gi"}}
# the program; standard library and backup/s3.py only, shipped in the backup image (Dockerfile.backup)
LOADER_IMAGE = BACKUP_IMAGE
LOADER_COMMAND = ["python3", "-m", "sovereign_suite.adapterloader.program", f"{LOADER_CONFIG_DIR}/config/config.json"]
# Flags the operator sets for a model with adapters; extraArgs may not repeat them then.
LORA_FLAGS = ("--enable-lora", "--max-loras", "--max-lora-rank", "--max-cpu-loras", "--lora-modules")
ADAPTER_KEY_PREFIX = "llm-adapter-key"
ADAPTER_KEY_SECRET_KEY = "api-key"
CONSUMER_KEY_DIR = "consumers"  # in the gateway's keys volume: consumers/<adapter>.<consumer>
# the gateway's per-key access (LiteLLM custom_auth) and the init step that hashes the keys
TEMPLATES = Path(__file__).parent / "templates"
GATEWAY_ACCESS = (TEMPLATES / "gateway_access.py").read_text()
WRITE_ACCESS = (TEMPLATES / "write-access.py").read_text()
CUSTOM_AUTH = "gateway_access.user_api_key_auth"


@dataclass(frozen=True)
class ServedAdapter:
    """One LoRA adapter a tenant serves.

    ``name``: the model name clients ask the gateway for (and vLLM's ``lora_name``); ``base_model``: the ``name`` of
    the LLMModel it adapts; ``uri``: ``s3://<bucket>/<prefix>`` of the PEFT checkpoint (``adapter_config.json`` and
    ``adapter_model.safetensors``) in the objectStorage of the tenant's NationalCloud; ``rank``: its LoRA ``r``;
    ``consumers``: who may call it, each with a key of its own (generated Secret
    ``llm-adapter-key.<name>.<consumer>``)."""

    name: str
    base_model: str
    uri: str
    rank: int
    consumers: tuple[str, ...] = ()


def uri_hash(uri: str) -> str:
    """The version of an adapter in its local path: a new URI is a new directory (see the module docstring)."""
    return hashlib.sha256(uri.encode()).hexdigest()[:16]


def model_adapters(ctx: RenderContext, model: LLMModel) -> list[ServedAdapter]:
    return sorted((a for a in ctx.adapters if a.base_model == model.name), key=lambda a: a.name)


def _path(index: int, field: str) -> str:
    return f"adapters[{index}].{field}"


def adapter_problems(ctx: RenderContext) -> list[Problem]:
    """Why the tenant cannot serve its adapters as given (each problem names the adapter's field)."""
    problems: list[Problem] = []
    if not ctx.adapters:
        return problems
    models = {m.name: m for m in ctx.components.llm.models}
    served = {m.served for m in ctx.components.llm.models}
    storage = ctx.cloud.spec.object_storage
    if storage is None:
        problems.append(Problem("adapters", f"NationalCloud {ctx.cloud.name!r} declares no spec.objectStorage: "
                                            "adapters are loaded from the country's object storage"))
    seen: set[str] = set()
    for i, a in enumerate(ctx.adapters):
        if not (isinstance(a.name, str) and DNS1123_LABEL_RE.match(a.name) and len(a.name) <= 63):
            problems.append(Problem(_path(i, "name"), f"{a.name!r} must be a DNS label (lower case letters, digits, "
                                                      "'-', at most 63 characters)"))
        elif a.name in served:
            problems.append(Problem(_path(i, "name"), f"{a.name!r} is the served name of a base model"))
        elif a.name in seen:
            problems.append(Problem(_path(i, "name"), f"{a.name!r} is served twice"))
        seen.add(a.name)
        if a.base_model not in models:
            problems.append(Problem(_path(i, "baseModel"), f"{a.base_model!r} is not a model of the tenant's llm"))
        if not isinstance(a.rank, int) or isinstance(a.rank, bool) or not 1 <= a.rank <= MAX_LORA_RANK_VALUES[-1]:
            problems.append(Problem(_path(i, "rank"), f"must be an integer in 1..{MAX_LORA_RANK_VALUES[-1]} "
                                                      "(vLLM's largest --max-lora-rank)"))
        prefix = f"s3://{storage.bucket}/" if storage is not None else None
        if prefix is not None and not (a.uri.startswith(prefix) and len(a.uri) > len(prefix)
                                        and "\n" not in a.uri and ".." not in a.uri.split("/")):
            problems.append(Problem(_path(i, "uri"), f"must be an object prefix under {prefix} (the objectStorage "
                                                     f"of NationalCloud {ctx.cloud.name!r}): the adapter never "
                                                     "leaves the country's storage"))
        if not a.consumers:
            problems.append(Problem(_path(i, "consumers"), "at least one consumer: nobody could call the adapter"))
        for j, c in enumerate(a.consumers):
            if not (isinstance(c, str) and DNS1123_LABEL_RE.match(c) and len(c) <= 63):
                problems.append(Problem(f"{_path(i, 'consumers')}[{j}]", f"{c!r} must be a DNS label"))
        if len(set(a.consumers)) != len(a.consumers):
            problems.append(Problem(_path(i, "consumers"), "a consumer is listed twice"))
    return problems


def check_adapters(ctx: RenderContext) -> None:
    problems = adapter_problems(ctx)
    if problems:
        raise InputError(problems)


# ---- vLLM ------------------------------------------------------------------------------------------------

def max_loras(count: int) -> int:
    """``--max-loras`` for ``count`` adapters: the next power of two. Every adapter fits a batch at once; a new
    adapter changes the flag (and restarts the pods) only when the count passes 1, 2, 4, 8, ... (vLLM reserves
    GPU memory for max_loras x max_lora_rank, so it is not set higher than that)."""
    return 1 << max(0, count - 1).bit_length()


def lora_args(adapters: list[ServedAdapter]) -> list[str]:
    """vLLM's LoRA flags for a model serving ``adapters`` (none: no flag). The adapters themselves are loaded at
    run time by the loader, never with ``--lora-modules`` (which would restart the base model for each change)."""
    if not adapters:
        return []
    return ["--enable-lora", "--max-loras", str(max_loras(len(adapters))),
            "--max-lora-rank", str(max_lora_rank_flag([a.rank for a in adapters]))]


def lora_flag_problems(model: LLMModel, path: str) -> list[Problem]:
    """extraArgs may not set the LoRA flags of a model the operator serves adapters of (argparse prefixes and
    ``_`` for ``-`` included, as for the other owned flags)."""
    out = []
    for arg in model.extra_args:
        if not arg.startswith("--"):
            continue
        flag = "--" + arg.split("=", 1)[0][2:].replace("_", "-")
        owned = next((f for f in LORA_FLAGS if f.startswith(flag) and len(flag) > 2), None)
        if owned is not None:
            out.append(Problem(path, f"{owned} is set by the operator for the model's adapters"))
    return out


def lora_env() -> list[dict[str, str]]:
    return [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}]


def loader_config_name(model: LLMModel) -> str:
    return f"vllm-{model.name}-adapters"


def loader_config(ctx: RenderContext, adapters: list[ServedAdapter], port: int, key_file: str) -> dict[str, Any]:
    storage = ctx.cloud.spec.object_storage
    assert storage is not None  # adapter_problems
    return {
        "adapterDir": ADAPTER_DIR,
        "intervalSeconds": LOADER_INTERVAL_SECONDS,
        "s3": {"endpoint": storage.endpoint, "bucket": storage.bucket, "region": storage.region or "us-east-1",
               "credentialsDir": LOADER_S3_DIR},
        "vllm": {"url": f"http://127.0.0.1:{port}", "keyFile": f"{LOADER_KEY_DIR}/{key_file}"},
        "adapters": [{"name": a.name, "uri": a.uri, "rank": a.rank, "version": uri_hash(a.uri)} for a in adapters],
    }


def loader_configmap(ctx: RenderContext, model: LLMModel, adapters: list[ServedAdapter], labels: dict[str, str],
                     port: int, key_file: str) -> dict[str, Any]:
    """The desired adapters, read by the loader on every pass: a change here reaches the running pods through the
    mounted volume (kubelet's sync), without a new pod."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": loader_config_name(model), "namespace": ctx.namespace, "labels": labels},
        # JSON written by json.dumps: every value reaches the file through its escaper
        "data": {"config.json": json.dumps(loader_config(ctx, adapters, port, key_file), indent=1, sort_keys=True)},
    }


def loader_container() -> dict[str, Any]:
    return {
        "name": "adapter-loader",
        "image": LOADER_IMAGE,
        "command": LOADER_COMMAND,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "resources": LOADER_RESOURCES,
        "securityContext": container_security(read_only_root=True),
        "volumeMounts": [
            {"name": "adapters", "mountPath": ADAPTER_DIR},
            {"name": "adapter-loader-config", "mountPath": f"{LOADER_CONFIG_DIR}/config", "readOnly": True},
            mount("adapter-loader-s3", LOADER_S3_DIR),
            mount("api-key", LOADER_KEY_DIR),
        ],
    }


def loader_volumes(ctx: RenderContext, model: LLMModel) -> list[dict[str, Any]]:
    storage = ctx.cloud.spec.object_storage
    assert storage is not None
    return [
        {"name": "adapters", "emptyDir": {"sizeLimit": ADAPTER_DIR_SIZE}},
        {"name": "adapter-loader-config", "configMap": {"name": loader_config_name(model)}},
        # the S3 credentials as files, as the backup job reads them (components/backup)
        {"name": "adapter-loader-s3", "secret": {"secretName": storage.credentials_secret_ref, "defaultMode": 0o440,
                                                 "items": [{"key": k, "path": k} for k in
                                                           ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]}},
    ]


def vllm_adapter_mount() -> dict[str, Any]:
    return {"name": "adapters", "mountPath": ADAPTER_DIR, "readOnly": True}


# ---- gateway ---------------------------------------------------------------------------------------------

def key_secret_name(adapter: str, consumer: str) -> str:
    """``llm-adapter-key.<adapter>.<consumer>``: the dots keep two pairs apart (neither name may contain one)."""
    return f"{ADAPTER_KEY_PREFIX}.{adapter}.{consumer}"


def consumer_files(ctx: RenderContext) -> list[SecretFile]:
    return [SecretFile(f"{CONSUMER_KEY_DIR}/{a.name}.{c}", key_secret_name(a.name, c), ADAPTER_KEY_SECRET_KEY)
            for a in sorted(ctx.adapters, key=lambda a: a.name) for c in a.consumers]


def adapter_secrets(ctx: RenderContext, component: str, labels: dict[str, str]) -> list[SecretSpec]:
    """One generated key per (adapter, consumer): clients use ``sk-`` + its value, like the master key."""
    return [SecretSpec(name=f.secret, namespace=ctx.namespace, component=component,
                       keys={ADAPTER_KEY_SECRET_KEY: SecretKey("random", 48)}, labels=labels)
            for f in consumer_files(ctx)]


def adapter_routes(ctx: RenderContext, port: int) -> list[dict[str, Any]]:
    return [
        {
            "model_name": a.name,
            # vLLM serves the adapter under its lora_name on the base model's server
            "litellm_params": {"model": f"hosted_vllm/{a.name}", "api_base": f"http://vllm-{a.base_model}:{port}/v1"},
        }
        for a in sorted(ctx.adapters, key=lambda a: a.name)
    ]


def access_table(ctx: RenderContext) -> dict[str, Any]:
    """Who may call what: the master key the base models only, each consumer's key its adapter only. Key files
    are relative to the gateway's keys volume; gateway_access's init step turns them into key hashes."""
    return {
        "master": sorted(m.served for m in ctx.components.llm.models),
        "keys": [{"file": f"{CONSUMER_KEY_DIR}/{a.name}.{c}", "models": [a.name]}
                 for a in sorted(ctx.adapters, key=lambda a: a.name) for c in a.consumers],
    }


def gateway_access(ctx: RenderContext, config_dir: str, key_dir: str, runtime: str) -> dict[str, Any] | None:
    """What gateway.yaml.j2 adds with adapters (None without): the table, the module, its writer, the command."""
    if not ctx.adapters:
        return None
    return {"table": dump_yaml(access_table(ctx)), "module": GATEWAY_ACCESS, "writer": WRITE_ACCESS,
            "command": ["python3", f"{config_dir}/write-access.py", f"{config_dir}/access.yaml", key_dir,
                        f"{config_dir}/gateway_access.py", runtime]}


# ---- offline input (sovereign-suite render --served-adapters FILE) --------------------------------------------

def served_adapters_from(doc: Any, source: str) -> dict[str, list[ServedAdapter]]:
    """``{<country>: [{name, baseModel, uri, rank, consumers}]}`` (a YAML file) -> the ``adapters`` of render_suite.
    The offline stand-in for what the FineTune controller gives the operator's render."""
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputError([Problem(source, "must map a country code to a list of adapters")])
    out: dict[str, list[ServedAdapter]] = {}
    problems = []
    for country, items in doc.items():
        if not isinstance(items, list):
            problems.append(Problem(f"{source}: {country}", "must be a list of adapters"))
            continue
        for i, item in enumerate(items):
            where = f"{source}: {country}[{i}]"
            if not isinstance(item, dict) or set(item) - {"name", "baseModel", "uri", "rank", "consumers"} or \
                    not {"name", "baseModel", "uri", "rank"} <= set(item):
                problems.append(Problem(where, "needs name, baseModel, uri, rank (and consumers), nothing else"))
                continue
            consumers = item.get("consumers") or []
            if not isinstance(consumers, list):
                problems.append(Problem(f"{where}.consumers", "must be a list of names"))
                continue
            out.setdefault(str(country).upper(), []).append(ServedAdapter(
                name=item["name"], base_model=item["baseModel"], uri=str(item["uri"]), rank=item["rank"],
                consumers=tuple(consumers)))
    if problems:
        raise InputError(problems)
    return out
