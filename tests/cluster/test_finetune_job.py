"""A FineTune's training Job on the local control plane (kwok nodes, the real scheduler and Job controller): it
lands only on the tenant cloud's GPU nodes of the products that hold the run, at the chart's PriorityClass, and the
FineTune's status (reconcile/finetune_status.py) follows the live Job and pod: NotPromoted when the Job completes
without the trainer's result, Evaluating then Ready with it, Pending while the pod waits for a GPU, Failed when the
Job fails. (kwok runs a Job's pod to Succeeded at once: the Training phase, a running pod, is unit-tested only.)

Not the operator: these objects are applied here by hand, to drive the scheduler and the Job controller into
states the operator's FineTune pass cannot be made to reach on kwok (a pod waiting for a GPU, a deadline passed);
the renderer, the checks and the status function are the operator's own. The operator process itself, applying,
following and deleting a FineTune's Job, is tests/cluster/test_finetune_operator.py."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from sovereign_suite.api.finetune_models import FineTune, Promotion
from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile.finetune_checks import check_finetune
from sovereign_suite.reconcile.finetune_status import finetune_status
from sovereign_suite.reconcile.kube import Kube

from ..finetune_fixtures import ADMIN_NS, FINETUNE, clouds, suite
from ..helpers import ROOT
from .conftest import wait_for

A100, H100 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"
FR_REGION = "eu-west-2"
STAMP = "2026-12-03T00:00:00Z"


def chart_priority_class() -> dict:
    text = (ROOT / "charts/sovereign-suite-operator/templates/priorityclass-finetune.yaml").read_text()
    doc = yaml.safe_load("\n".join(line for line in text.splitlines() if "{{" not in line))
    doc["metadata"]["labels"] = {"app.kubernetes.io/part-of": "sovereign-suite"}
    return doc


@pytest.fixture(scope="module")
def tenant(kube: Kube):
    """A suite of its own (its tenant namespace <suite>-fr), the chart's PriorityClass, the storage Secret."""
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    s = s.model_copy(update={"metadata": s.metadata.model_copy(update={"name": f"ft{uuid.uuid4().hex[:6]}"})})
    ns = f"{s.name}-fr"
    if kube.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS) is None:
        kube.create(chart_priority_class())
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fr-object-storage", "namespace": ns},
                 "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}})
    yield s, ns
    kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


def start(kube: Kube, s, name: str, memory: dict | None = None, cloud_set: dict | None = None
          ) -> tuple[FineTune, dict, str]:
    doc = json.loads(json.dumps(FINETUNE))
    doc["metadata"]["name"] = name
    doc["spec"]["suite"]["name"] = s.name
    ft = FineTune.model_validate(doc)
    resolved, problems = check_finetune(ft, {(s.metadata.namespace, s.name): s}, cloud_set or clouds(), memory)
    assert problems == [] and resolved is not None
    objs = {o["kind"]: o for o in renderer.render(ft, resolved)}
    for obj in objs.values():
        kube.create(obj)
    return ft, objs["Job"], renderer.adapter_uri(ft, resolved)


def job_pod(kube: Kube, job: dict) -> dict | None:
    pods = kube.list("v1", "Pod", namespace=job["metadata"]["namespace"],
                     label_selector=f"job-name={job['metadata']['name']}")
    return pods[0] if pods else None


def bound_node(kube: Kube, job: dict) -> dict:
    pod = wait_for(lambda: (p := job_pod(kube, job)) and p["spec"].get("nodeName") and p, timeout=90,
                   what="the training pod bound to a node")
    return kube.get("v1", "Node", pod["spec"]["nodeName"])


def status_of(kube: Kube, job: dict, uri: str, served: bool = False) -> dict:
    live = kube.get("batch/v1", "Job", job["metadata"]["name"], job["metadata"]["namespace"])
    return finetune_status(generation=1, problems=[], job=live, pod=job_pod(kube, job), promotion=Promotion(),
                           adapter_uri=uri, served=served, old=None, stamp=STAMP)


def test_the_job_lands_on_the_tenant_clouds_gpu_nodes_and_its_status_follows_it(kube: Kube, tenant) -> None:
    s, ns = tenant
    ft, job, uri = start(kube, s, "summaries")
    node = bound_node(kube, job)
    labels = node["metadata"]["labels"]
    # FR's GPU nodes only: DE has A100 nodes too, in another region
    assert labels["topology.kubernetes.io/region"] == FR_REGION
    assert labels["nvidia.com/gpu.product"] in (A100, H100)
    pod = job_pod(kube, job)
    assert pod["spec"]["priority"] == -100 and pod["spec"]["preemptionPolicy"] == "Never"
    # kwok runs a Job's pod to Succeeded at once, with no termination message: the Job controller completes the
    # Job, and a run that reported no result is never served
    ended = wait_for(lambda: (st := status_of(kube, job, uri))["phase"] not in ("Pending", "Training") and st,
                     timeout=90, what="the Job complete")
    assert ended["phase"] == "NotPromoted" and "no eval loss" in ended["conditions"][0]["message"]
    # the trainer's result, as it writes it to /dev/termination-log
    result = {"phase": "Succeeded", "step": 100, "totalSteps": 100, "loss": 1.1, "baseEvalLoss": 2.0,
              "evalLoss": 1.4, "tokensPerSecond": 900.0, "durationSeconds": 42.0, "adapterUri": uri}
    container = job["spec"]["template"]["spec"]["containers"][0]
    kube.merge_patch("v1", "Pod", pod["metadata"]["name"], ns, {"status": {"containerStatuses": [
        {"name": "trainer", "image": container["image"], "imageID": "", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": json.dumps(result)}}}]}},
        sub="status")
    done = status_of(kube, job, uri)
    assert done["phase"] == "Evaluating" and done["progress"] == "100/100" and done["adapterUri"] == uri
    assert (done["evalLoss"], done["baseEvalLoss"]) == (1.4, 2.0)
    assert status_of(kube, job, uri, served=True)["phase"] == "Ready"


def test_a_run_waiting_for_a_gpu_is_pending_then_failed_when_its_job_fails(kube: Kube, tenant) -> None:
    """GPU nodes of a pool no node is in: the pod waits (the scheduler's message in the status); the run's deadline
    passes: the Job controller fails the Job (DeadlineExceeded) and the FineTune is Failed."""
    s, ns = tenant
    c = clouds()
    doc = c["fr-secnumcloud"].model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["gpu"]["nodeSelector"] = {"sovereignsuite.io/test-pool": "none"}
    c["fr-secnumcloud"] = type(c["fr-secnumcloud"]).model_validate(doc)
    _, job, uri = start(kube, s, "waiting", cloud_set=c)
    waiting = wait_for(lambda: (st := status_of(kube, job, uri))["conditions"][0]["reason"] == "WaitingForGPU"
                       and st, timeout=90, what="the FineTune waiting for a GPU")
    assert waiting["phase"] == "Pending" and "node" in waiting["conditions"][0]["message"]
    kube.merge_patch("batch/v1", "Job", job["metadata"]["name"], ns, {"spec": {"activeDeadlineSeconds": 1}})
    failed = wait_for(lambda: (st := status_of(kube, job, uri))["phase"] == "Failed" and st, timeout=90,
                      what="the FineTune Failed")
    assert {c["type"]: (c["status"], c["reason"]) for c in failed["conditions"]}["Stalled"] == ("True",
                                                                                              "DeadlineExceeded")


def test_gpus_too_small_for_the_run_are_left_out(kube: Kube, tenant) -> None:
    """Nodes that report 40 GB A100s (the memory read from the cluster) cannot hold the ~59 GiB run: H100 only."""
    s, _ = tenant
    _, job, _ = start(kube, s, "narrowed", memory={A100: 40960})
    labels = bound_node(kube, job)["metadata"]["labels"]
    assert (labels["topology.kubernetes.io/region"], labels["nvidia.com/gpu.product"]) == (FR_REGION, H100)


def test_the_api_server_holds_the_finetune_schema_and_its_immutable_fields(kube: Kube, namespace: str) -> None:
    """The generated CRD on the real API server: the example FineTune is accepted; a rank vLLM cannot serve and a
    changed base model are refused (schema, CEL rule), a changed hyper-parameter is not."""
    from sovereign_suite.reconcile.kube import ApiError

    from ..helpers import EXAMPLES

    doc = [d for d in yaml.safe_load_all((EXAMPLES / "finetune.yaml").read_text()) if d and d["kind"] == "FineTune"][0]
    doc["metadata"]["namespace"] = namespace
    kube.create(doc)
    name = doc["metadata"]["name"]
    kube.merge_patch("sovereignsuite.io/v1alpha1", "FineTune", name, namespace, {"spec": {"lora": {"rank": 32}}})
    for patch, words in (({"spec": {"baseModel": "llama-70b"}}, "immutable"),
                         ({"spec": {"lora": {"rank": 513}}}, "513")):
        with pytest.raises(ApiError) as err:
            kube.merge_patch("sovereignsuite.io/v1alpha1", "FineTune", name, namespace, patch)
        assert err.value.status == 422 and words in err.value.message
    with pytest.raises(ApiError) as err:
        kube.create({**doc, "metadata": {"name": "bad-uri", "namespace": namespace},
                     "spec": {**doc["spec"], "dataset": {"uri": "https://elsewhere.example/x.jsonl"}}})
    assert err.value.status == 422 and "spec.dataset.uri" in err.value.message
