"""A FineTune's training run, rendered (pure, deterministic): the Job in the tenant's namespace of the tenant's own
cluster, the NetworkPolicy that lets its pod reach the country's object storage and DNS and nothing else, at the
PriorityClass the chart installs (docs/llm-finetuning.md, "The FineTune resource").

- Placement: the serving pods' (components/llm vllm_affinity): the tenant cloud's regions, its GPU product label
  In the products that can hold the run (reconcile/training_memory.py, in the model's order of preference, the first
  preferred), its GPU node selector and tolerations; one GPU of the cloud's resource.
- Priority: ``sovereign-suite-fine-tuning`` (the chart's templates/rbac-finetune.yaml), value -100 with
  ``preemptionPolicy: Never``. Serving pods carry no
  PriorityClass (priority 0, the cluster's default when it has no globalDefault class), so the scheduler may evict a
  training pod to place a serving replica, and a training pod never evicts anything: it waits for a free GPU.
- Security: no service account token, non-root (uid 1000), read-only root file system, every capability dropped,
  RuntimeDefault seccomp; the storage credentials as files of the cloud's objectStorage Secret (mode 0440), never
  in the environment. The image is the operator's (api/image_pins.py "trainer"), never the FineTune's: the pod
  holds the bucket's credentials.
- The base model's weights are read from the country's storage too (``models/<modelId>/`` in the bucket, a mirror
  the platform team fills): the pod may not reach Hugging Face.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...api.finetune_models import FineTune
from ...api.image_pins import pinned
from ...api.network import merged
from ...imageref import rewrite_objects
from ...reconcile.finetune_checks import Resolved, artifacts_prefix
from ...reconcile.gpu_memory import MIB_PER_GIB
from ..base import (LABEL_SUITE, LABEL_SUITE_NS, RenderContext, build_contexts, container_security, pod_security, render_template,
                    short_hash)
from ..llm import vllm_affinity
from ..tenancy.network import DNS_PEER, FINETUNE_LABEL, FINETUNE_POD, MONITORING

HERE = str(Path(__file__).parent)
COMPONENT = "finetune"
POD_NAME = FINETUNE_POD  # app.kubernetes.io/name of the training pods: tenancy/network.py keeps them out of the
# namespace-wide same-namespace egress rule
LABEL_FINETUNE = FINETUNE_LABEL  # tenancy/network.py leaves pods with this label out of the same-namespace rule
LABEL_FINETUNE_NS = "sovereignsuite.io/finetune-namespace"
PRIORITY_CLASS = "sovereign-suite-fine-tuning"
IMAGE = pinned("trainer")
UID = 1000
MOUNT = "/etc/finetune"
S3_DIR = f"{MOUNT}/s3"
WORK = "/work"  # the base weights, the dataset and the adapter before upload (disk)
METRICS_PORT = 9400
RESULT_FILE = "/dev/termination-log"  # the trainer's JSON result: the Job's pod's termination message
MODELS_PREFIX = "models/"  # the base models' weights in the bucket: models/<modelId>/
CPU = {"requests": "4", "limits": "8"}
MEMORY_MARGIN_GIB = 8  # beyond the weights, which are read into host memory before they move to the GPU
WORK_MARGIN_GIB = 16  # beyond the weights, for the dataset, checkpoints and the adapter
RUN_HASH = "sovereignsuite.io/run-hash"
ACTIVE_DEADLINE_SECONDS = 3 * 24 * 3600  # a run that has not ended in three days is stuck: Failed


def object_name(ft: FineTune) -> str:
    """The Job's and NetworkPolicy's name in the tenant namespace, where FineTunes of several namespaces meet:
    the FineTune's name (<= 40) and a hash of its namespace and name (ft-<name>-<8 hex>, <= 52 characters)."""
    return f"ft-{ft.name}-{short_hash(ft.namespace, ft.name)}"


def base_model_uri(resolved: Resolved) -> str:
    storage = resolved.cloud.spec.object_storage
    assert storage is not None  # checked: NoObjectStorage
    return f"s3://{storage.bucket}/{MODELS_PREFIX}{resolved.model.model_id.strip('/')}/"


def adapter_uri(ft: FineTune, resolved: Resolved) -> str:
    storage = resolved.cloud.spec.object_storage
    assert storage is not None
    return f"s3://{storage.bucket}/{artifacts_prefix(ft)}adapter/"


def _number(value: float) -> str:
    return repr(float(value))  # round-trips exactly: the trainer parses the same float


def trainer_args(ft: FineTune, resolved: Resolved) -> list[str]:
    """The trainer's command line (``python -m sovereign_suite.finetune.trainer``), in one place: each value its own
    argument (no shell), every one validated by the FineTune's schema or derived from the cloud's."""
    spec, storage = ft.spec, resolved.cloud.spec.object_storage
    assert storage is not None
    return [
        "--base-model", base_model_uri(resolved),
        "--dataset", spec.dataset.uri,
        "--eval-fraction", _number(spec.dataset.eval_fraction),
        "--output", adapter_uri(ft, resolved),
        "--rank", str(spec.lora.rank),
        "--alpha", str(spec.lora.alpha),
        "--dropout", _number(spec.lora.dropout),
        "--target-modules", ",".join(spec.lora.target_modules),
        "--learning-rate", _number(spec.training.learning_rate),
        "--steps", str(spec.training.steps),
        "--batch-size", str(spec.training.batch_size),
        "--seq-len", str(spec.training.sequence_length),
        "--s3-endpoint", storage.endpoint,
        "--s3-region", storage.region or "us-east-1",
        "--credentials-dir", S3_DIR,
        "--result-file", RESULT_FILE,
        "--metrics-port", str(METRICS_PORT),
    ]


def run_hash(ft: FineTune, resolved: Resolved) -> str:
    """What the run does (its arguments, image and GPU products), hashed: equal hashes, the same run."""
    return short_hash(IMAGE, *trainer_args(ft, resolved), *resolved.products, length=16)


def tenant_context(resolved: Resolved) -> RenderContext:
    clouds = {resolved.cloud.name: resolved.cloud}
    suite = resolved.suite.model_copy(update={"spec": resolved.suite.spec.model_copy(
        update={"tenants": [resolved.tenant]})})
    (ctx,) = build_contexts(suite, clouds)
    return ctx


def labels(ctx: RenderContext, ft: FineTune) -> dict[str, str]:
    """The tenant's labels without the suite's: these objects are the FineTune's, never the suite's children (its
    informers map an object to a suite by sovereignsuite.io/suite, and its prune would delete what it does not
    render)."""
    own = {k: v for k, v in ctx.labels(COMPONENT, POD_NAME).items() if k not in (LABEL_SUITE, LABEL_SUITE_NS)}
    return {**own, LABEL_FINETUNE: ft.name, LABEL_FINETUNE_NS: ft.namespace}


def pod_selector(ft: FineTune) -> dict[str, str]:
    return {LABEL_FINETUNE: ft.name, LABEL_FINETUNE_NS: ft.namespace}


def resources(resolved: Resolved) -> dict[str, dict[str, str]]:
    weights_gib = int((resolved.estimate.weights_mib or 0) / MIB_PER_GIB) + 1
    memory = f"{weights_gib + MEMORY_MARGIN_GIB}Gi"
    gpu = resolved.cloud.spec.gpu.resource_name
    return {"requests": {"cpu": CPU["requests"], "memory": memory, gpu: "1"},
            "limits": {"cpu": CPU["limits"], "memory": memory, gpu: "1"}}


def work_size(resolved: Resolved) -> str:
    return f"{int((resolved.estimate.weights_mib or 0) / MIB_PER_GIB) + 1 + WORK_MARGIN_GIB}Gi"


def egress_policy(ctx: RenderContext, ft: FineTune) -> dict[str, Any]:
    """DNS, and the object storage's declared addresses (the cloud's and the suite's objectStorage egress): the only
    ways out of the training pod. Ingress: the monitoring namespace to the metrics port."""
    rules = merged(ctx.cloud.spec.network, ctx.suite.spec.network)["object_storage"]
    storage = [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in r.cidrs],
                "ports": [{"protocol": p.protocol, "port": p.port} for p in r.ports]} for r in rules]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": object_name(ft), "namespace": ctx.namespace, "labels": labels(ctx, ft)},
        "spec": {
            "podSelector": {"matchLabels": pod_selector(ft)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [MONITORING], "ports": [{"protocol": "TCP", "port": METRICS_PORT}]}],
            "egress": [{"to": [DNS_PEER], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                       *storage],
        },
    }


def render(ft: FineTune, resolved: Resolved) -> list[dict[str, Any]]:
    """The NetworkPolicy and the Job of a FineTune that passed check_finetune."""
    ctx = tenant_context(resolved)
    storage = resolved.cloud.spec.object_storage
    assert storage is not None
    job = render_template(
        HERE, "job.yaml.j2",
        obj_name=object_name(ft),
        namespace=ctx.namespace,
        labels=labels(ctx, ft),
        # a Job's pod template is immutable: the apply step replaces the Job when what the run does changes
        annotations={RUN_HASH: run_hash(ft, resolved)},
        image=IMAGE,
        command=["python3", "-m", "sovereign_suite.finetune.trainer"],
        args=trainer_args(ft, resolved),
        env=[{"name": "HOME", "value": WORK}, {"name": "HF_HOME", "value": f"{WORK}/huggingface"},
             # nothing is fetched from Hugging Face (the pod cannot reach it) and nothing is reported
             {"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
             {"name": "DO_NOT_TRACK", "value": "1"}],
        resources=resources(resolved),
        affinity=vllm_affinity(ctx, list(resolved.products)),
        tolerations=[t.wire() for t in ctx.cloud.spec.gpu.tolerations],
        priority_class=PRIORITY_CLASS,
        pod_security=pod_security(UID),
        container_security=container_security(read_only_root=True),
        credentials_secret=storage.credentials_secret_ref,
        s3_dir=S3_DIR,
        work=WORK,
        work_size=work_size(resolved),
        metrics_port=METRICS_PORT,
        result_file=RESULT_FILE,
        active_deadline=ACTIVE_DEADLINE_SECONDS,
    )
    objects = [egress_policy(ctx, ft), *job]
    return rewrite_objects(objects, ctx.cloud.spec.image_registry)
