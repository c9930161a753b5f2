"""The LLM renderer: vLLM per model and the LiteLLM gateway (no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml

import sovereign_suite.render as suite_render
from ..helpers import K8S_SCHEMA_VERSION, file_secret, load_example, pod_specs, suite_with
from sovereign_suite.api.models import NationalCloud
from sovereign_suite.api.validation import InputError
from sovereign_suite.components import llm
from sovereign_suite.components.base import build_contexts, dump_yaml

FR, DE, LU = 0, 1, 2  # tenant indexes in the four-country example


def contexts(patch: dict[str, Any] | None = None, clouds: dict[str, NationalCloud] | None = None):
    suite, example_clouds = load_example("four-countries")
    if patch:
        suite = suite_with("four-countries", patch)
    return build_contexts(suite, clouds or example_clouds)


def llm_patch(**fields: Any) -> dict[str, Any]:
    return {"components": {"llm": fields}}


def models_patch(*models: dict[str, Any], **llm_fields: Any) -> dict[str, Any]:
    return llm_patch(models=list(models), **llm_fields)


def model(name: str = "small", **fields: Any) -> dict[str, Any]:
    return {"name": name, "modelId": f"org/{name}", "gpuProducts": ["NVIDIA-L40S"], **fields}


def by_kind(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def arg_value(args: list[str], flag: str) -> str:
    assert args.count(flag) == 1, f"{flag} appears {args.count(flag)} times in {args}"
    return args[args.index(flag) + 1]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def mig_cloud() -> NationalCloud:
    return NationalCloud.model_validate(
        {
            "apiVersion": "sovereignsuite.io/v1alpha1",
            "kind": "NationalCloud",
            "metadata": {"name": "fr-secnumcloud"},
            "spec": {
                "country": "FR",
                "provider": "OUTSCALE",
                "regions": ["eu-west-2", "eu-west-1"],
                "gpu": {
                    "resourceName": "nvidia.com/mig-1g.10gb",
                    "productLabel": "example.com/gpu-model",
                    "nodeSelector": {"example.com/pool": "gpu", "example.com/mig": "mixed"},
                    "tolerations": [
                        {"key": "example.com/gpu", "operator": "Equal", "value": "true", "effect": "NoExecute",
                         "tolerationSeconds": 300}
                    ],
                },
            },
        }
    )


# ---- examples and schema ---------------------------------------------------------------------------------

def test_four_country_example_renders_every_tenant():
    for ctx in contexts():
        objs = llm.render(ctx)
        names = {(o["kind"], o["metadata"]["name"]) for o in objs}
        expected_models = [m.name for m in ctx.components.llm.models]
        for name in expected_models:
            assert ("Deployment", f"vllm-{name}") in names
            assert ("Service", f"vllm-{name}") in names
            assert ("PersistentVolumeClaim", f"vllm-{name}-cache") in names
        for kind in ("ConfigMap", "Service", "Deployment", "Ingress", "PodDisruptionBudget"):
            assert (kind, "llm-gateway") in names
        assert all(o["metadata"]["namespace"] == ctx.namespace for o in objs)
        assert not any(o["kind"] == "Secret" for o in objs)
    # LU overrides the model list: only its own model.
    lu = contexts()[LU]
    assert [o["metadata"]["name"] for o in llm.render(lu) if o["kind"] == "Deployment"] == [
        "vllm-mistral-small", "llm-gateway"
    ]


def test_two_country_example_has_llm_disabled_and_renders_when_enabled():
    suite, clouds = load_example("two-countries")
    assert all(not ctx.components.llm.enabled for ctx in build_contexts(suite, clouds))
    suite = suite_with("two-countries", models_patch(model(), enabled=True))
    for ctx in build_contexts(suite, clouds):
        objs = llm.render(ctx)
        assert by_kind(objs, "Deployment", "vllm-small")["metadata"]["namespace"] == ctx.namespace


def test_suite_render_includes_llm_objects_and_secret(monkeypatch):
    # Only tenancy and llm: the other renderers are not under test here.
    monkeypatch.setattr(suite_render, "COMPONENT_MODULES", ("tenancy", "llm"))
    suite, clouds = load_example("four-countries")
    result = suite_render.render_suite(suite, clouds)
    assert ("fr", "llm") in result.by_component
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in result.manifests]
    assert ("Deployment", "eu-workplace-fr", "vllm-llama-70b") in names
    gateway_secrets = [s for s in result.secrets if s.name == "llm-gateway"]
    assert sorted(s.namespace for s in gateway_secrets) == sorted(
        f"eu-workplace-{c}" for c in ("fr", "de", "lu", "se")
    )


def all_variants() -> list[list[dict[str, Any]]]:
    out = [llm.render(ctx) for ctx in contexts()]
    patch = models_patch(
        model(replicas=3, extraArgs=["--enable-prefix-caching"]),
        model("big", gpusPerReplica=4, gpuProducts=["A", "B", "C"], maxModelLen=8192),
    )
    out.append(llm.render(contexts(patch)[FR]))
    clouds = dict(load_example("four-countries")[1])
    clouds["fr-secnumcloud"] = mig_cloud()
    out.append(llm.render(contexts(clouds=clouds)[FR]))
    return out


def test_every_object_validates_strictly():
    count = 0
    for objs in all_variants():
        for obj in objs:
            kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)
            count += 1
    assert count > 40


def test_pods_are_restricted_and_sized():
    for objs in all_variants():
        for obj in objs:
            for spec in pod_specs(obj):
                assert spec["automountServiceAccountToken"] is False
                assert spec["enableServiceLinks"] is False
                assert spec["securityContext"]["runAsNonRoot"] is True
                region = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
                keys = [e["key"] for e in region["nodeSelectorTerms"][0]["matchExpressions"]]
                assert keys[0] == "topology.kubernetes.io/region"
                for c in spec["containers"] + spec.get("initContainers", []):
                    sc = c["securityContext"]
                    assert sc["allowPrivilegeEscalation"] is False
                    assert sc["capabilities"] == {"drop": ["ALL"]}
                    assert sc["readOnlyRootFilesystem"] is True
                    assert c["resources"]["requests"] and c["resources"]["limits"]
                for c in spec["containers"]:  # the init containers write only their one file
                    mounts = {m["mountPath"] for m in c["volumeMounts"]}
                    assert "/tmp" in mounts


def test_deterministic():
    first = [dump_yaml(llm.render(ctx)) for ctx in contexts()]
    second = [dump_yaml(llm.render(ctx)) for ctx in contexts()]
    assert first == second
    assert [s for ctx in contexts() for s in llm.secrets(ctx)] == [s for ctx in contexts() for s in llm.secrets(ctx)]


# ---- vLLM ------------------------------------------------------------------------------------------------

def test_args_tensor_parallel_equals_gpus():
    objs = llm.render(contexts()[FR])
    large = container(by_kind(objs, "Deployment", "vllm-llama-70b"))
    assert large["args"][0] == "meta-llama/Llama-3.3-70B-Instruct"  # `vllm serve <model>`
    assert "--model" not in large["args"]
    assert arg_value(large["args"], "--served-model-name") == "albert-large"
    assert arg_value(large["args"], "--tensor-parallel-size") == "2"
    assert arg_value(large["args"], "--port") == "8000"
    assert arg_value(large["args"], "--gpu-memory-utilization") == "0.9"
    assert arg_value(large["args"], "--max-model-len") == "8192"  # what 2 x 80 GB can hold (test_gpu_memory.py)
    small = container(by_kind(objs, "Deployment", "vllm-mistral-small"))
    assert arg_value(small["args"], "--tensor-parallel-size") == "1"
    bare = container(by_kind(llm.render(contexts(models_patch(model("bare")))[FR]), "Deployment", "vllm-bare"))
    assert "--max-model-len" not in bare["args"]  # not set: vLLM uses the model's own


def test_extra_args_are_appended():
    ctx = contexts(models_patch(model(extraArgs=["--enable-prefix-caching", "--max-num-seqs", "64"])))[FR]
    args = container(by_kind(llm.render(ctx), "Deployment", "vllm-small"))["args"]
    # then the operator's options file (the API key): test_llm_api_key.py
    assert args[-5:] == ["--enable-prefix-caching", "--max-num-seqs", "64", "--config", "/run/vllm/api-key.yaml"]


@pytest.mark.parametrize("extra", [["--tensor-parallel-size", "4"], ["-tp", "4"], ["--max_model_len=1024"],
                                   ["--served-model-name=x"], ["--port", "9000"], ["--model", "other"]])
def test_extra_args_clash_is_an_input_error(extra):
    ctx = contexts(models_patch(model("ok"), model("bad", extraArgs=["--enforce-eager", *extra])))[FR]
    with pytest.raises(InputError) as err:
        llm.render(ctx)
    assert [p.path for p in err.value.problems] == ["spec.components.llm.models[1].extraArgs"]
    assert "is set by the operator" in err.value.problems[0].message


def test_extra_args_clash_in_tenant_override_names_the_tenant_path():
    suite, clouds = load_example("four-countries")
    doc = suite.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["spec"]["tenants"][LU]["components"]["llm"]["models"][0]["extraArgs"] = ["--gpu-memory-utilization", "0.5"]
    from sovereign_suite.api.validation import parse_suite

    ctx = build_contexts(parse_suite(doc), clouds)[LU]
    with pytest.raises(InputError) as err:
        llm.render(ctx)
    assert [p.path for p in err.value.problems] == ["spec.tenants[2].components.llm.models[0].extraArgs"]


def test_gpu_limits_use_the_clouds_resource_name():
    objs = llm.render(contexts()[FR])
    res = container(by_kind(objs, "Deployment", "vllm-llama-70b"))["resources"]
    assert res["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}
    assert res["requests"] == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}


def test_mig_cloud_resource_tolerations_and_node_selector():
    clouds = dict(load_example("four-countries")[1])
    clouds["fr-secnumcloud"] = mig_cloud()
    objs = llm.render(contexts(clouds=clouds)[FR])
    dep = by_kind(objs, "Deployment", "vllm-llama-70b")
    res = container(dep)["resources"]
    assert res["limits"]["nvidia.com/mig-1g.10gb"] == "2" == res["requests"]["nvidia.com/mig-1g.10gb"]
    assert "nvidia.com/gpu" not in res["limits"]
    spec = dep["spec"]["template"]["spec"]
    assert spec["tolerations"] == [
        {"key": "example.com/gpu", "operator": "Equal", "value": "true", "effect": "NoExecute",
         "tolerationSeconds": 300}
    ]
    required = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-west-1", "eu-west-2"]},
        {"key": "example.com/gpu-model", "operator": "In",
         "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"]},
        {"key": "example.com/mig", "operator": "In", "values": ["mixed"]},
        {"key": "example.com/pool", "operator": "In", "values": ["gpu"]},
    ]}]


def test_default_tolerations():
    dep = by_kind(llm.render(contexts()[DE]), "Deployment", "vllm-mistral-small")
    assert dep["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_affinity_requires_region_and_product_and_prefers_in_order():
    objs = llm.render(contexts()[FR])
    node = by_kind(objs, "Deployment", "vllm-mistral-small")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    expressions = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert expressions == [
        {"key": "topology.kubernetes.io/region", "operator": "In", "values": ["eu-west-2"]},
        {"key": "nvidia.com/gpu.product", "operator": "In",
         "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]},
    ]
    preferred = node["preferredDuringSchedulingIgnoredDuringExecution"]
    assert [(p["preference"]["matchExpressions"][0]["values"][0], p["weight"]) for p in preferred] == [
        ("NVIDIA-A100-SXM4-80GB", 100), ("NVIDIA-H100-80GB-HBM3", 50)
    ]
    # One product: the requirement says it all.
    lu = by_kind(llm.render(contexts()[LU]), "Deployment", "vllm-mistral-small")
    lu_node = lu["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in lu_node


def test_placements_pin_one_product():
    ctx = contexts()[FR]
    assert llm.placement_products(ctx, ctx.components.llm.models[0]) == [
        "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"
    ]
    objs = llm.render_models(ctx, {"llama-70b": "NVIDIA-A100-SXM4-80GB"})
    node = by_kind(objs, "Deployment", "vllm-llama-70b")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert terms[1]["values"] == ["NVIDIA-A100-SXM4-80GB"]
    assert "preferredDuringSchedulingIgnoredDuringExecution" not in node
    other = by_kind(objs, "Deployment", "vllm-mistral-small")["spec"]["template"]["spec"]["affinity"]
    assert len(other["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
               ["matchExpressions"][1]["values"]) == 2
    with pytest.raises(ValueError):
        llm.render_models(ctx, {"llama-70b": "NVIDIA-L40S"})


def test_startup_probe_threshold_from_startup_timeout():
    dep = by_kind(llm.render(contexts()[FR]), "Deployment", "vllm-llama-70b")
    c = container(dep)
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 1800
    assert c["startupProbe"]["failureThreshold"] == 180
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"]["path"] == c["livenessProbe"]["httpGet"]["path"] == "/health"
    ctx = contexts(llm_patch(startupTimeoutSeconds=3605))[FR]
    c = container(by_kind(llm.render(ctx), "Deployment", "vllm-llama-70b"))
    assert c["startupProbe"]["failureThreshold"] == 361  # rounded up: never shorter than asked


def test_shm_cache_and_writable_paths():
    ctx = contexts(models_patch(model(shmSize="16Gi", cacheSize="500Gi")))[FR]
    objs = llm.render(ctx)
    dep = by_kind(objs, "Deployment", "vllm-small")
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    mounts = {m["name"]: m["mountPath"] for m in container(dep)["volumeMounts"]}
    assert mounts == {"cache": "/cache", "shm": "/dev/shm", "tmp": "/tmp", "runtime": "/run/vllm",
                      "hf-token": "/run/secrets/hugging-face"}
    assert volumes["runtime"]["emptyDir"]["medium"] == "Memory"  # the key's options file: never on a disk
    assert volumes["cache"]["persistentVolumeClaim"]["claimName"] == "vllm-small-cache"
    pvc = by_kind(objs, "PersistentVolumeClaim", "vllm-small-cache")
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                           "resources": {"requests": {"storage": "500Gi"}}}
    env = env_of(container(dep))
    assert env["HOME"] == "/cache" and env["HF_HOME"] == "/cache/huggingface"
    assert env["VLLM_NO_USAGE_STATS"] == "1"


def test_hugging_face_token_is_optional():
    dep = by_kind(llm.render(contexts()[FR]), "Deployment", "vllm-llama-70b")
    c = container(dep)
    # huggingface_hub (>= 1.31.0, vLLM 0.33.0's requirement) reads the token from the file HF_TOKEN_PATH names
    # when HF_TOKEN is unset: constants.py, utils/_auth.py get_token / _get_token_from_file
    assert file_secret(pod_specs(dep)[0], c, "HF_TOKEN_PATH") == ("hf-token", "token")
    assert "HF_TOKEN" not in env_of(c) and "HUGGING_FACE_HUB_TOKEN" not in env_of(c)
    suite = suite_with("four-countries", {})
    doc = suite.model_dump(by_alias=True, exclude_none=True, mode="json")
    del doc["spec"]["components"]["llm"]["huggingFaceTokenSecretRef"]
    from sovereign_suite.api.validation import parse_suite

    ctx = build_contexts(parse_suite(doc), load_example("four-countries")[1])[FR]
    dep = by_kind(llm.render(ctx), "Deployment", "vllm-llama-70b")
    env = env_of(container(dep))
    assert "HF_TOKEN" not in env and "HUGGING_FACE_HUB_TOKEN" not in env and "HF_TOKEN_PATH" not in env
    assert "hf-token" not in {v["name"] for v in pod_specs(dep)[0]["volumes"]}


def test_replicas_pdb_and_shared_cache():
    ctx = contexts(models_patch(model("one"), model("many", replicas=3)))[FR]
    objs = llm.render(ctx)
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "vllm-one"]
    pdb = by_kind(objs, "PodDisruptionBudget", "vllm-many")
    assert pdb["spec"]["maxUnavailable"] == 1
    many = by_kind(objs, "Deployment", "vllm-many")
    assert many["spec"]["replicas"] == 3
    assert pdb["spec"]["selector"] == many["spec"]["selector"]
    assert many["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    shared = by_kind(objs, "PersistentVolumeClaim", "vllm-many-cache-shared")
    assert shared["spec"]["accessModes"] == ["ReadWriteMany"]
    claim = [v for v in many["spec"]["template"]["spec"]["volumes"] if v["name"] == "cache"][0]
    assert claim["persistentVolumeClaim"]["claimName"] == "vllm-many-cache-shared"


def test_model_labels_and_selectors():
    objs = llm.render(contexts()[FR])
    selectors = []
    for name in ("llama-70b", "mistral-small"):
        dep = by_kind(objs, "Deployment", f"vllm-{name}")
        svc = by_kind(objs, "Service", f"vllm-{name}")
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        assert dep["metadata"]["labels"]["sovereignsuite.io/model"] == name == pod_labels["sovereignsuite.io/model"]
        assert pod_labels["sovereignsuite.io/component"] == "llm"
        assert pod_labels["app.kubernetes.io/component"] == "vllm"
        sel = dep["spec"]["selector"]["matchLabels"]
        assert "app.kubernetes.io/version" not in sel
        assert sel == svc["spec"]["selector"]
        assert sel.items() <= pod_labels.items()
        assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
        selectors.append(sel)
    assert selectors[0] != selectors[1]


def test_gpu_in_model_resources_is_an_input_error():
    ctx = contexts(models_patch(model(resources={"limits": {"nvidia.com/gpu": 2}})))[FR]
    with pytest.raises(InputError) as err:
        llm.render(ctx)
    assert [p.path for p in err.value.problems] == ["spec.components.llm.models[0].resources.limits.nvidia.com/gpu"]


# ---- gateway ---------------------------------------------------------------------------------------------

def gateway_config(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(by_kind(objs, "ConfigMap", "llm-gateway")["data"]["config.yaml"])


def test_gateway_routes_each_served_name_to_its_service():
    config = gateway_config(llm.render(contexts()[FR]))
    assert config["model_list"] == [
        {"model_name": "albert-large",
         "litellm_params": {"model": "hosted_vllm/albert-large", "api_base": "http://vllm-llama-70b:8000/v1"}},
        {"model_name": "albert-small",
         "litellm_params": {"model": "hosted_vllm/albert-small", "api_base": "http://vllm-mistral-small:8000/v1"}},
    ]  # the keys are added by the init container (test_llm_api_key.py)
    assert "general_settings" not in config
    lu = gateway_config(llm.render(contexts()[LU]))
    assert [(m["model_name"], m["litellm_params"]["api_base"]) for m in lu["model_list"]] == [
        ("mistral-small", "http://vllm-mistral-small:8000/v1")  # no servedName: the model's name
    ]


def test_gateway_deployment_service_and_ingress():
    ctx = contexts()[FR]
    objs = llm.render(ctx)
    dep = by_kind(objs, "Deployment", "llm-gateway")
    c = container(dep)
    assert c["image"] == "ghcr.io/berriai/litellm:v1.77.7-stable"
    assert c["args"] == ["--config", "/run/litellm/config.yaml", "--port", "4000"]  # written by the init container
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/liveliness", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/readiness", "port": "http"}
    assert not [e for e in c["env"] if "valueFrom" in e]  # the keys are files: test_llm_api_key.py
    assert dep["spec"]["replicas"] == 2
    assert by_kind(objs, "PodDisruptionBudget", "llm-gateway")["spec"]["selector"] == dep["spec"]["selector"]
    svc = by_kind(objs, "Service", "llm-gateway")
    assert svc["spec"]["ports"][0]["port"] == 4000
    ing = by_kind(objs, "Ingress", "llm-gateway")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "llm.fr.workplace.example.eu"
    assert ing["spec"]["tls"] == [{"hosts": ["llm.fr.workplace.example.eu"],
                                   "secretName": "llm.fr.workplace.example.eu-tls"}]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {
        "name": "llm-gateway", "port": {"name": "http"}
    }


def test_gateway_rolls_when_routes_change():
    def checksum(ctx):
        dep = by_kind(llm.render(ctx), "Deployment", "llm-gateway")
        return dep["spec"]["template"]["metadata"]["annotations"]["sovereignsuite.io/config-sha256"]

    assert checksum(contexts()[FR]) != checksum(contexts(models_patch(model()))[FR])


def test_gateway_single_replica_has_no_pdb():
    objs = llm.render(contexts(llm_patch(gateway={"replicas": 1}))[FR])
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]


def test_secrets_declares_the_master_key():
    ctx = contexts()[FR]
    (spec,) = [s for s in llm.secrets(ctx) if s.name == "llm-gateway"]  # vLLM's key: test_llm_api_key.py
    assert (spec.name, spec.namespace, spec.component) == ("llm-gateway", "eu-workplace-fr", "llm")
    assert list(spec.keys) == ["master-key"]
    assert spec.keys["master-key"].generator == "random" and spec.keys["master-key"].length >= 32


def test_extra_config_is_merged():
    extra = {"litellm_settings": {"drop_params": True}, "general_settings": {"disable_spend_logs": True},
             "router_settings": {"num_retries": 2}}
    config = gateway_config(llm.render(contexts(llm_patch(extraConfig=extra))[FR]))
    assert config["litellm_settings"] == {"drop_params": True}
    assert config["router_settings"] == {"num_retries": 2}
    assert config["general_settings"] == {"disable_spend_logs": True}
    assert len(config["model_list"]) == 2


@pytest.mark.parametrize(
    "extra, path",
    [
        ({"model_list": []}, "spec.components.llm.extraConfig.model_list"),
        ({"general_settings": {"master_key": "sk-1234"}},
         "spec.components.llm.extraConfig.general_settings.master_key"),
        ({"general_settings": "x"}, "spec.components.llm.extraConfig.general_settings"),
    ],
)
def test_extra_config_clash_is_an_input_error(extra, path):
    ctx = contexts(llm_patch(extraConfig=extra))[FR]
    with pytest.raises(InputError) as err:
        llm.render(ctx)
    assert [p.path for p in err.value.problems] == [path]


def test_extra_config_clash_in_tenant_override_names_the_tenant_path():
    suite, clouds = load_example("four-countries")
    doc = copy.deepcopy(suite.model_dump(by_alias=True, exclude_none=True, mode="json"))
    doc["spec"]["tenants"][LU]["components"]["llm"]["extraConfig"] = {"model_list": []}
    from sovereign_suite.api.validation import parse_suite

    with pytest.raises(InputError) as err:
        llm.render(build_contexts(parse_suite(doc), clouds)[LU])
    assert [p.path for p in err.value.problems] == ["spec.tenants[2].components.llm.extraConfig.model_list"]


def test_no_secret_value_in_config_map():
    for objs in all_variants():
        config = by_kind(objs, "ConfigMap", "llm-gateway")["data"]["config.yaml"]
        assert "sk-" not in config and "master_key" not in config and "api_key" not in config


def test_image_version():
    assert llm.image_version("docker.io/vllm/vllm-openai:v0.33.0") == "v0.33.0"
    assert llm.image_version("registry:5000/vllm@sha256:abc") is None
    assert llm.image_version("registry:5000/vllm:1.0@sha256:abc") == "1.0"
    assert llm.image_version("registry:5000/vllm") is None
