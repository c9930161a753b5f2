"""LLM inference: one vLLM Deployment per model, and one OpenAI-compatible gateway (LiteLLM proxy) per tenant.

Per model ``<name>``: Deployment and Service ``vllm-<name>`` (port 8000: ``/v1/*``, ``/health``, ``/metrics``),
a model-cache PVC, and a PodDisruptionBudget when it has more than one replica. Pods ask for
``gpusPerReplica`` of the cloud's GPU resource (``--tensor-parallel-size`` is the same number), tolerate the
cloud's GPU taints, and must land on a node of the tenant's regions carrying one of the model's GPU products.

The gateway ``llm-gateway`` (LiteLLM proxy, MIT) routes each served model name to its vLLM Service. It is
stateless (no database), starts without its backends, and authenticates clients with a master key generated
by the operator (Secret ``llm-gateway``, key ``master-key``; the usable key is ``sk-`` + that value).
vLLM's ``/v1`` API needs a second generated key (Secret ``vllm-api-key``), read only by the vLLM pods and the
gateway: a pod of the tenant that reaches a vLLM Service still cannot run inference without the gateway.

With ``spec.monitoring.serviceMonitors`` and the Prometheus Operator API served: one PodMonitor ``vllm`` for every
model's pods. The gateway has none: in the pinned LiteLLM release its Prometheus metrics are Enterprise-only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ...api.models import LLMModel
from ...api.validation import InputError, Problem
from ...api.derived_names import tls_secret_name
from ..ingress import annotations as ingress_annotations
from ..base import (
    image_version,
    RenderContext,
    container_security,
    dump_yaml,
    merge_extra_config,
    pod_security,
    render_template,
)
from ..secret_files import mount, projected_volume
from . import adapters as lora
from .secret_files import (  # noqa: F401 (secrets: the component's Secrets)
    COMPONENT, GATEWAY_NAME, GATEWAY_PART, MASTER_KEY_SECRET_KEY, VLLM_PART, secrets,
    GATEWAY_CONFIG_DIR, GATEWAY_KEY_DIR, GATEWAY_RUNTIME, INIT_RESOURCES, VLLM_KEY_CONFIG, VLLM_KEY_SECRET,
    VLLM_KEY_SECRET_KEY, VLLM_KEY_FILE, gateway_files, gateway_init_command, hf_token_env, memory_dir, vllm_key_init,
    vllm_mounts, vllm_volumes,
)

from .vllm_args import (  # noqa: F401 (re-exported: tests and the gateway import them from here)
    FAMILY_FLAGS, OWNED_FLAGS, VLLM_PORT, check_extra_args, model_family, owned_flag_of, vllm_args,
)

HERE = str(Path(__file__).parent)
WRITE_CONFIG = (Path(HERE) / "templates" / "write-config.py").read_text()
MODEL_LABEL = "sovereignsuite.io/model"

GATEWAY_PORT = 4000  # LiteLLM's default (its image EXPOSEs 4000, its chart's Service uses 4000)
CACHE_MOUNT = "/cache"  # the model-cache PVC; HOME and HF_HOME live on it (the pod runs as a non-root user)
STARTUP_PERIOD_SECONDS = 10
# vLLM refuses /v1 requests without "Authorization: Bearer <key>" once it has a key; /health and /metrics stay open
# for the probes and Prometheus (tests/components/test_llm_api_key.py cites the vLLM source). Both vLLM and the
# gateway read the key from a file (secret_files.py).

# ---- paths of user input (errors name the field the user actually wrote) ---------------------------------

def _llm_path(ctx: RenderContext, field: str) -> str:
    """``spec.components.llm.<field>``, or the tenant's override path when the tenant sets that field."""
    override = ctx.tenant.components.get("llm") or {}
    if field in override:
        index = ctx.suite.spec.tenants.index(ctx.tenant)
        return f"spec.tenants[{index}].components.llm.{field}"
    return f"spec.components.llm.{field}"


# ---- vLLM ------------------------------------------------------------------------------------------------

def served_names(ctx: RenderContext) -> dict[str, str]:
    """Model name -> the name clients ask for."""
    return {m.name: m.served for m in ctx.components.llm.models}


def placement_products(ctx: RenderContext, model: LLMModel, chosen: dict[str, str] | None = None) -> list[str]:
    """The GPU products a model's pods may be scheduled on (the values of the required node affinity on the
    cloud's product label), in order of preference.

    Without ``chosen`` this is every product the model accepts. ``chosen`` (model name -> product) is where
    capacity-aware placement narrows a model to the product it picked; the product must be one the model
    accepts.
    """
    if chosen and model.name in chosen:
        product = chosen[model.name]
        if product not in model.gpu_products:
            raise ValueError(f"model {model.name}: chosen product {product!r} is not one of {model.gpu_products}")
        return [product]
    return list(model.gpu_products)


def preference_weights(count: int) -> list[int]:
    """Weights (1..100) of preferred node affinity terms, highest first: 100, then evenly down."""
    return [max(1, round(100 * (count - i) / count)) for i in range(count)]


def vllm_resources(ctx: RenderContext, model: LLMModel, path: str) -> dict[str, dict[str, str]]:
    """The model's cpu/memory plus ``gpusPerReplica`` of the cloud's GPU resource, in requests and limits
    alike (an extended resource cannot be overcommitted: its request must equal its limit)."""
    gpu = ctx.cloud.spec.gpu.resource_name
    out: dict[str, dict[str, str]] = {}
    problems = []
    for kind in ("requests", "limits"):
        given = getattr(model.resources, kind)
        if gpu in given:
            problems.append(Problem(f"{path}.{kind}.{gpu}", "is set by the operator from gpusPerReplica"))
        out[kind] = {k: str(v) for k, v in sorted(given.items())}
        out[kind][gpu] = str(model.gpus_per_replica)
    if problems:
        raise InputError(problems)
    return out


def vllm_affinity(ctx: RenderContext, products: list[str]) -> dict[str, Any]:
    gpu = ctx.cloud.spec.gpu
    extra = [{"key": gpu.product_label, "operator": "In", "values": products}]
    extra += [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(gpu.node_selector.items())]
    affinity = ctx.region_affinity(extra=extra)
    if len(products) > 1:
        affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": w, "preference": {"matchExpressions": [{"key": gpu.product_label, "operator": "In",
                                                               "values": [p]}]}}
            for p, w in zip(products, preference_weights(len(products)))
        ]
    return affinity


def vllm_env(ctx: RenderContext) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        # The pod runs as a non-root user without a passwd entry: HOME (Triton, FlashInfer and torch.compile
        # caches, vLLM's config root) and HF_HOME (the weights) are on the cache volume, so they survive restarts.
        {"name": "HOME", "value": CACHE_MOUNT},
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/huggingface"},
        {"name": "USER", "value": "vllm"},  # getpass.getuser() (torch inductor) fails without a passwd entry
        # Sovereignty: no usage reports to vLLM's or Hugging Face's servers.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if hf_token_ref(ctx) is not None:
        env.append(hf_token_env())  # the token as a file of the user's Secret (secret_files.py)
    return env


def hf_token_ref(ctx: RenderContext) -> tuple[str, str] | None:
    ref = ctx.components.llm.hugging_face_token_secret_ref
    return None if ref is None else (ref.name, ref.key)


def cache_access_mode(model: LLMModel) -> str:
    """One replica: ReadWriteOnce. More: the replicas share the cache, so ReadWriteMany (the cloud's
    storage class must support it). The access mode of a PVC is immutable, so each mode has its own PVC."""
    return "ReadWriteMany" if model.replicas > 1 else "ReadWriteOnce"


def cache_claim_name(model: LLMModel) -> str:
    suffix = "-shared" if cache_access_mode(model) == "ReadWriteMany" else ""
    return f"vllm-{model.name}-cache{suffix}"


def render_models(ctx: RenderContext, placements: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The vLLM objects of every model. ``placements`` (model name -> GPU product) pins a model to one product
    (see :func:`placement_products`); ``render`` passes None: every product the model accepts."""
    llm = ctx.components.llm
    models_path = _llm_path(ctx, "models")
    version = image_version(llm.image)
    failure_threshold = math.ceil(llm.startup_timeout_seconds / STARTUP_PERIOD_SECONDS)
    lora.check_adapters(ctx)
    security = {**pod_security(), "fsGroupChangePolicy": "OnRootMismatch"}  # no recursive chown of the cache
    objects: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, model in enumerate(llm.models):
        path = f"{models_path}[{i}]"
        adapters = lora.model_adapters(ctx, model)
        try:
            args = vllm_args(model, f"{path}.extraArgs", adapters)
            resources = vllm_resources(ctx, model, f"{path}.resources")
        except InputError as err:
            problems += err.problems
            continue
        model_label = {MODEL_LABEL: model.name}
        labels = {**ctx.labels(COMPONENT, VLLM_PART, version), **model_label}
        secret_mounts = vllm_mounts(hf_token_ref(ctx))
        secret_volumes = vllm_volumes(hf_token_ref(ctx))
        env = vllm_env(ctx)
        sidecars: list[dict[str, Any]] = []
        if adapters:
            objects.append(lora.loader_configmap(ctx, model, adapters, labels, VLLM_PORT, VLLM_KEY_FILE))
            env += lora.lora_env()
            secret_mounts.append(lora.vllm_adapter_mount())
            secret_volumes += lora.loader_volumes(ctx, model)
            sidecars.append(lora.loader_container())
        objects += render_template(
            HERE,
            "vllm.yaml.j2",
            ctx=ctx,
            obj_name=f"vllm-{model.name}",
            model=model,
            image=llm.image,
            labels=labels,
            selector={**ctx.selector(COMPONENT, VLLM_PART), **model_label},
            args=args,
            env=env,
            key_init=vllm_key_init(llm.image, container_security(read_only_root=True)),
            secret_mounts=secret_mounts,
            secret_volumes=secret_volumes,
            sidecars=sidecars,
            resources=resources,
            affinity=vllm_affinity(ctx, placement_products(ctx, model, placements)),
            tolerations=[t.wire() for t in ctx.cloud.spec.gpu.tolerations],
            pod_security=security,
            container_security=container_security(read_only_root=True),
            port=VLLM_PORT,
            cache_mount=CACHE_MOUNT,
            cache_claim=cache_claim_name(model),
            cache_access_mode=cache_access_mode(model),
            storage_class=ctx.storage_class,
            startup_period=STARTUP_PERIOD_SECONDS,
            startup_failure_threshold=failure_threshold,
        )
    if problems:
        raise InputError(problems)
    return objects


# ---- gateway ---------------------------------------------------------------------------------------------

def gateway_config(ctx: RenderContext) -> dict[str, Any]:
    """LiteLLM's config.yaml without its keys: one route per served name to its vLLM Service, and llm.extraConfig
    merged over it (model_list and general_settings.master_key are the operator's: the gateway's init container
    adds the master key and each route's api_key from the Secrets' files, secret_files.py)."""
    llm = ctx.components.llm
    model_list = [
        {
            "model_name": m.served,
            "litellm_params": {
                "model": f"hosted_vllm/{m.served}",  # LiteLLM's provider for vLLM's OpenAI-compatible server
                "api_base": f"http://vllm-{m.name}:{VLLM_PORT}/v1",
            },
        }
        for m in llm.models
    ] + lora.adapter_routes(ctx, VLLM_PORT)
    owned_general: dict[str, Any] = {"master_key": None}  # set by the init container
    if ctx.adapters:  # who may call which model: gateway_access.py, beside the config the init container writes
        owned_general["custom_auth"] = lora.CUSTOM_AUTH
        owned_general["custom_auth_settings"] = None  # its mode "off"/"auto" would bypass or soften the check
    extra = dict(llm.extra_config)
    path = _llm_path(ctx, "extraConfig")
    general = extra.pop("general_settings", {})
    if not isinstance(general, dict):
        raise InputError([Problem(f"{path}.general_settings", "must be an object")])
    config = merge_extra_config({"model_list": model_list}, extra, path)
    general = merge_extra_config(owned_general, general, f"{path}.general_settings")
    del general["master_key"]
    general.pop("custom_auth_settings", None)
    if general:
        config["general_settings"] = general
    return config


def render_gateway(ctx: RenderContext) -> list[dict[str, Any]]:
    gateway = ctx.components.llm.gateway
    config_text = dump_yaml(gateway_config(ctx))
    host = ctx.host("llm")
    key_files = gateway_files(GATEWAY_NAME, MASTER_KEY_SECRET_KEY) + lora.consumer_files(ctx)
    access = lora.gateway_access(ctx, GATEWAY_CONFIG_DIR, GATEWAY_KEY_DIR, GATEWAY_RUNTIME)
    return render_template(
        HERE,
        "gateway.yaml.j2",
        ctx=ctx,
        obj_name=GATEWAY_NAME,
        gateway=gateway,
        labels=ctx.labels(COMPONENT, GATEWAY_PART, image_version(gateway.image)),
        selector=ctx.selector(COMPONENT, GATEWAY_PART),
        config_text=config_text,
        port=GATEWAY_PORT,
        write_config=WRITE_CONFIG,
        init_command=gateway_init_command(),
        init_resources=INIT_RESOURCES,
        config_dir=GATEWAY_CONFIG_DIR,
        runtime_dir=GATEWAY_RUNTIME,
        keys_mount=mount("keys", GATEWAY_KEY_DIR),
        keys_volume=projected_volume("keys", key_files),
        access=access,
        runtime_volume=memory_dir("runtime"),
        resources={
            kind: {k: str(v) for k, v in sorted(getattr(gateway.resources, kind).items())}
            for kind in ("requests", "limits")
        },
        affinity=ctx.region_affinity(),
        pod_security=pod_security(),
        container_security=container_security(read_only_root=True),
        host=host,
        tls_secret=tls_secret_name(host),
        ingress_annotations=ingress_annotations(ctx, "llm", gateway.max_body_size, gateway.timeout_seconds),
    )


# ---- the component -------------------------------------------------------------------------------------

def render(ctx: RenderContext) -> list[dict[str, Any]]:
    problems: list[Problem] = []
    objects: list[dict[str, Any]] = []
    parts = (lambda c: render_models(c, dict(c.placements) or None), render_gateway)
    for part in parts:
        try:
            objects += part(ctx)
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(problems)
    return objects + render_monitoring(ctx)


def render_monitoring(ctx: RenderContext) -> list[dict[str, Any]]:
    """A PodMonitor for the vLLM pods (with spec.monitoring.serviceMonitors and the Prometheus Operator). None for
    the gateway: LiteLLM's Prometheus metrics are an Enterprise feature in the pinned release (docs/observability.md)."""
    if not ctx.service_monitors or not ctx.components.llm.models:
        return []
    return render_template(HERE, "monitoring.yaml.j2", ctx=ctx, obj_name="vllm", model_label=MODEL_LABEL,
                           labels=ctx.labels(COMPONENT, VLLM_PART, image_version(ctx.components.llm.image)),
                           selector=ctx.selector(COMPONENT, VLLM_PART))
