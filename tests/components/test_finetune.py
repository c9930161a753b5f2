"""A FineTune's training run, rendered (components/finetune): placement on the tenant cloud's GPU nodes, the pod's
security, the storage credentials as files, every user value reaching the Job as one argument, and the pod's
network (Cyclonus: the object storage and DNS, nothing else)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api.finetune_models import FineTune
from sovereign_suite.components import finetune as renderer
from sovereign_suite.reconcile.finetune_checks import check_finetune
from sovereign_suite.render import render_suite

from ..finetune_fixtures import ADMIN_NS, FINETUNE, STORAGE, clouds, finetune, suite, suites
from ..helpers import ROOT
from ..netpol_eval import External, Pod, evaluate, namespace_labels, rendered_pods

A100, H100 = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"
TENANT_NS = "eu-workplace-fr"


def rendered(ft: FineTune | None = None, memory: dict | None = None, c=None) -> dict[str, dict]:
    ft = ft or finetune()
    resolved, problems = check_finetune(ft, suites(), c or clouds(), memory)
    assert problems == [] and resolved is not None
    return {o["kind"]: o for o in renderer.render(ft, resolved)}


def pod_spec(objs: dict[str, dict]) -> dict:
    return objs["Job"]["spec"]["template"]["spec"]


def trainer(objs: dict[str, dict]) -> dict:
    (container,) = pod_spec(objs)["containers"]
    return container


def test_the_job_and_its_policy_are_in_the_tenant_namespace_under_a_name_unique_per_finetune() -> None:
    objs = rendered()
    assert set(objs) == {"Job", "NetworkPolicy"}
    assert {o["metadata"]["namespace"] for o in objs.values()} == {TENANT_NS}
    name = objs["Job"]["metadata"]["name"]
    assert name == objs["NetworkPolicy"]["metadata"]["name"] and name.startswith("ft-summaries-")
    other = FineTune.model_validate({**FINETUNE, "metadata": {"name": "summaries", "namespace": "health"}})
    assert renderer.object_name(other) != name  # same name, another administration: another Job
    longest = FineTune.model_validate({**FINETUNE, "metadata": {"name": "a" * 40, "namespace": ADMIN_NS}})
    assert len(renderer.object_name(longest)) <= 63


def test_placement_is_servings_on_the_products_that_hold_the_run() -> None:
    spec = pod_spec(rendered())
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (term,) = terms
    assert {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-west-2"]} in term["matchExpressions"]
    assert {"key": "nvidia.com/gpu.product", "operator": "In", "values": [A100, H100]} in term["matchExpressions"]
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [p["preference"]["matchExpressions"][0]["values"] for p in preferred] == [[A100], [H100]]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    res = trainer(rendered())["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "1"
    # the cluster reports 40 GB A100s: only the H100s remain
    narrowed = pod_spec(rendered(memory={A100: 40960}))
    (term,) = narrowed["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "nvidia.com/gpu.product", "operator": "In", "values": [H100]} in term["matchExpressions"]


def test_the_clouds_gpu_node_selector_and_resource_name_are_used() -> None:
    c = clouds()
    doc = c["fr-secnumcloud"].model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["gpu"].update({"resourceName": "nvidia.com/mig-7g.80gb", "nodeSelector": {"pool": "gpu-train"},
                               "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                                "effect": "NoSchedule"}]})
    c["fr-secnumcloud"] = type(c["fr-secnumcloud"]).model_validate(doc)
    objs = rendered(c=c)
    (term,) = pod_spec(objs)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"]
    assert {"key": "pool", "operator": "In", "values": ["gpu-train"]} in term["matchExpressions"]
    assert pod_spec(objs)["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                              "effect": "NoSchedule"}]
    assert trainer(objs)["resources"]["limits"]["nvidia.com/mig-7g.80gb"] == "1"


def test_the_pod_is_locked_down_and_below_serving() -> None:
    objs = rendered()
    spec, container = pod_spec(objs), trainer(objs)
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["restartPolicy"] == "Never" and objs["Job"]["spec"]["backoffLimit"] == 0
    # a preemption by a serving replica is not a failure of the run
    assert objs["Job"]["spec"]["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # the PriorityClass the chart installs (the chart test checks it is below 0 and never preempts)
    chart = (ROOT / "charts/sovereign-suite-operator/templates/priorityclass-finetune.yaml").read_text()
    assert re.search(r"^  name: (\S+)$", chart, re.M).group(1) == spec["priorityClassName"]
    assert container["image"] == renderer.IMAGE and container["terminationMessagePath"] == "/dev/termination-log"


def test_the_storage_credentials_are_files_never_environment() -> None:
    objs = rendered()
    container = trainer(objs)
    assert not any("valueFrom" in e for e in container["env"])
    volume = next(v for v in pod_spec(objs)["volumes"] if v["name"] == "s3")
    assert volume["secret"]["secretName"] == STORAGE["credentialsSecretRef"]
    assert volume["secret"]["defaultMode"] == 0o440
    assert {i["key"] for i in volume["secret"]["items"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "s3")
    assert mount["readOnly"] is True
    args = container["args"]
    assert args[args.index("--credentials-dir") + 1] == mount["mountPath"]


def test_the_trainer_arguments() -> None:
    args = trainer(rendered())["args"]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs == {
        "--base-model": "s3://fr-suite-data/models/mistralai/Mistral-Small-3.2-24B-Instruct-2506/",
        "--dataset": f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/summaries.jsonl",
        "--eval-fraction": "0.1",
        "--output": f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/summaries/adapter/",
        "--rank": "16", "--alpha": "32", "--dropout": "0.05", "--target-modules": "q_proj,v_proj",
        "--learning-rate": "0.0002", "--steps": "100", "--batch-size": "2", "--seq-len": "1024",
        "--s3-endpoint": STORAGE["endpoint"], "--s3-region": "eu-west-2", "--credentials-dir": "/etc/finetune/s3",
        "--result-file": "/dev/termination-log", "--metrics-port": "9400",
    }


def test_every_user_value_reaches_the_job_as_one_argument_verbatim() -> None:
    # every punctuation the URI pattern allows, YAML indicators among them (: , * ! @ = + ( ))
    uri = f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/a:b,c*d!e@f=g+h(i)j-#k.jsonl".replace("#", "_")
    ft = finetune(dataset={"uri": uri, "evalFraction": 0.125}, lora={"rank": 8, "alpha": 7, "dropout": 0.1,
                                                                      "targetModules": ["model.layers.0.q_proj", "o_proj"]},
                  training={"learningRate": 1.5e-5, "steps": 3, "batchSize": 1, "sequenceLength": 64})
    objs = rendered(ft)
    # the Job went through YAML: read it back through YAML once more, as the API server would
    args = yaml.safe_load(yaml.safe_dump(objs["Job"]))["spec"]["template"]["spec"]["containers"][0]["args"]
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--dataset"] == uri
    assert pairs["--target-modules"] == "model.layers.0.q_proj,o_proj"  # ',' cannot be in a module name
    assert float(pairs["--learning-rate"]) == 1.5e-5 and float(pairs["--eval-fraction"]) == 0.125
    assert pairs["--alpha"] == "7" and float(pairs["--dropout"]) == 0.1
    assert len(args) == len(renderer.trainer_args(ft, check_finetune(ft, suites(), clouds())[0]))


def test_render_is_deterministic_and_the_run_hash_follows_what_the_run_does() -> None:
    assert rendered() == rendered()
    base = rendered()["Job"]["metadata"]["annotations"][renderer.RUN_HASH]
    more = {**FINETUNE["spec"]["training"], "steps": 101}
    assert rendered(finetune(training=more))["Job"]["metadata"]["annotations"][renderer.RUN_HASH] != base
    assert rendered(finetune(consumers=[]))["Job"]["metadata"]["annotations"][renderer.RUN_HASH] == base


def test_the_objects_are_not_the_suites_children() -> None:
    """The suite's informers and prune go by sovereignsuite.io/suite: a FineTune's objects must not carry it."""
    for obj in rendered().values():
        assert "sovereignsuite.io/suite" not in obj["metadata"]["labels"]
        assert obj["metadata"]["labels"]["sovereignsuite.io/finetune-namespace"] == ADMIN_NS


def test_the_images_come_from_the_countrys_registry() -> None:
    c = clouds()
    doc = c["fr-secnumcloud"].model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["imageRegistry"] = "registry.example.fr/mirror"
    c["fr-secnumcloud"] = type(c["fr-secnumcloud"]).model_validate(doc)
    assert trainer(rendered(c=c))["image"] == "registry.example.fr/mirror/sovereign-suite/trainer:0.1.0"


# ---- the training pod's network (Cyclonus) ----------------------------------------------------------------

def test_the_training_pod_reaches_the_object_storage_and_dns_only(tmp_path: Path) -> None:
    s = suite(fine_tune_namespaces=[ADMIN_NS])
    manifests = render_suite(s, clouds()).manifests
    objs = rendered()
    ns_objects = [o for o in manifests if o["metadata"].get("namespace") == TENANT_NS]
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"] + [objs["NetworkPolicy"]]
    pods = rendered_pods(ns_objects + [objs["Job"]])
    by_app = {p.app: p for p in pods}
    training = by_app["finetune"]
    storage = External("198.51.100.7", (("https", 443, "TCP"),), "object-storage")
    elsewhere = External("203.0.113.17", (("https", 443, "TCP"),), "hugging-face")  # the cloud's modelHub range
    dns = Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"),), "10.96.0.10")
    monitoring = Pod("monitoring", "prometheus", {"app": "prometheus"}, (), "10.244.9.9")
    ns_labels = {**namespace_labels(manifests), "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
                 "monitoring": {"kubernetes.io/metadata.name": "monitoring", "sovereignsuite.io/monitoring": "true"}}
    cases = [
        (training, storage, 443, "TCP"),
        (training, dns, 53, "UDP"),
        (training, dns, 53, "TCP"),
        (monitoring, training, 9400, "TCP"),
        (training, storage, 80, "TCP"),              # only the declared port
        (training, elsewhere, 443, "TCP"),           # not the model hub, although vLLM may reach it
        (training, by_app["jitsi-jvb"], 30011, "UDP"),  # JVB's media port (NodePort 30011) admits anyone
        (training, by_app["vllm"], 8000, "TCP"),     # nothing of the namespace
        (training, by_app["llm-gateway"], 4000, "TCP"),
        (training, by_app["synapse"], 8008, "TCP"),
        (by_app["synapse"], training, 9400, "TCP"),  # nobody of the namespace reaches it
        (by_app["vllm"], storage, 443, "TCP"),       # the storage is the training pod's, not vLLM's
    ]
    verdicts = evaluate(policies, cases, ns_labels, {}, tmp_path)
    assert verdicts == [True, True, True, True, False, False, False, False, False, False, False, False]
    control = tmp_path / "control"
    control.mkdir()
    assert evaluate(policies, [(by_app["synapse"], by_app["jitsi-jvb"], 30011, "UDP")], ns_labels, {},
                    control) == [True]  # the case above is refused by the training pod's egress


def test_the_objects_are_valid_kubernetes_objects() -> None:
    import kubernetes_validate

    from ..helpers import K8S_SCHEMA_VERSION

    for obj in rendered().values():
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def test_the_trainer_accepts_the_rendered_arguments_and_reports_the_uri_the_status_expects() -> None:
    """The renderer and the trainer were written apart: the trainer's own parser reads the rendered command line,
    and the adapterUri it reports (str of the parsed --output) is the exact string finetune_status accepts."""
    from sovereign_suite.finetune import storage
    from sovereign_suite.finetune.trainer import parser

    args = trainer(rendered())["args"]
    parsed = parser().parse_args(args)
    assert parsed.seq_len == 1024 and parsed.rank == 16 and parsed.target_modules == "q_proj,v_proj"
    assert parsed.credentials_dir == "/etc/finetune/s3" and parsed.result_file == "/dev/termination-log"
    assert str(storage.parse_uri(parsed.output, "--output")) == f"s3://fr-suite-data/fine-tuning/{ADMIN_NS}/summaries/adapter/"
