"""The FineTune controller in the operator process, on the local control plane (kwok GPU nodes, the real
scheduler, Job and garbage collectors): a FineTune gets the finalizer, its Job and NetworkPolicy in the tenant's
namespace, and a status that follows the Job and the trainer's result; once converged the operator writes nothing
for it; a promoted adapter is served by the tenant's vLLM and gateway and the FineTune is then Ready; a change of
what the run does replaces the Job and unloads the adapter; a refused FineTune names the field and nothing is
applied; deleting the FineTune deletes its Job, its pod and its NetworkPolicy, then the finalizer.

kwok runs a Job's pod to Succeeded at once, with no termination message: the trainer's result is written into the
pod's status here, as the kubelet would copy it from /dev/termination-log (tests/test_trainer_run.py runs the
trainer itself). A cloud and a suite of this module's own: the cloud declares the object storage the examples'
clouds do not."""

from __future__ import annotations

import copy
import json
import re
import uuid

import pytest
import yaml

from sovereign_suite.api.finetune_models import FineTune
from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile.kube import Kube
from sovereign_suite.reconcile.status import now

from ..finetune_fixtures import MISTRAL, STORAGE, STORAGE_CIDR
from ..helpers import CLOUDS
from .conftest import wait_for
from .operator_fixture import Audit
from .test_finetune_job import chart_priority_class

FT = ("sovereignsuite.io/v1alpha1", "FineTune")
SUITE = ("sovereignsuite.io/v1alpha1", "SovereignSuite")
CLOUD = ("sovereignsuite.io/v1alpha1", "NationalCloud")
FINALIZER = "sovereignsuite.io/finetune-cleanup"
ADAPTERS_CM = "vllm-mistral-small-adapters"  # what the loader sidecar loads (components/llm/adapters.py)


@pytest.fixture(scope="module")
def setup(kube: Kube, operator):
    """A NationalCloud with object storage (FR's regions and GPUs), a suite whose FR tenant serves an open model
    and admits the administration's namespace, the chart's PriorityClass; the operator makes the tenant."""
    tag = uuid.uuid4().hex[:6]
    suite_ns, admin_ns, name, cloud = f"t-ftop-{tag}", f"t-ftadm-{tag}", f"ft{tag}", f"fr-ft-{tag}"
    for ns in (suite_ns, admin_ns):
        kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    storage_credentials(kube, suite_ns)
    if kube.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS) is None:
        kube.create(chart_priority_class())
    doc = next(d for d in yaml.safe_load_all(CLOUDS.read_text()) if d and d["metadata"]["name"] == "fr-secnumcloud")
    doc["metadata"] = {"name": cloud}
    doc["spec"]["suiteNamespaces"] = [suite_ns]
    doc["spec"]["objectStorage"] = STORAGE
    doc["spec"]["network"]["egress"]["objectStorage"] = [{"cidrs": [STORAGE_CIDR], "ports": [{"port": 443}]}]
    kube.create(doc)
    closed = {**{k: v for k, v in MISTRAL.items() if k != "license"}, "name": "llama", "license": "llama3.1",
              "modelId": "meta-llama/Llama-3.1-8B-Instruct", "replicas": 0}
    suite = {"apiVersion": SUITE[0], "kind": SUITE[1], "metadata": {"name": name, "namespace": suite_ns},
             "spec": {"domain": "ft.example.eu", "deletionPolicy": "Delete",
                      "tenants": [{"country": "FR", "cloud": cloud, "fineTuneNamespaces": [admin_ns]}],
                      "components": {"matrix": {"enabled": False}, "jitsi": {"enabled": False},
                                     "docs": {"enabled": False},
                                     # no serving replica: every GPU is free for the training pods
                                     "llm": {"enabled": True, "models": [{**MISTRAL, "replicas": 0}, closed]}}}}
    kube.create(suite)
    tenant = f"{name}-fr"
    wait_for(lambda: kube.get("v1", "Namespace", tenant), timeout=120, what=f"the tenant namespace {tenant}")
    yield {"suite": name, "suite_ns": suite_ns, "admin": admin_ns, "tenant": tenant, "cloud": cloud}
    remove_setup(kube, suite, admin_ns, cloud)


def storage_credentials(kube: Kube, suite_ns: str) -> None:
    """The storage credentials the training pod mounts (a FineTune without them is refused: MissingSecret), in the
    suite's namespace, referenceable: the suite's pass copies them into the tenant's namespace (a member's too)."""
    kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": STORAGE["credentialsSecretRef"], "namespace": suite_ns,
        "labels": {"sovereignsuite.io/referenceable": "true"}},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIDFINETUNETESTS", "AWS_SECRET_ACCESS_KEY": "not-used-here"}})


def remove_setup(kube: Kube, suite: dict, admin_ns: str, cloud: str) -> None:
    """A setup's end: its FineTunes, its suite (waited for), its NationalCloud, the suite's and the administration's
    namespaces."""
    for ft in kube.list(*FT, namespace=admin_ns):
        kube.delete(ft)
    kube.delete(suite)
    name, suite_ns = suite["metadata"]["name"], suite["metadata"]["namespace"]
    wait_for(lambda: kube.get(*SUITE, name, suite_ns) is None, timeout=120, what="the suite deleted")
    kube.delete({"apiVersion": CLOUD[0], "kind": CLOUD[1], "metadata": {"name": cloud}})
    for ns in (suite_ns, admin_ns):
        kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


def finetune(setup: dict, name: str, **spec) -> dict:
    doc = {"apiVersion": FT[0], "kind": FT[1], "metadata": {"name": name, "namespace": setup["admin"]},
           "spec": {"suite": {"name": setup["suite"], "namespace": setup["suite_ns"]}, "country": "FR",
                    "baseModel": "mistral-small",
                    "dataset": {"uri": f"s3://{STORAGE['bucket']}/fine-tuning/{setup['admin']}/{name}.jsonl"},
                    "lora": {"rank": 16, "targetModules": ["q_proj", "v_proj"]},
                    "training": {"steps": 100, "batchSize": 2, "sequenceLength": 1024},
                    "consumers": [{"name": "greffe-app"}]}}
    doc["spec"].update(spec)
    return doc


def job_name(doc: dict) -> str:
    return renderer.object_name(FineTune.model_validate(doc))


def status_of(kube: Kube, doc: dict) -> dict:
    live = kube.get(*FT, doc["metadata"]["name"], doc["metadata"]["namespace"]) or {}
    return live.get("status") or {}


def conditions(status: dict) -> dict:
    return {c["type"]: (c["status"], c["reason"], c.get("message", "")) for c in status.get("conditions") or []}


def pods_of(kube: Kube, ns: str, job: str) -> list[dict]:
    return kube.list("v1", "Pod", namespace=ns, label_selector=f"job-name={job}")


def write_result(kube: Kube, pod: dict, result: dict) -> None:
    """The trainer's result in the pod's status, where the kubelet puts /dev/termination-log."""
    container = pod["spec"]["containers"][0]
    kube.merge_patch("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": {
        "containerStatuses": [{"name": "trainer", "image": container["image"], "imageID": "", "ready": False,
                               "restartCount": 0, "state": {"terminated": {
                                   "exitCode": 0, "reason": "Completed", "message": json.dumps(result)}}}]}},
        sub="status")


def settle(operator, audit: Audit, passes: int = 2) -> int:
    """The audit mark, then ``passes`` drift passes (every FineTune is enqueued with the suites)."""
    mark = audit.mark()
    before = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
    wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + passes,
             timeout=60, what=f"{passes} drift passes")
    return mark


def test_a_finetune_runs_in_its_tenant_its_status_follows_and_a_converged_one_writes_nothing(
        kube: Kube, operator, setup, cluster) -> None:
    doc = finetune(setup, "summaries")
    kube.create(doc)
    ns, name = setup["tenant"], job_name(doc)
    job = wait_for(lambda: kube.get("batch/v1", "Job", name, ns), timeout=60, what="the training Job")
    policy = kube.get("networking.k8s.io/v1", "NetworkPolicy", name, ns)
    assert policy is not None and policy["spec"]["podSelector"]["matchLabels"] == {
        renderer.LABEL_FINETUNE: "summaries", renderer.LABEL_FINETUNE_NS: setup["admin"]}
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["priorityClassName"] == renderer.PRIORITY_CLASS and "sovereignsuite.io/suite" not in \
        job["metadata"]["labels"]  # the FineTune's, never the suite's child (its prune would delete it)
    live = kube.get(*FT, "summaries", setup["admin"])
    assert FINALIZER in live["metadata"]["finalizers"]
    # kwok's pod ends at once without the trainer's result: never served
    st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") == "NotPromoted" and s, timeout=90,
                  what="NotPromoted")
    assert st["job"] == f"{ns}/{name}" and conditions(st)["Stalled"][:2] == ("True", "NotPromoted")
    assert "no eval loss" in conditions(st)["Stalled"][2]
    # the trainer's result, as it writes it: promoted (1.4 < 2.0)
    uri = f"s3://{STORAGE['bucket']}/fine-tuning/{setup['admin']}/summaries/adapter/"
    (pod,) = pods_of(kube, ns, name)
    write_result(kube, pod, {"phase": "Succeeded", "step": 100, "totalSteps": 100, "loss": 1.1, "baseEvalLoss": 2.0,
                             "evalLoss": 1.4, "tokensPerSecond": 900.0, "durationSeconds": 42.0, "adapterUri": uri})
    # promoted: the suite's pass serves it in the tenant (vLLM's LoRA flags, the loader's list, a gateway route
    # and the consumer's key), and then the FineTune is Ready
    served = f"{setup['admin']}-summaries"
    st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") == "Ready" and s, timeout=90,
                  what="Ready: the adapter served")
    assert (st["progress"], st["evalLoss"], st["baseEvalLoss"], st["adapterUri"]) == ("100/100", 1.4, 2.0, uri)
    assert st["servedName"] == served and conditions(st)["Ready"][:2] == ("True", "Served")
    assert conditions(st)["Stalled"][0] == "False" and conditions(st)["Reconciling"][0] == "False"
    config = json.loads(kube.get("v1", "ConfigMap", ADAPTERS_CM, ns)["data"]["config.json"])
    assert [(a["name"], a["uri"], a["rank"]) for a in config["adapters"]] == [(served, uri, 16)]
    vllm = kube.get("apps/v1", "Deployment", "vllm-mistral-small", ns)
    args = [a for c in vllm["spec"]["template"]["spec"]["containers"] for a in c.get("args") or []]
    assert "--enable-lora" in args and args[args.index("--max-lora-rank") + 1] == "16"
    assert any(f"model_name: {served}" in "".join((cm.get("data") or {}).values())
               for cm in kube.list("v1", "ConfigMap", namespace=ns))  # the gateway's route
    assert kube.get("v1", "Secret", f"llm-adapter-key.{served}.greffe-app", ns) is not None
    # the operator's metrics of the FineTune (metrics.py record_finetune): its phase and its run's result
    labels = {"finetune_namespace": setup["admin"], "finetune": "summaries", "country": "FR"}
    wait_for(lambda: operator.metric("sovereign_suite_finetune_phase", **labels, phase="Ready") == 1, timeout=30,
             what="phase Ready exported")
    assert operator.metric("sovereign_suite_finetune_phase", **labels, phase="NotPromoted") == 0
    assert (operator.metric("sovereign_suite_finetune_eval_loss", **labels),
            operator.metric("sovereign_suite_finetune_base_eval_loss", **labels),
            operator.metric("sovereign_suite_finetune_step", **labels)) == (1.4, 2.0, 100)
    # converged: drift passes read, and write nothing of the FineTune's
    audit = Audit(cluster)
    mark = settle(operator, audit)
    quiet = settle(operator, audit)
    ours = [w for w in audit.writes(mark) if "finetunes" in w or f"/{name}" in w]
    assert ours == []
    # and read nothing either: the ended Job's pod and the adapters ConfigMap were read once (FineTuneMemory),
    # everything else comes from the watch caches
    reads = [f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name', '')}"
             for e in audit.events(quiet) if e.get("verb") in ("get", "list")
             and (e.get("objectRef") or {}).get("namespace") == ns]
    assert reads == []
    # a restart: the first passes know the suite and the FineTune together (handlers.configure lists both before
    # the workers start; Kopf's watches would bring them in no set order), so nothing served is dropped for a
    # pass and the FineTune's status does not change
    operator.stop()
    mark = audit.mark()
    operator.start()
    settle(operator, audit, passes=3)
    touched = [w for w in audit.writes(mark) if "finetunes" in w or f"/{name}" in w or ADAPTERS_CM in w
               or "vllm-mistral-small" in w]
    assert touched == []
    assert status_of(kube, doc).get("phase") == "Ready"
    # what the run does changes (more steps): the Job is replaced, and the status forgets the old run's result
    kube.merge_patch(*FT, "summaries", setup["admin"], {"spec": {"training": {"steps": 200}}})
    old_hash = job["metadata"]["annotations"][renderer.RUN_HASH]
    new = wait_for(lambda: (j := kube.get("batch/v1", "Job", name, ns)) and not j["metadata"].get(
        "deletionTimestamp") and j["metadata"]["annotations"][renderer.RUN_HASH] != old_hash and j, timeout=90,
        what="the Job replaced")
    assert "--steps" in (args := new["spec"]["template"]["spec"]["containers"][0]["args"]) and \
        args[args.index("--steps") + 1] == "200"
    st = wait_for(lambda: (s := status_of(kube, doc)).get("observedGeneration") == 2 and s.get("phase") ==
                  "NotPromoted" and s, timeout=90, what="the new run's status")
    assert "evalLoss" not in st and "progress" not in st and "servedName" not in st
    assert operator.series("sovereign_suite_finetune_eval_loss", **labels) == []  # the old run's
    # the new run is not promoted: the adapter is no longer served
    wait_for(lambda: kube.get("v1", "ConfigMap", ADAPTERS_CM, ns) is None, timeout=90, what="the adapter unloaded")


@pytest.mark.parametrize("name, spec, reason, field", [
    ("outside", {"dataset": {"uri": "s3://de-suite-data/fine-tuning/x/outside.jsonl"}}, "DatasetOutsideCountry",
     "spec.dataset.uri"),
    ("closed", {"baseModel": "llama"}, "LicenceNotOpen", "spec.baseModel"),
])
def test_a_refused_finetune_names_the_field_and_nothing_is_applied(kube: Kube, operator, setup, name, spec, reason,
                                                                    field) -> None:
    doc = finetune(setup, name, **spec)
    kube.create(doc)
    st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") and s, timeout=60, what="a status")
    stalled = conditions(st)["Stalled"]
    assert (st["phase"], stalled[0], stalled[1]) == ("Pending", "True", reason) and stalled[2].startswith(field)
    assert conditions(st)["Ready"][0] == "False"
    labels = f"{renderer.LABEL_FINETUNE}={name},{renderer.LABEL_FINETUNE_NS}={setup['admin']}"
    for kind in (("batch/v1", "Job"), ("networking.k8s.io/v1", "NetworkPolicy")):
        assert kube.list(*kind, label_selector=labels) == []
    kube.delete(doc)
    wait_for(lambda: kube.get(*FT, name, setup["admin"]) is None, timeout=60, what="the refused FineTune deleted")


def test_deleting_a_finetune_deletes_its_job_pods_and_policy_then_the_finalizer(kube: Kube, operator, setup) -> None:
    doc = finetune(setup, "deleted")
    kube.create(doc)
    ns, name = setup["tenant"], job_name(doc)
    wait_for(lambda: pods_of(kube, ns, name), timeout=90, what="the training pod")
    wait_for(lambda: operator.series("sovereign_suite_finetune_phase", finetune="deleted"), timeout=30,
             what="the FineTune's series")
    kube.delete(copy.deepcopy(doc))
    wait_for(lambda: kube.get(*FT, "deleted", setup["admin"]) is None, timeout=90, what="the FineTune gone")
    assert kube.get("batch/v1", "Job", name, ns) is None
    assert kube.get("networking.k8s.io/v1", "NetworkPolicy", name, ns) is None
    assert pods_of(kube, ns, name) == []  # foreground deletion: the pods went before the Job
    # its series go with it (the DELETED event)
    wait_for(lambda: operator.series("sovereign_suite_finetune_phase", finetune="deleted") == [], timeout=30,
             what="the deleted FineTune's series removed")


FR_GPU_PRODUCTS = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3")  # MISTRAL's gpuProducts


def fr_gpu_nodes(kube: Kube) -> list[dict]:
    """The simulated FR nodes of the model's products (kwok's: the cloud's region, labelled by the seed)."""
    return [n for n in kube.list("v1", "Node")
            if (n["metadata"].get("labels") or {}).get("nvidia.com/gpu.product") in FR_GPU_PRODUCTS
            and n["metadata"]["labels"].get("sovereignsuite.io/simulated-country") == "FR"]


def free_gpus(kube: Kube, node: dict) -> int:
    used = sum(int(((c.get("resources") or {}).get("requests") or {}).get("nvidia.com/gpu", 0))
               for p in kube.list("v1", "Pod", field_selector=f"spec.nodeName={node['metadata']['name']}")
               if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
               for c in p["spec"]["containers"])
    return int(node["status"]["allocatable"].get("nvidia.com/gpu", 0)) - used


def set_serving(kube: Kube, setup: dict, replicas: int, gpus: int | None, quota: int | None = None,
                fine_tuning_gpus: int | None = None) -> None:
    """The served model's replicas and GPUs per replica (``None``: as the module's setup has it), the GPU quota of
    the tenant's pods but training's (``tenant-serving``): the serving replicas' GPUs (at least the default 8), or
    ``quota`` GPUs; and the training pods' own share (``tenant-fine-tuning``): ``fine_tuning_gpus``, or its
    default. Training is not counted in serving's share (components/tenancy/__init__.py)."""
    suite = kube.get(*SUITE, setup["suite"], setup["suite_ns"])
    models = suite["spec"]["components"]["llm"]["models"]
    for m in models:
        if m["name"] == MISTRAL["name"]:
            m["replicas"] = replicas
            m.pop("gpusPerReplica", None)
            if gpus is not None:
                m["gpusPerReplica"] = gpus
    tenants = suite["spec"]["tenants"]
    tenants[0]["quota"] = {"gpus": quota if quota is not None else max(8, replicas * (gpus or 1))}
    if fine_tuning_gpus is not None:
        tenants[0]["quota"]["fineTuning"] = {"gpus": fine_tuning_gpus}
    kube.merge_patch(*SUITE, setup["suite"], setup["suite_ns"], {"spec": {
        "tenants": tenants, "components": {"llm": {"models": models}}}})


def cordon(kube: Kube, node: str, on: bool) -> None:
    kube.merge_patch("v1", "Node", node, None, {"spec": {"unschedulable": True if on else None}})


def kubelet_writes(kube: Kube, pod: dict, phase: str, state: dict) -> None:
    """What the kubelet of the pod's node would write (that node has none: the pod stays as this test says)."""
    container = pod["spec"]["containers"][0]
    kube.merge_patch("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"], {"status": {
        "phase": phase, "startTime": "2026-12-03T00:00:00Z",
        "containerStatuses": [{"name": "trainer", "image": container["image"], "imageID": "", "ready": phase == "Running",
                               "restartCount": 0, "started": phase == "Running", "state": state}]}}, sub="status")


def test_a_finetune_waits_for_a_gpu_serving_holds_then_fails_with_the_trainers_reason(kube: Kube, operator,
                                                                                     setup) -> None:
    """Serving takes every FR GPU of the model's products: the training pod waits (Pending, WaitingForGPU, the
    scheduler's message) and preempts nothing (PriorityClass -100, preemptionPolicy Never). A GPU node appears
    whose kubelet is this test (a Node kwok does not manage): the pod is bound there, runs (Training), and ends
    with the trainer's failure result in its termination message: the Job controller fails the Job
    (backoffLimit 0) and the FineTune is Failed with the trainer's own words; the operator's metrics follow."""
    from sovereign_suite.finetune.result import Result

    ns, tag = setup["tenant"], uuid.uuid4().hex[:6]
    node_name = f"fr-h100-nokubelet-{tag}"
    doc = finetune(setup, "waits")
    labels = {"finetune_namespace": setup["admin"], "finetune": "waits", "country": "FR"}
    cordoned: list[str] = []
    try:
        # serving takes GPUs (two replicas of 4 GPUs; serving's quota 8): the model prefers A100s, whose
        # nodes have 4 GPUs, so each replica fills one; the FR GPU nodes left with a free GPU are cordoned (the
        # platform team's maintenance): no GPU of the country is free, and the ones serving holds are in use
        set_serving(kube, setup, 2, 4)
        wait_for(lambda: ((kube.get("apps/v1", "Deployment", "vllm-mistral-small", ns) or {}).get("status") or {})
                 .get("readyReplicas") == 2, timeout=120, what="2 serving replicas ready")
        serving_pods = [p for p in kube.list("v1", "Pod", namespace=ns)
                        if p["metadata"]["name"].startswith("vllm-mistral-small-")]
        serving = {p["metadata"]["uid"] for p in serving_pods}
        full = []
        for node in fr_gpu_nodes(kube):
            if free_gpus(kube, node) > 0:
                cordon(kube, node["metadata"]["name"], True)
                cordoned.append(node["metadata"]["name"])
            else:
                full.append(node["metadata"]["name"])
        assert full and {p["spec"]["nodeName"] for p in serving_pods} >= set(full), (full, serving_pods)
        kube.create(doc)
        st = wait_for(lambda: (s := status_of(kube, doc)) and conditions(s).get("Ready", ("",))[1:2] ==
                      ("WaitingForGPU",) and s, timeout=90, what="the FineTune waiting for a GPU")
        ready = conditions(st)["Ready"]
        assert st["phase"] == "Pending" and "Insufficient nvidia.com/gpu" in ready[2], ready
        assert conditions(st)["Stalled"][0] == "False" and conditions(st)["Reconciling"][0] == "True"
        wait_for(lambda: operator.metric("sovereign_suite_finetune_phase", **labels, phase="Pending") == 1,
                 timeout=30, what="phase Pending exported")
        # two drift passes later: still waiting, no serving pod preempted or disrupted
        before = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
        wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= before + 2,
                 timeout=60, what="2 drift passes")
        (pod,) = pods_of(kube, ns, job_name(doc))
        assert not pod["spec"].get("nodeName") and pod["spec"]["priority"] == -100
        live = [p for p in kube.list("v1", "Pod", namespace=ns) if p["metadata"]["name"].startswith("vllm-mistral-small-")]
        assert {p["metadata"]["uid"] for p in live} == serving
        assert all(p["status"]["phase"] == "Running" and not p["metadata"].get("deletionTimestamp")
                   and not any(c["type"] == "DisruptionTarget" for c in p["status"].get("conditions") or [])
                   for p in live)
        assert status_of(kube, doc)["phase"] == "Pending"
        # a GPU of the cloud becomes free: a node like FR's H100 nodes, which no kwok manages
        like = next(n for n in fr_gpu_nodes(kube)
                    if n["metadata"]["labels"]["nvidia.com/gpu.product"] == FR_GPU_PRODUCTS[1])
        node_labels = {**like["metadata"]["labels"], "kubernetes.io/hostname": node_name}
        node_labels.pop("sovereignsuite.io/simulated-country")  # not one of the seed's (fr_gpu_nodes)
        capacity = {**like["status"]["capacity"], "nvidia.com/gpu": "1"}
        kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name, "labels": node_labels},
                     "spec": {"taints": like["spec"].get("taints") or []},
                     "status": {"capacity": capacity, "allocatable": capacity, "conditions": [
                         {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "this test",
                          "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}})
        pod = wait_for(lambda: (p := pods_of(kube, ns, job_name(doc))) and p[0]["spec"].get("nodeName") == node_name
                       and p[0], timeout=60, what="the training pod bound to the free GPU")
        kubelet_writes(kube, pod, "Running", {"running": {"startedAt": now()}})
        wait_for(lambda: status_of(kube, doc).get("phase") == "Training", timeout=60, what="Training")
        wait_for(lambda: operator.metric("sovereign_suite_finetune_phase", **labels, phase="Training") == 1,
                 timeout=30, what="phase Training exported")
        # the trainer fails, and says why, as it writes its result to /dev/termination-log
        said = f"the dataset {doc['spec']['dataset']['uri']} does not exist"
        message = Result(phase="Failed", reason=said, step=0, totalSteps=100, durationSeconds=3.5).to_json()
        kubelet_writes(kube, pod, "Failed", {"terminated": {"exitCode": 1, "reason": "Error", "message": message}})
        st = wait_for(lambda: (s := status_of(kube, doc)).get("phase") == "Failed" and s, timeout=90,
                      what="the FineTune Failed")
        job = kube.get("batch/v1", "Job", job_name(doc), ns)
        assert any(c["type"] == "Failed" and c["status"] == "True" for c in job["status"]["conditions"])
        assert conditions(st)["Ready"] == ("False", "TrainingFailed", said)
        assert conditions(st)["Stalled"] == ("True", "TrainingFailed", said)
        assert st["progress"] == "0/100" and st["durationSeconds"] == 3.5
        wait_for(lambda: operator.metric("sovereign_suite_finetune_phase", **labels, phase="Failed") == 1,
                 timeout=30, what="phase Failed exported")
        assert operator.metric("sovereign_suite_finetune_phase", **labels, phase="Training") == 0
        assert operator.metric("sovereign_suite_finetune_duration_seconds", **labels) == 3.5
        # serving was never touched
        assert {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace=ns)
                if p["metadata"]["name"].startswith("vllm-mistral-small-")} == serving
    finally:
        kube.delete(copy.deepcopy(doc))
        wait_for(lambda: kube.get(*FT, "waits", setup["admin"]) is None, timeout=90, what="the FineTune gone")
        kube.delete({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name}})
        for node in cordoned:
            cordon(kube, node, False)
        set_serving(kube, setup, 0, None)


def quota_status(kube: Kube, ns: str, name: str) -> dict:
    return (kube.get("v1", "ResourceQuota", name, ns) or {}).get("status") or {}


def test_serving_full_leaves_trainings_share_and_a_full_training_share_is_pending_saying_so(kube: Kube, operator,
                                                                                         setup) -> None:
    """Serving uses its whole GPU share (tenant-serving set to what its replicas use): the training pod is still
    created (its own share, tenant-fine-tuning, counts it; serving's does not) and waits for a free GPU only
    (WaitingForGPU: the FR GPU nodes left with a free GPU are cordoned). Training's share full (1 GPU, held by that
    pod): a second FineTune's pod cannot be created (quota admission: nothing to schedule, nothing preempted); it
    waits, Pending, QuotaExceeded, naming tenant-fine-tuning and the share that is full (the quota's status)."""
    ns = setup["tenant"]
    first, second = finetune(setup, "quota"), finetune(setup, "quota-full")
    gpu = "requests.nvidia.com/gpu"
    cordoned: list[str] = []
    try:
        # serving runs, then serving's GPU share is set to exactly what it uses (lowering a quota below
        # nothing: the running pods stay)
        set_serving(kube, setup, 8, None, quota=16)
        wait_for(lambda: ((kube.get("apps/v1", "Deployment", "vllm-mistral-small", ns) or {}).get("status") or {})
                 .get("readyReplicas") == 8, timeout=120, what="8 serving replicas ready")

        def used(name: str) -> dict:
            return quota_status(kube, ns, name).get("used") or {}

        gpus = int(wait_for(lambda: used("tenant-serving").get(gpu, "0") != "0" and used("tenant-serving")[gpu],
                            timeout=60, what="serving's quota counting its GPUs"))
        set_serving(kube, setup, 8, None, quota=gpus)
        # (the quota controller's count may pass the admission's once it recounts: full is used >= hard)
        wait_for(lambda: quota_status(kube, ns, "tenant-serving").get("hard", {}).get(gpu) == str(gpus) and
                 int(used("tenant-serving").get(gpu, "0")) >= gpus, timeout=60, what=f"serving's quota full at {gpus}")
        for node in fr_gpu_nodes(kube):
            if free_gpus(kube, node) > 0:
                cordon(kube, node["metadata"]["name"], True)
                cordoned.append(node["metadata"]["name"])
        serving = {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace=ns)
                   if p["metadata"]["name"].startswith("vllm-mistral-small-")}
        kube.create(first)
        st = wait_for(lambda: (s := status_of(kube, first)) and conditions(s).get("Ready", ("",))[1:2] ==
                      ("WaitingForGPU",) and s, timeout=90, what="the first FineTune waiting for a GPU, not quota")
        assert st["phase"] == "Pending"
        (pod,) = pods_of(kube, ns, job_name(first))
        assert not pod["spec"].get("nodeName") and pod["spec"]["priority"] == -100
        wait_for(lambda: used("tenant-fine-tuning").get(gpu) == "1", timeout=60,
                 what="training's share counting the training pod")
        assert int(used("tenant-serving")[gpu]) == gpus  # serving's share: its replicas only
        assert {p["metadata"]["uid"] for p in kube.list("v1", "Pod", namespace=ns)
                if p["metadata"]["name"].startswith("vllm-mistral-small-")} == serving

        # training's share: 1 GPU, which the waiting pod holds
        set_serving(kube, setup, 8, None, quota=gpus, fine_tuning_gpus=1)
        wait_for(lambda: quota_status(kube, ns, "tenant-fine-tuning").get("hard", {}).get(gpu) == "1",
                 timeout=60, what="training's share at 1 GPU")
        kube.create(second)
        st = wait_for(lambda: (s := status_of(kube, second)) and conditions(s).get("Ready", ("",))[1:2] ==
                      ("QuotaExceeded",) and s, timeout=90, what="the second FineTune waiting for the quota")
        ready = conditions(st)["Ready"]
        assert st["phase"] == "Pending" and "ResourceQuota tenant-fine-tuning" in ready[2], ready
        assert re.search(r"requests\.nvidia\.com/gpu 1 of 1 used, the pod asks 1", ready[2]), ready
        assert "tenant-serving" not in ready[2]
        assert conditions(st)["Stalled"][0] == "False" and conditions(st)["Reconciling"][0] == "True"
        assert kube.get("batch/v1", "Job", job_name(second), ns) is not None
        assert pods_of(kube, ns, job_name(second)) == []
        assert conditions(status_of(kube, first))["Ready"][1] == "WaitingForGPU"
    finally:
        for doc in (first, second):
            kube.delete(copy.deepcopy(doc))
        for doc in (first, second):
            wait_for(lambda: kube.get(*FT, doc["metadata"]["name"], setup["admin"]) is None, timeout=90,
                     what="the FineTune gone")
        for node in cordoned:
            cordon(kube, node, False)
        set_serving(kube, setup, 0, None)
