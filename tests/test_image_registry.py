"""NationalCloud spec.imageRegistry: validation, and every image a tenant on that cloud runs comes from it."""

from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from sovereign_suite.api.models import NationalCloud
from sovereign_suite.imageref import registry_problem, rewrite, rewrite_objects, split
from sovereign_suite.render import render_suite

from .helpers import load_example

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("image,expected", [
    ("docker.io/library/postgres:17.6-bookworm", ("docker.io", "library/postgres", ":17.6-bookworm")),
    ("redis:8.2-alpine", ("docker.io", "library/redis", ":8.2-alpine")),
    ("lasuite/impress-backend:v3.8.2", ("docker.io", "lasuite/impress-backend", ":v3.8.2")),
    ("ghcr.io/element-hq/synapse:v1.163.2", ("ghcr.io", "element-hq/synapse", ":v1.163.2")),
    ("localhost:5000/a/b", ("localhost:5000", "a/b", "")),
    (f"quay.io/x/y:1@{DIGEST}", ("quay.io", "x/y", f":1@{DIGEST}")),
    (f"quay.io/x/y@{DIGEST}", ("quay.io", "x/y", f"@{DIGEST}")),
])
def test_split(image, expected):
    assert split(image) == expected


def test_rewrite_keeps_path_tag_and_digest():
    assert rewrite("ghcr.io/element-hq/synapse:v1.163.2", "registry.fr.example") == \
        "registry.fr.example/element-hq/synapse:v1.163.2"
    assert rewrite(f"postgres:17@{DIGEST}", "mirror.fr:5000/suite") == f"mirror.fr:5000/suite/library/postgres:17@{DIGEST}"
    assert rewrite("ghcr.io/a/b:1", None) == "ghcr.io/a/b:1"


@pytest.mark.parametrize("value", ["registry.example.fr", "mirror.example.fr:5000", "10.0.0.5:5000/suite/fr",
                                   "localhost/mirror", "r.example/a_b/c-d"])
def test_valid_registries(value):
    assert registry_problem(value) is None


@pytest.mark.parametrize("value", ["https://registry.example.fr", "registry.example.fr/", "Registry.Example.fr",
                                   "registry.example.fr:99999", "registry.example.fr:5000:1", "reg istry",
                                   "registry.example.fr/mirror:tag", "-bad.example", "r.example/UPPER", ""])
def test_invalid_registries(value):
    assert registry_problem(value) is not None


def _clouds(registry: str | None):
    _, clouds = load_example("two-countries")
    out = {}
    for name, cloud in clouds.items():
        data = cloud.model_dump(by_alias=True, exclude_none=True)
        if cloud.spec.country == "FR" and registry:
            data["spec"]["imageRegistry"] = registry
        out[name] = NationalCloud.model_validate(data)
    return out


def _images(manifests, namespace_suffix):
    found = {}
    for obj in manifests:
        if not obj["metadata"].get("namespace", "").endswith(namespace_suffix):
            continue
        for pod in (obj.get("spec", {}).get("template", {}).get("spec"),):
            for c in (pod or {}).get("initContainers", []) + (pod or {}).get("containers", []):
                found[(obj["kind"], obj["metadata"]["name"], c["name"])] = c["image"]
    return found


def test_cloud_registry_rewrites_every_image_of_its_tenant_only():
    suite, _ = load_example("two-countries")
    plain = render_suite(suite, _clouds(None)).manifests
    mirrored = render_suite(suite, _clouds("registry.fr.example/mirror")).manifests
    before_fr, after_fr = _images(plain, "-fr"), _images(mirrored, "-fr")
    assert before_fr and before_fr.keys() == after_fr.keys()
    for key, image in before_fr.items():
        assert after_fr[key] == rewrite(image, "registry.fr.example/mirror"), key
        assert after_fr[key].startswith("registry.fr.example/mirror/")
    assert _images(plain, "-de") == _images(mirrored, "-de")  # the other country's images are untouched


def test_model_rejects_a_bad_registry():
    _, clouds = load_example("two-countries")
    data = copy.deepcopy(next(iter(clouds.values())).model_dump(by_alias=True, exclude_none=True))
    data["spec"]["imageRegistry"] = "https://registry.example.fr"
    with pytest.raises(ValidationError, match="registry host"):
        NationalCloud.model_validate(data)


def test_rewrite_objects_covers_cronjobs_and_pods():
    objs = [{"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "busybox:1"}]}}}}}},
        {"kind": "Pod", "spec": {"initContainers": [{"name": "i", "image": "ghcr.io/x/y:1"}], "containers": []}}]
    rewrite_objects(objs, "r.example")
    assert objs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "r.example/library/busybox:1"
    assert objs[1]["spec"]["initContainers"][0]["image"] == "r.example/x/y:1"
