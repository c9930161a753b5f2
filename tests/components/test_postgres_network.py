"""The CloudNativePG operator must reach the instance pods through the tenant's default-deny policies."""

from __future__ import annotations

from sovereign_suite.api.models import NationalCloud
from sovereign_suite.components import matrix
from sovereign_suite.components.base import build_contexts

from ..helpers import load_example, suite_with

CNPG = frozenset({"postgresql.cnpg.io/v1"})


def policies(objs: list[dict]) -> list[dict]:
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


def fr_matrix(mode: str, clouds_patch: dict | None = None) -> list[dict]:
    suite = suite_with("four-countries", {"components": {"matrix": {"postgres": {"mode": mode}}}})
    _, clouds = load_example("four-countries")
    if clouds_patch:
        fr = clouds["fr-secnumcloud"].model_dump(by_alias=True)
        fr["spec"].update(clouds_patch)
        clouds = {**clouds, "fr-secnumcloud": NationalCloud.model_validate(fr)}
    return matrix.render(build_contexts(suite, clouds, CNPG)[0])


def test_cloudnative_pg_mode_lets_the_cnpg_operator_in_on_8000_and_5432() -> None:
    # cloudnative-pg docs/src/networking.md and docs/src/samples/networkpolicy-example.yaml (v1.30.0): the
    # operator (namespace cnpg-system, pods app.kubernetes.io/name=cloudnative-pg) must reach every pod
    # labelled cnpg.io/cluster=<cluster> on ports 8000 and 5432.
    (policy,) = policies(fr_matrix("cloudnative-pg"))
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "matrix-postgres"}}
    (rule,) = spec["ingress"]
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cloudnative-pg"}},
    }]
    assert sorted(p["port"] for p in rule["ports"]) == [5432, 8000]


def test_cnpg_operator_location_is_a_cloud_setting() -> None:
    objs = fr_matrix("cloudnative-pg", {"cloudNativePG": {"namespace": "databases",
                                                          "podLabels": {"app": "cnpg"}}})
    (rule,) = policies(objs)[0]["spec"]["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "databases"}
    assert rule["from"][0]["podSelector"]["matchLabels"] == {"app": "cnpg"}


def test_embedded_mode_needs_no_policy() -> None:
    assert policies(fr_matrix("embedded")) == []
