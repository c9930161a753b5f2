"""The API models, the generated CRDs, and per-tenant overrides."""

from __future__ import annotations

import pytest

from sovereign_suite.api import crdgen
from sovereign_suite.api.validation import InputError, effective_components, parse_suite

from .helpers import ROOT, example_dict, load_example, suite_with


@pytest.mark.parametrize("name", sorted(crdgen.CRDS))
def test_crds_directory_is_up_to_date(name):
    committed = (ROOT / "crds" / f"{name}.yaml").read_text()
    assert committed == crdgen.crd_yaml(name), f"crds/{name}.yaml is out of date: run `make crds`"


def test_api_reference_is_up_to_date():
    from sovereign_suite.api import docgen

    assert (ROOT / "docs" / "api.md").read_text() == docgen.generate(), "docs/api.md is out of date: run `make crds`"


def _walk(schema, path="spec"):
    yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{key}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("name", sorted(crdgen.CRDS))
def test_crd_schemas_are_structural(name):
    crd = crdgen.CRDS[name]()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    for path, node in _walk(version["schema"]["openAPIV3Schema"]):
        for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "default", "title", "const"):
            assert forbidden not in node, f"{path} has {forbidden}"
        assert "type" in node or node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        ), f"{path} has no type"


def test_suite_crd_shape():
    crd = crdgen.suite_crd()
    assert crd["spec"]["names"]["shortNames"][0] == "suite"
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Countries", "Ready", "Reason", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    tenants = spec["properties"]["tenants"]
    assert tenants["x-kubernetes-list-type"] == "map" and tenants["x-kubernetes-list-map-keys"] == ["country"]
    rules = [v["rule"] for v in tenants["x-kubernetes-validations"] + tenants["items"]["x-kubernetes-validations"]]
    assert any("exists_one(u, u.country == t.country)" in r for r in rules)
    assert "self.cloud == oldSelf.cloud" in rules
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["operator"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert set(status["properties"]["conditions"]["items"]["properties"]["type"]["enum"]) == {
        "Ready", "Reconciling", "Stalled", "Degraded"}


def test_no_category_is_a_resource_name():
    """kubectl expands a category before it looks a name up: a category named like a resource (the former
    `sovereignsuite`) makes `kubectl get sovereignsuite NAME` two resources (tests/cluster/test_crd_names.py)."""
    names = [crd["spec"]["names"] for crd in (crdgen.suite_crd(), crdgen.cloud_crd())]
    taken = {n[k] for n in names for k in ("plural", "singular")} | {s for n in names for s in n["shortNames"]}
    taken |= {n["kind"].lower() for n in names}
    assert all(n["categories"] == [crdgen.CATEGORY] for n in names)
    assert crdgen.CATEGORY not in taken


def test_cloud_crd_is_cluster_scoped():
    crd = crdgen.cloud_crd()
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["ncloud"]


def test_defaults_apply_when_parsing_not_in_crd():
    suite, _ = load_example("two-countries")
    assert suite.spec.deletion_policy == "Retain"
    assert suite.spec.components.llm.enabled is False
    assert suite.spec.components.matrix.postgres.mode == "embedded"
    nodes = [node for _, node in _walk(crdgen.suite_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])]
    assert nodes and not [n for n in nodes if "default" in n]


def test_tenant_override_merges_only_the_fields_set():
    suite, _ = load_example("four-countries")
    lu = next(t for t in suite.spec.tenants if t.country == "LU")
    fr = next(t for t in suite.spec.tenants if t.country == "FR")
    lu_comps = effective_components(suite, lu)
    assert lu_comps.jitsi.web_replicas == 1
    assert lu_comps.jitsi.jvb_replicas == suite.spec.components.jitsi.jvb_replicas
    assert [m.name for m in lu_comps.llm.models] == ["mistral-small"]  # lists are replaced, not merged
    assert lu_comps.llm.enabled is True  # inherited
    assert effective_components(suite, fr) is suite.spec.components


def test_tenant_override_errors_name_the_tenant_path():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"tenants": [{"country": "FR", "cloud": "fr-secnumcloud",
                                                  "components": {"jitsi": {"webReplicas": -1}}}]})
    assert [str(p) for p in err.value.problems] == [
        "spec.tenants[0].components.jitsi.webReplicas: Input should be greater than or equal to 0"]


def test_override_of_unknown_component_is_rejected():
    doc = example_dict("two-countries")
    doc["spec"]["tenants"][0]["components"] = {"chat": {"enabled": False}}
    with pytest.raises(InputError) as err:
        parse_suite(doc)
    assert str(err.value.problems[0]).startswith("spec.tenants[0].components: unknown component(s) chat")


def test_external_postgres_needs_host_and_secret():
    with pytest.raises(InputError) as err:
        suite_with("two-countries", {"components": {"matrix": {"postgres": {"mode": "external"}}}})
    assert str(err.value.problems[0]) == (
        "spec.components.matrix.postgres: mode external needs host and passwordSecretRef")
