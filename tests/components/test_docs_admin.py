"""Docs' Django admin site (issue 22, item 16): not routed by default; ``docs.admin`` routes ``/admin`` and
``/static`` through a second Ingress that ingress-nginx serves only to ``sourceRanges``; refused where the
operator cannot write an allow-list the controller enforces. No cluster."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sovereign_suite.api.ingress_annotations import WHITELIST_SOURCE_RANGE
from sovereign_suite.api.loader import load_files
from sovereign_suite.api.validation import InputError, parse_suite
from sovereign_suite.render import render_suite

from ..helpers import EXAMPLES, example_dict, load_example

ADMIN = {"enabled": True, "sourceRanges": ["192.0.2.0/24", "2001:db8::/48"]}


def rendered(patch_docs: dict[str, Any] | None = None, clouds=None, tenant_patch: dict[str, Any] | None = None
             ) -> list[dict[str, Any]]:
    doc = copy.deepcopy(example_dict("two-countries"))
    doc["spec"]["components"]["docs"].update(patch_docs or {})
    if tenant_patch:
        doc["spec"]["tenants"][0]["components"] = tenant_patch
    return render_suite(parse_suite(doc), clouds or load_example("two-countries")[1]).manifests


def ingresses(objs: list[dict[str, Any]], namespace: str = "eu-workplace-fr") -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "Ingress" and o["metadata"]["namespace"] == namespace
            and o["metadata"]["name"].startswith("docs")}


def paths(ing: dict[str, Any]) -> dict[str, str]:
    return {p["path"]: p["backend"]["service"]["name"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]}


def test_admin_is_not_routed_by_default():
    for ns in ("eu-workplace-fr", "eu-workplace-de"):
        ings = ingresses(rendered(), ns)
        assert set(ings) == {"docs"}
        routed = paths(ings["docs"])
        assert "/admin" not in routed and "/static" not in routed
        assert set(routed) == {"/", "/api", "/collaboration/ws/", "/collaboration/api/", "/media/"}
        # no Ingress of the tenant routes a path under /admin to the backend
        for o in rendered():
            if o["kind"] == "Ingress":
                assert not any(p.startswith("/admin") for p in paths(o)), o["metadata"]["name"]


def test_opt_in_routes_admin_for_the_allowed_networks_only():
    ings = ingresses(rendered({"admin": ADMIN, "ingressAnnotations": {"example.com/team": "docs"}}))
    assert set(ings) == {"docs", "docs-admin"}
    admin, public = ings["docs-admin"], ings["docs"]
    assert paths(admin) == {"/admin": "docs-backend", "/static": "docs-backend"}
    assert "/admin" not in paths(public)
    ann = admin["metadata"]["annotations"]
    assert ann[WHITELIST_SOURCE_RANGE] == "192.0.2.0/24,2001:db8::/48"
    assert WHITELIST_SOURCE_RANGE not in public["metadata"]["annotations"]
    # the same host, class, TLS Secret and user annotations as the public Ingress
    assert admin["spec"]["rules"][0]["host"] == public["spec"]["rules"][0]["host"]
    assert admin["spec"]["tls"] == public["spec"]["tls"]
    assert admin["spec"]["ingressClassName"] == public["spec"]["ingressClassName"]
    assert ann["example.com/team"] == "docs"


def test_the_admin_allow_list_replaces_a_source_range_of_ingress_annotations():
    """A user's allow-list on the public Ingress stays there; the admin Ingress carries docs.admin.sourceRanges."""
    ings = ingresses(rendered({"admin": ADMIN, "ingressAnnotations": {WHITELIST_SOURCE_RANGE: "0.0.0.0/0"}}))
    assert ings["docs"]["metadata"]["annotations"][WHITELIST_SOURCE_RANGE] == "0.0.0.0/0"
    assert ings["docs-admin"]["metadata"]["annotations"][WHITELIST_SOURCE_RANGE] == "192.0.2.0/24,2001:db8::/48"


def test_a_tenant_may_open_its_own_admin_site():
    objs = rendered(tenant_patch={"docs": {"admin": ADMIN}})
    assert "docs-admin" in ingresses(objs, "eu-workplace-fr")
    assert "docs-admin" not in ingresses(objs, "eu-workplace-de")


@pytest.mark.parametrize("admin,path,message", [
    ({"enabled": True}, "spec.components.docs.admin", "enabled needs sourceRanges"),
    ({"enabled": True, "sourceRanges": []}, "spec.components.docs.admin", "enabled needs sourceRanges"),
    ({"enabled": True, "sourceRanges": ["0.0.0.0/0"]}, "spec.components.docs.admin.sourceRanges[0]", "no allow-list"),
    ({"enabled": True, "sourceRanges": ["::/0"]}, "spec.components.docs.admin.sourceRanges[0]", "no allow-list"),
    ({"enabled": True, "sourceRanges": ["192.0.2.1/24"]}, "spec.components.docs.admin.sourceRanges[0]", "canonical"),
    ({"enabled": True, "sourceRanges": ["office"]}, "spec.components.docs.admin.sourceRanges[0]", "canonical"),
])
def test_bad_admin_settings_are_refused_naming_the_field(admin, path, message):
    doc = copy.deepcopy(example_dict("two-countries"))
    doc["spec"]["components"]["docs"]["admin"] = admin
    with pytest.raises(InputError) as err:
        parse_suite(doc)
    assert any(p.path == path and message in p.message for p in err.value.problems), err.value.problems


def test_refused_on_a_cloud_whose_controller_enforces_no_allow_list():
    _, clouds = load_files([EXAMPLES / "clouds.yaml"])
    fr = clouds["fr-secnumcloud"]
    clouds["fr-secnumcloud"] = fr.model_copy(update={"spec": fr.spec.model_copy(update={"ingress_controller": "other"})})
    with pytest.raises(InputError) as err:
        rendered(tenant_patch={"docs": {"admin": ADMIN}}, clouds=clouds)
    [problem] = err.value.problems
    assert problem.path == "spec.tenants[0].components.docs.admin"
    assert "ingressController other" in problem.message
    # without the opt-in the same cloud renders Docs (without /admin)
    assert "/admin" not in paths(ingresses(rendered(clouds=clouds))["docs"])


def test_with_cert_manager_only_the_public_ingress_asks_for_the_shared_certificate():
    """docs and docs-admin share docs.<domain>-tls; ingress-shim owns one Certificate per Secret and refuses to update
    it for a second Ingress (cert-manager/cert-manager#2585): only the first carries the issuer."""
    _, clouds = load_files([EXAMPLES / "clouds.yaml"])
    issued = {}
    for name, cloud in clouds.items():
        doc = cloud.model_dump(by_alias=True, exclude_none=True, mode="json")
        doc["spec"]["certManager"] = {"issuerRef": {"name": "letsencrypt"}}
        issued[name] = type(cloud).model_validate(doc)
    ings = ingresses(rendered({"admin": ADMIN}, clouds=issued))
    assert ings["docs"]["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert not any(k.startswith("cert-manager.io/") for k in ings["docs-admin"]["metadata"]["annotations"])
    assert ings["docs-admin"]["spec"]["tls"] == ings["docs"]["spec"]["tls"]
