"""Issue 15: values that become Kubernetes label keys, label values, selectors, names or RBAC subjects are
validated as such when parsed, with the exact inputs that used to break a render or an apply."""

from __future__ import annotations

import copy

import pytest
import yaml

from sovereign_suite.api import crdgen
from sovereign_suite.api.kubenames import label_key_problem, label_value_from, label_value_problem
from sovereign_suite.api.validation import InputError, parse_cloud
from sovereign_suite.components.base import image_version

from .helpers import CLOUDS, suite_with


def fr_cloud() -> dict:
    return copy.deepcopy(next(d for d in yaml.safe_load_all(CLOUDS.read_text()) if d["metadata"]["name"] == "fr-secnumcloud"))


def cloud_problems(spec_patch: dict) -> list[str]:
    doc = fr_cloud()
    doc["spec"].update(spec_patch)
    with pytest.raises(InputError) as err:
        parse_cloud(doc)
    return [str(p) for p in err.value.problems]


def suite_problems(patch: dict) -> list[str]:
    with pytest.raises(InputError) as err:
        suite_with("two-countries", patch)
    return [str(p) for p in err.value.problems]


# ---- image tags -> app.kubernetes.io/version ----------------------------------------------------------

@pytest.mark.parametrize("image, version", [
    ("registry.example.eu/synapse:v1-", "v1"),
    ("registry.example.eu/synapse:" + "a" * 62 + ".b", "a" * 62),  # cut at 63 would end in '.'
    ("registry.example.eu/synapse:_x_", "x"),
    ("registry.example.eu/synapse:v1.2.3", "v1.2.3"),
])
def test_image_version_is_always_a_valid_label_value(image, version):
    assert image_version(image) == version
    assert label_value_problem(image_version(image)) is None


def test_image_version_of_a_tag_without_alphanumerics_is_none():
    assert image_version("registry.example.eu/synapse:---") is None
    assert label_value_from("...") is None


def test_image_tag_ending_in_dash_renders_a_valid_version_label():
    from sovereign_suite.render import render_suite
    from .helpers import load_example

    _, clouds = load_example("two-countries")
    suite = suite_with("two-countries", {"components": {"matrix": {"image": "ghcr.io/element-hq/synapse:v1-"}}})
    synapse = next(o for o in render_suite(suite, clouds).manifests if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == "synapse")
    assert synapse["metadata"]["labels"]["app.kubernetes.io/version"] == "v1"


# ---- NationalCloud: label keys and values --------------------------------------------------------------

def test_gpu_product_label_with_a_space_is_rejected():
    problems = cloud_problems({"gpu": {"productLabel": "nvidia.com/gpu product"}})
    assert problems == ["NationalCloud/fr-secnumcloud.spec.gpu.productLabel: 'nvidia.com/gpu product' is not a valid "
                        "label key: the name after the optional '<prefix>/' must have 1 to 63 letters, digits, '-', "
                        "'_' or '.', beginning and ending with a letter or digit"]


def test_node_selector_key_and_value_with_a_space_are_rejected():
    problems = cloud_problems({"gpu": {"nodeSelector": {"gpu pool": "a100", "pool": "big gpus"}}})
    assert [p.split(":")[0] for p in problems] == [
        "NationalCloud/fr-secnumcloud.spec.gpu.nodeSelector.gpu pool",
        "NationalCloud/fr-secnumcloud.spec.gpu.nodeSelector.pool",
    ]
    assert "is not a valid label key" in problems[0] and "is not a label value" in problems[1]


def test_regions_must_be_label_values():
    problems = cloud_problems({"regions": ["eu west 2"]})
    assert problems == ["NationalCloud/fr-secnumcloud.spec.regions[0]: 'eu west 2' is not a label value (at most 63 "
                        "letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)"]


def test_toleration_key_must_be_a_label_key():
    problems = cloud_problems({"gpu": {"tolerations": [{"key": "nvidia.com/gpu;x", "operator": "Exists"}]}})
    assert problems[0].startswith("NationalCloud/fr-secnumcloud.spec.gpu.tolerations[0].key: ")


@pytest.mark.parametrize("key", ["nvidia.com/gpu.product", "gpu", "a.b-c/D_e.f"])
def test_valid_label_keys(key):
    assert label_key_problem(key) is None


@pytest.mark.parametrize("key", ["/gpu", "Nvidia.com/gpu", "nvidia.com/", "nvidia.com/-gpu", "a/" + "x" * 64])
def test_invalid_label_keys(key):
    assert label_key_problem(key)


# ---- suite: GPU products, namespace, admin group ---------------------------------------------------------

def test_gpu_products_must_be_label_values():
    model = {"name": "m", "modelId": "org/m", "gpuProducts": ["NVIDIA H100"]}
    problems = suite_problems({"components": {"llm": {"enabled": True, "models": [model]}}})
    assert problems[0].startswith("spec.components.llm.models[0].gpuProducts[0]: 'NVIDIA H100' is not a label value")


@pytest.mark.parametrize("group", ["system:authenticated", "system:masters", "system:serviceaccounts"])
def test_admin_group_may_not_be_a_system_group(group):
    problems = suite_problems({"tenants": [{"country": "FR", "cloud": "fr-secnumcloud", "adminGroup": group}]})
    assert len(problems) == 1
    assert problems[0].startswith(f"spec.tenants[0].adminGroup: {group!r} is a Kubernetes system group (system:*)")


def test_admin_group_rule_is_in_the_crd():
    tenant = crdgen.suite_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["tenants"]["items"]
    rules = [v["rule"] for v in tenant["properties"]["adminGroup"]["x-kubernetes-validations"]]
    assert rules == ["!self.startsWith('system:')"]


def test_suite_metadata_namespace_must_be_a_namespace_name():
    from .helpers import example_dict
    from sovereign_suite.api.validation import parse_suite

    doc = example_dict("two-countries")
    doc["metadata"]["namespace"] = "Sovereign Suite"
    with pytest.raises(InputError) as err:
        parse_suite(doc)
    assert [p.path for p in err.value.problems] == ["metadata.namespace"]


# ---- bounded lists -----------------------------------------------------------------------------------

def _node(schema: dict, *path: str) -> dict:
    for part in path:
        schema = schema["items"] if part == "[]" else schema["properties"][part]
    return schema


@pytest.mark.parametrize("path, limit", [
    (("components", "llm", "models"), 16),
    (("components", "llm", "models", "[]", "extraArgs"), 64),
    (("components", "llm", "models", "[]", "gpuProducts"), 16),
    (("components", "matrix", "federation", "extraDomains"), 256),
    (("identity", "oidc", "scopes"), 16),
    (("tenants",), 32),
])
def test_lists_of_the_suite_are_bounded_in_the_crd(path, limit):
    spec = crdgen.suite_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _node(spec, *path)["maxItems"] == limit


def test_seventeen_models_are_rejected():
    models = [{"name": f"m{i}", "modelId": "org/m", "gpuProducts": ["H100"]} for i in range(17)]
    problems = suite_problems({"components": {"llm": {"enabled": True, "models": models}}})
    assert problems == ["spec.components.llm.models: List should have at most 16 items after validation, not 17"]


@pytest.mark.parametrize("image", ["ghcr.io/element-hq/synapse:v1 --x", "ghcr.io/element-hq/Synapse:v1",
                                   "ghcr.io/element-hq/synapse:v1\n"])
def test_image_reference_is_validated(image):
    problems = suite_problems({"components": {"matrix": {"image": image}}})
    assert [p.split(":")[0] for p in problems] == ["spec.components.matrix.image"]
    assert "is not an image reference" in problems[0]
