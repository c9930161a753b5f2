"""Per-component extra Ingress annotations (issue 14): ``spec.components.<component>.ingressAnnotations``.

Key syntax is the API server's (k8s.io/apimachinery pkg/api/validation/objectmeta.go ``ValidateAnnotations``:
``IsQualifiedName(strings.ToLower(key))``); the keys the operator renders (components/ingress.py) and the few
that would break the Ingress or the tenants' isolation are refused with the field's path."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from sovereign_suite.api import crdgen
from sovereign_suite.api.ingress_annotations import MAX_ANNOTATIONS, MAX_TOTAL_BYTES, MAX_VALUE_LENGTH, key_problem
from sovereign_suite.api.models import COMPONENTS, NationalCloud
from sovereign_suite.api.validation import InputError
from sovereign_suite.render import render_suite

from ..helpers import load_example, suite_with

# Which Ingresses each component renders (the four-country example enables every component).
INGRESSES = {"matrix": {"synapse", "element-web", "matrix-well-known"}, "jitsi": {"jitsi-web"}, "docs": {"docs"},
             "llm": {"llm-gateway"}}
# Values a YAML template would mangle if printed raw: types (true, 123, null), flow and block syntax, a document
# marker, a template delimiter, quotes, a newline, a character outside the BMP (a surrogate pair in JSON).
TRICKY = {"example.eu/bool": "true", "example.eu/int": "0x1F", "example.eu/null": "null", "example.eu/flow": "{a: [b]}",
          "example.eu/doc": "---\n# not a comment", "example.eu/jinja": "{{ ctx.namespace }}{% raw %}",
          "example.eu/quotes": "'\"\\", "example.eu/emoji": "ok \U0001F600", "example.eu/empty": "",
          "Example.EU/Upper_Case.name": "keys are checked lower-cased, like the API server does"}


def ingresses(patch: dict[str, Any], controller: str | None = None) -> dict[str, dict[str, Any]]:
    suite = suite_with("four-countries", patch)
    _, clouds = load_example("four-countries")
    if controller:
        clouds = {n: NationalCloud.model_validate({**c.wire(), "spec": {**c.wire()["spec"],
                                                                        "ingressController": controller}})
                  for n, c in clouds.items()}
    fr = f"{suite.name}-fr"
    return {o["metadata"]["name"]: o for o in render_suite(suite, clouds).manifests
            if o["kind"] == "Ingress" and o["metadata"]["namespace"] == fr}


def problems(patch: dict[str, Any]) -> list[str]:
    with pytest.raises(InputError) as err:
        suite_with("four-countries", patch)
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_annotates_its_own_ingresses_with_values_unchanged(component):
    plain = ingresses({})
    notes = ingresses({"components": {component: {"ingressAnnotations": TRICKY}}})
    assert INGRESSES[component] <= set(notes)
    for name, ing in notes.items():
        got = ing["metadata"].get("annotations", {})
        before = plain[name]["metadata"].get("annotations", {})
        if name in INGRESSES[component]:
            assert got == {**before, **TRICKY}, name  # byte for byte, as strings, and the operator's stay
        else:
            assert got == before, name


def test_user_and_operator_annotations_side_by_side_and_alone_for_other_controllers():
    extra = {"nginx.ingress.kubernetes.io/limit-rps": "20"}
    synapse = ingresses({"components": {"matrix": {"ingressAnnotations": extra}}})["synapse"]["metadata"]["annotations"]
    assert synapse["nginx.ingress.kubernetes.io/limit-rps"] == "20"
    assert synapse["nginx.ingress.kubernetes.io/proxy-body-size"] == "100m"
    other = ingresses({"components": {"matrix": {"ingressAnnotations": extra}}}, controller="other")
    assert other["synapse"]["metadata"]["annotations"] == extra


def test_a_tenant_override_adds_to_the_suite_annotations_for_that_tenant_only():
    suite = suite_with("four-countries", {"components": {"docs": {"ingressAnnotations": {"a.eu/x": "1"}}}})
    doc = suite.wire()
    doc["spec"]["tenants"][0]["components"] = {"docs": {"ingressAnnotations": {"a.eu/y": "2"}}}
    from sovereign_suite.api.validation import parse_suite
    _, clouds = load_example("four-countries")
    docs = [o for o in render_suite(parse_suite(doc), clouds).manifests
            if o["kind"] == "Ingress" and o["metadata"]["name"] == "docs"]
    first, *rest = docs
    assert first["metadata"]["annotations"]["a.eu/y"] == "2" and first["metadata"]["annotations"]["a.eu/x"] == "1"
    assert rest and all("a.eu/y" not in o["metadata"]["annotations"] for o in rest)


# ---- refused keys --------------------------------------------------------------------------------------

def operator_keys() -> dict[str, set[str]]:
    """component -> every annotation key the operator itself writes on its Ingresses, from renders (every
    controller, every issuerRef shape)."""
    suite, clouds = load_example("four-countries")
    refs = [None, {"name": "le"}, {"name": "ca", "kind": "Issuer"}, {"name": "pca", "group": "awspca.cert-manager.io"}]
    keys: dict[str, set[str]] = {c: set() for c in COMPONENTS}
    for controller, ref in itertools.product(("ingress-nginx", "other"), refs):
        patched = {}
        for name, cloud in clouds.items():
            spec = {**cloud.wire()["spec"], "ingressController": controller}
            if ref:
                spec["certManager"] = {"issuerRef": ref}
            patched[name] = NationalCloud.model_validate({**cloud.wire(), "spec": spec})
        for obj in render_suite(suite, patched).manifests:
            if obj["kind"] == "Ingress":
                keys[obj["metadata"]["labels"]["sovereignsuite.io/component"]] |= set(obj["metadata"].get(
                    "annotations", {}))
    return keys


def test_every_key_the_operator_writes_is_refused_on_that_component():
    keys = operator_keys()
    assert len(set().union(*keys.values())) == 7, keys  # 3 ingress-nginx limits, 4 cert-manager issuer keys
    accepted = []
    for component, written in keys.items():
        patch = {"components": {component: {"ingressAnnotations": {k: "x" for k in written}}}}
        with pytest.raises(InputError) as err:
            suite_with("four-countries", patch)
        refused = {p.path.removeprefix(f"spec.components.{component}.ingressAnnotations.") for p in err.value.problems}
        accepted += [f"{component}: {k}" for k in written - refused]
    assert not accepted, accepted


def test_jitsi_may_set_the_read_timeout_the_operator_leaves_to_it():
    # docs/components/jitsi.md: a longer read timeout keeps idle /xmpp-websocket connections open; the operator
    # sets none on jitsi-web, so it is not the operator's key there (it is on Synapse, Docs and the gateway).
    notes = {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}
    web = ingresses({"components": {"jitsi": {"ingressAnnotations": notes}}})["jitsi-web"]
    assert web["metadata"]["annotations"] == notes
    assert problems({"components": {"docs": {"ingressAnnotations": notes}}})[0].startswith(
        "spec.components.docs.ingressAnnotations.nginx.ingress.kubernetes.io/proxy-read-timeout: is set by the operator")


@pytest.mark.parametrize("key, reason", [
    ("nginx.ingress.kubernetes.io/proxy-body-size", "is set by the operator for ingress-nginx (from matrix.maxUploadSize"),
    ("NGINX.ingress.kubernetes.io/Proxy-Read-Timeout", "is set by the operator for ingress-nginx"),
    ("cert-manager.io/cluster-issuer", "is set by the operator from the NationalCloud's spec.certManager.issuerRef"),
    ("cert-manager.io/issuer-group", "is set by the operator from the NationalCloud's spec.certManager.issuerRef"),
    ("kubernetes.io/tls-acme", "would ask cert-manager for its default issuer"),
    ("kubernetes.io/ingress.class", "the class is spec.ingressClassName, set by the operator"),
    ("nginx.ingress.kubernetes.io/configuration-snippet", "is raw nginx configuration"),
    ("nginx.ingress.kubernetes.io/server-snippet", "is raw nginx configuration"),
    ("nginx.ingress.kubernetes.io/auth-snippet", "is raw nginx configuration"),
])
@pytest.mark.parametrize("component", ["matrix", "llm"])
def test_refused_keys_name_the_field(component, key, reason):
    found = problems({"components": {component: {"ingressAnnotations": {key: "x", "example.eu/fine": "y"}}}})
    assert len(found) == 1 and found[0].startswith(f"spec.components.{component}.ingressAnnotations.{key}: {reason}")


def test_a_refused_key_in_a_tenant_override_names_the_tenant():
    tenants = suite_with("four-countries", {}).wire()["spec"]["tenants"]
    tenants[1]["components"] = {"jitsi": {"ingressAnnotations": {"kubernetes.io/ingress.class": "nginx"}}}
    found = problems({"tenants": tenants})
    assert [p.split(":")[0] for p in found] == ["spec.tenants[1].components.jitsi.ingressAnnotations.kubernetes.io/"
                                                "ingress.class"]


# ---- syntax and sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["/x", "a b", "example.eu/", "example.eu/-x", "exa_mple.eu/x", "x" * 64,
                                 "example.eu/" + "x" * 64, "a/b/c", "example..eu/x", "é"])
def test_invalid_keys(key):
    found = problems({"components": {"docs": {"ingressAnnotations": {key: "v"}}}})
    assert len(found) == 1 and found[0].startswith(f"spec.components.docs.ingressAnnotations.{key}: ")
    assert "is not an annotation key" in found[0]


@pytest.mark.parametrize("key", ["x", "example.eu/x", "Example.EU/X", "a.b-c/D_e.f", "x" * 63,
                                 "nginx.ingress.kubernetes.io/limit-rps"])
def test_valid_keys(key):
    assert key_problem(key) is None


def test_sizes():
    too_many = {f"example.eu/k{i}": "v" for i in range(MAX_ANNOTATIONS + 1)}
    assert problems({"components": {"docs": {"ingressAnnotations": too_many}}}) == [
        f"spec.components.docs.ingressAnnotations: Dictionary should have at most {MAX_ANNOTATIONS} items after "
        "validation, not more"]
    long_value = {"example.eu/k": "v" * (MAX_VALUE_LENGTH + 1)}
    assert problems({"components": {"docs": {"ingressAnnotations": long_value}}})[0].startswith(
        "spec.components.docs.ingressAnnotations.example.eu/k: String should have at most 4096 characters")
    # 17 values of 4096 two-byte characters: each within its limit, together over the byte budget
    wide = {f"example.eu/k{i}": "é" * MAX_VALUE_LENGTH for i in range(17)}
    found = problems({"components": {"docs": {"ingressAnnotations": wide}}})
    assert found == [f"spec.components.docs.ingressAnnotations: the keys and values take {17 * (13 + 8192) + 7} "
                     f"bytes; at most {MAX_TOTAL_BYTES} (the API server refuses an object whose annotations exceed "
                     "256 KiB, and the operator adds its own)"]


def test_the_crd_bounds_count_and_value_length_on_every_component():
    spec = crdgen.suite_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for component in COMPONENTS:
        node = spec["properties"]["components"]["properties"][component]["properties"]["ingressAnnotations"]
        assert node["maxProperties"] == MAX_ANNOTATIONS, component
        assert node["additionalProperties"] == {"type": "string", "maxLength": MAX_VALUE_LENGTH}, component
