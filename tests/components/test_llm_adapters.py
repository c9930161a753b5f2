"""Serving LoRA adapters: vLLM's flags, the loader sidecar, the gateway's per-key routes (no cluster).

Upstream facts (vLLM v0.33.0, LiteLLM v1.77.7, KubeAI) are cited in components/llm/adapters.py where they are encoded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

import sovereign_suite.render as suite_render
from sovereign_suite.api.loader import load_files
from sovereign_suite.api.validation import InputError
from sovereign_suite.components.llm import adapters as lora
from sovereign_suite.components.llm import vllm_args
from .. import golden_refresh
from ..helpers import K8S_SCHEMA_VERSION, load_example, pod_specs
from .test_llm import by_kind, container

DATA = Path(__file__).resolve().parents[1] / "data" / "adapters"
TEMPLATES = Path(lora.__file__).parent / "templates"


def suite_and_cloud():
    suites, clouds = load_files([DATA / "suite.yaml", DATA / "cloud.yaml"])
    return suites[0], clouds


def adapter(name="impots", rank=16, consumers=("dgfip",), base="small", uri=None) -> lora.ServedAdapter:
    return lora.ServedAdapter(name=name, base_model=base, uri=uri or f"s3://fr-albert-models/adapters/{name}/",
                              rank=rank, consumers=tuple(consumers))


def render(*adapters: lora.ServedAdapter) -> list[dict[str, Any]]:
    suite, clouds = suite_and_cloud()
    result = suite_render.render_suite(suite, clouds, adapters={"FR": list(adapters)} if adapters else None)
    return suite_render.with_secrets(result)


# ---- vLLM ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ranks, max_rank, max_loras", [
    ([8], 8, 1), ([16, 8], 16, 2), ([1, 1, 1], 1, 4), ([17], 32, 1), ([64, 8, 8, 8, 8], 64, 8), ([320], 320, 1),
    ([321], 512, 1),
])
def test_ranks_give_the_lora_flags(ranks, max_rank, max_loras):
    args = lora.lora_args([adapter(f"a{i}", r) for i, r in enumerate(ranks)])
    assert args == ["--enable-lora", "--max-loras", str(max_loras), "--max-lora-rank", str(max_rank)]


def test_max_loras_is_the_next_power_of_two():
    assert [lora.max_loras(n) for n in range(1, 10)] == [1, 2, 4, 4, 8, 8, 8, 8, 16]


def test_no_adapter_renders_exactly_as_before():
    suite, clouds = suite_and_cloud()
    assert render() == suite_render.with_secrets(suite_render.render_suite(suite, clouds))
    assert render() == suite_render.with_secrets(suite_render.render_suite(suite, clouds, adapters={"FR": []}))
    for name in sorted(golden_refresh.EXAMPLE_FILES):  # and the examples' goldens are still what they were
        assert golden_refresh.render_text(name) == golden_refresh.golden_path(name).read_text(encoding="utf-8")


def test_vllm_pod_with_adapters():
    objs = render(adapter("impots", 16), adapter("sante", 32, ("dgs", "ars")))
    dep = by_kind(objs, "Deployment", "vllm-small")
    spec = dep["spec"]["template"]["spec"]
    vllm = container(dep)
    args = vllm["args"]
    assert args[args.index("--enable-lora"):args.index("--enable-lora") + 5] == [
        "--enable-lora", "--max-loras", "2", "--max-lora-rank", "32"]
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in vllm["env"]
    assert {"name": "adapters", "mountPath": "/adapters", "readOnly": True} in vllm["volumeMounts"]
    loader = spec["containers"][1]
    assert loader["name"] == "adapter-loader" and loader["command"][:3] == ["python3", "-m",
                                                                             "sovereign_suite.adapterloader.program"]
    assert {"name": "adapters", "mountPath": "/adapters"} in loader["volumeMounts"]
    assert all(e["name"] != "AWS_SECRET_ACCESS_KEY" and "valueFrom" not in e for e in loader["env"])  # files only
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["adapter-loader-s3"]["secret"]["secretName"] == "fr-object-storage"
    assert volumes["adapter-loader-config"]["configMap"]["name"] == "vllm-small-adapters"
    config = json.loads(by_kind(objs, "ConfigMap", "vllm-small-adapters")["data"]["config.json"])
    assert config["s3"] == {"endpoint": "https://oos.eu-west-2.example.fr", "bucket": "fr-albert-models",
                            "region": "eu-west-2", "credentialsDir": "/etc/adapter-loader/s3"}
    assert [(a["name"], a["rank"]) for a in config["adapters"]] == [("impots", 16), ("sante", 32)]
    assert config["vllm"]["keyFile"] == "/run/secrets/vllm-api-key/VLLM_API_KEY"


def test_a_new_adapter_under_the_same_power_of_two_keeps_the_pod_template():
    """Only the ConfigMap changes: the kubelet updates the mounted file and the loader loads the adapter, vLLM
    keeps running. Passing 2 adapters (or a higher rank) changes the flags: the pods restart once."""
    def template(*a):
        return by_kind(render(*a), "Deployment", "vllm-small")["spec"]["template"]
    three = template(adapter("a"), adapter("b"), adapter("c"))
    assert template(adapter("a"), adapter("b"), adapter("c"), adapter("d")) == three
    assert template(adapter("a"), adapter("b"), adapter("c"), adapter("d", 64)) != three
    assert template(adapter("a"), adapter("b")) != three


def test_names_reach_the_files_through_their_escapers():
    odd = "s3://fr-albert-models/adapters/it's \"quoted\" : {x}/ü"
    objs = render(adapter("impots", uri=odd))
    config = json.loads(by_kind(objs, "ConfigMap", "vllm-small-adapters")["data"]["config.json"])
    assert config["adapters"][0]["uri"] == odd


@pytest.mark.parametrize("bad, field, words", [
    (adapter("Impots"), "adapters[0].name", "DNS label"),
    (adapter("albert-small"), "adapters[0].name", "served name of a base model"),
    (adapter(base="large"), "adapters[0].baseModel", "not a model"),
    (adapter(rank=513), "adapters[0].rank", "1..512"),
    (adapter(uri="s3://other-bucket/adapters/x/"), "adapters[0].uri", "s3://fr-albert-models/"),
    (adapter(uri="https://example.com/x"), "adapters[0].uri", "country's storage"),
    (adapter(uri="s3://fr-albert-models/a/../b"), "adapters[0].uri", "under"),
    (adapter(consumers=()), "adapters[0].consumers", "at least one"),
    (adapter(consumers=("a.b",)), "adapters[0].consumers[0]", "DNS label"),
    (adapter(consumers=("a", "a")), "adapters[0].consumers", "twice"),
])
def test_bad_adapters_are_refused_naming_the_field(bad, field, words):
    with pytest.raises(InputError) as err:
        render(bad)
    assert any(p.path == field and words in p.message for p in err.value.problems), err.value.problems


def test_a_cloud_without_object_storage_cannot_serve_adapters():
    suite, clouds = load_example("four-countries")
    with pytest.raises(InputError) as err:
        suite_render.render_suite(suite, clouds, adapters={"FR": [adapter(base="mistral-small")]})
    assert any("declares no spec.objectStorage" in p.message for p in err.value.problems)


def test_adapters_of_a_tenant_without_llm_are_refused():
    suite, clouds = suite_and_cloud()
    raw = suite.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["components"]["llm"]["enabled"] = False
    with pytest.raises(InputError, match="llm component is not enabled"):
        suite_render.render_suite(type(suite).model_validate(raw), clouds, adapters={"FR": [adapter()]})


def test_extra_args_may_not_set_the_lora_flags_of_a_model_with_adapters():
    suite, _ = suite_and_cloud()
    model = suite.spec.components.llm.models[0].model_copy(update={"extra_args": ["--max_lora=4"]})
    assert "--max_lora=4" in vllm_args(model, "p")  # without adapters, the user's own business
    with pytest.raises(InputError, match="--max-loras is set by the operator"):
        vllm_args(model, "p", [adapter()])


def test_the_loader_pod_reaches_the_object_storage_only_with_adapters():
    objs = render(adapter())
    policy = by_kind(objs, "NetworkPolicy", "allow-egress-object-storage-adapters")
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "vllm"}, "matchExpressions": [
        {"key": "sovereignsuite.io/model", "operator": "In", "values": ["small"]}]}
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "198.51.100.40/32"}}],
                                         "ports": [{"protocol": "TCP", "port": 443}]}]
    assert not [o for o in render() if o["kind"] == "NetworkPolicy" and "object-storage" in o["metadata"]["name"]]


def test_golden_with_adapters():
    path = golden_refresh.golden_path("llm-adapters")
    assert golden_refresh.render_text("llm-adapters") == path.read_text(encoding="utf-8"), \
        "run python -m tests.golden_refresh and review the diff"


def test_every_object_with_adapters_is_valid_kubernetes():
    objs = render(adapter("impots"), adapter("sante", 64, ("dgs", "ars")))
    for obj in objs:  # Secret names with dots, the sidecar, the projected keys, the policy's selector
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)
    assert len(objs) > 20


def test_rendered_pods_keep_the_restricted_security_context():
    for spec in [s for o in render(adapter()) for s in pod_specs(o)]:
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["readOnlyRootFilesystem"] is True


# ---- gateway ---------------------------------------------------------------------------------------------

def test_each_adapter_is_a_route_with_its_own_keys():
    objs = render(adapter("impots", consumers=("dgfip",)), adapter("sante", consumers=("dgs", "ars")))
    cm = by_kind(objs, "ConfigMap", "llm-gateway")["data"]
    config = yaml.safe_load(cm["config.yaml"])
    routes = {r["model_name"]: r["litellm_params"] for r in config["model_list"]}
    assert routes["sante"] == {"model": "hosted_vllm/sante", "api_base": "http://vllm-small:8000/v1"}
    assert config["general_settings"]["custom_auth"] == "gateway_access.user_api_key_auth"
    secrets = {o["metadata"]["name"] for o in objs if o["kind"] == "Secret"}
    assert {"llm-adapter-key.impots.dgfip", "llm-adapter-key.sante.dgs", "llm-adapter-key.sante.ars"} <= secrets
    dep = by_kind(objs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]
    assert [c["name"] for c in dep["initContainers"]] == ["config", "access"]
    keys = next(v for v in dep["volumes"] if v["name"] == "keys")["projected"]["sources"]
    assert {"secret": {"name": "llm-adapter-key.sante.dgs", "items": [{"key": "api-key",
                                                                       "path": "consumers/sante.dgs"}]}} in keys


@pytest.mark.parametrize("setting", [{"custom_auth": "mine.auth"}, {"custom_auth_settings": {"mode": "auto"}}])
def test_extra_config_may_not_replace_the_access_check(setting):
    suite, clouds = suite_and_cloud()
    raw = suite.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["components"]["llm"]["extraConfig"] = {"general_settings": setting}
    patched = type(suite).model_validate(raw)
    suite_render.render_suite(patched, clouds)  # no adapter: allowed, as before
    with pytest.raises(InputError, match=next(iter(setting))):
        suite_render.render_suite(patched, clouds, adapters={"FR": [adapter()]})


KEYS = {"LITELLM_MASTER_KEY": "masterKey0123", "VLLM_API_KEY": "vllmKey0123",
        "consumers/impots.dgfip": "dgfipKey0123", "consumers/sante.dgs": "dgsKey0123",
        "consumers/sante.ars": "arsKey0123"}


@pytest.fixture
def gateway_runtime(tmp_path):
    """The two init steps of the gateway, run as its pod runs them, on the rendered ConfigMap and key files."""
    objs = render(adapter("impots", consumers=("dgfip",)), adapter("sante", consumers=("dgs", "ars")))
    cm = by_kind(objs, "ConfigMap", "llm-gateway")["data"]
    config_dir, keys, runtime = tmp_path / "config", tmp_path / "keys", tmp_path / "runtime"
    for d in (config_dir, keys / "consumers", runtime):
        d.mkdir(parents=True)
    for name, text in cm.items():
        (config_dir / name).write_text(text)
    for name, value in KEYS.items():
        (keys / name).write_text(value)
    dep = by_kind(objs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]
    for init in dep["initContainers"]:
        cmd = [a.replace("/etc/litellm", str(config_dir)).replace("/run/secrets/llm-gateway", str(keys))
               .replace("/run/litellm", str(runtime)) for a in init["command"]]
        subprocess.run([sys.executable, *cmd[1:]], check=True)
    return runtime


def test_gateway_keys_reach_only_their_models(gateway_runtime):
    sys.path.insert(0, str(gateway_runtime))
    try:
        import gateway_access  # the module LiteLLM loads, as the init step copied it
    finally:
        sys.path.remove(str(gateway_runtime))
    table = gateway_access.load_table(str(gateway_runtime / "access-keys.json"))
    assert "dgsKey0123" not in (gateway_runtime / "access-keys.json").read_text()  # hashes, not keys
    allowed = {
        "sk-masterKey0123": {"albert-small"},
        "sk-dgfipKey0123": {"impots"},
        "sk-dgsKey0123": {"sante"},
        "sk-arsKey0123": {"sante"},
    }
    for key, models in allowed.items():
        for model in ("albert-small", "impots", "sante"):
            refused = gateway_access.refusal(table, key, [model])
            assert (refused is None) == (model in models), (key, model, refused)
    assert gateway_access.refusal(table, "sk-vllmKey0123", ["albert-small"])[0] == 401  # vLLM's key is not a client's
    assert gateway_access.refusal(table, "dgsKey0123", ["sante"])[0] == 401  # without sk-
    assert gateway_access.refusal(table, "", [])[0] == 401
    # the path's model is checked too (LiteLLM prefers it to the body's), and a list is not a model name
    assert gateway_access.refusal(table, "sk-dgsKey0123",
                                  gateway_access.requested_models({"model": "sante"}, {"model": "impots"}))[0] == 403
    assert gateway_access.refusal(table, "sk-dgsKey0123", [["sante"]])[0] == 403
    config = json.loads((gateway_runtime / "config.yaml").read_text())  # write-config.py: every route gets vLLM's key
    assert {r["litellm_params"]["api_key"] for r in config["model_list"]} == {"vllmKey0123"}
    assert config["general_settings"]["master_key"] == "sk-masterKey0123"
