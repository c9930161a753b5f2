"""cert-manager: the NationalCloud's issuerRef puts ingress-shim's annotations on every Ingress (no cluster).

Annotation names: cert-manager.io/docs/usage/ingress ("Supported Annotations": cert-manager.io/issuer,
cert-manager.io/cluster-issuer, cert-manager.io/issuer-kind, cert-manager.io/issuer-group); cluster-issuer is not
combined with issuer-kind/issuer-group (cert-manager/cert-manager pkg/controller/certificate-shim/sync.go).
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

import sovereign_suite.render as suite_render
from ..helpers import load_example, suite_with
from sovereign_suite.api.models import NationalCloud
from .test_llm import models_patch, model

CM = "cert-manager.io/"


def clouds_with(cert_manager: dict[str, Any] | None) -> dict[str, NationalCloud]:
    _, clouds = load_example("four-countries")
    out = {}
    for name, cloud in clouds.items():
        doc = cloud.model_dump(by_alias=True, exclude_none=True, mode="json")
        if cert_manager is not None:
            doc["spec"]["certManager"] = cert_manager
        out[name] = NationalCloud.model_validate(doc)
    return out


def ingresses(clouds: dict[str, NationalCloud]) -> list[dict[str, Any]]:
    # The four-country example with Jitsi, Docs, Matrix and the LLM gateway: every kind of Ingress the suite has.
    suite, _ = load_example("four-countries")
    result = suite_render.render_suite(suite, clouds)
    out = [o for o in result.manifests if o["kind"] == "Ingress"]
    assert {o["metadata"]["name"] for o in out} >= {"synapse", "element-web", "matrix-well-known", "llm-gateway"}
    return out


def test_cluster_issuer_annotates_every_ingress_and_keeps_the_tls_secret_names():
    plain = ingresses(clouds_with(None))
    issued = ingresses(clouds_with({"issuerRef": {"name": "letsencrypt"}}))
    assert len(plain) == len(issued)
    for before, after in zip(plain, issued):
        notes = after["metadata"]["annotations"]
        assert notes[CM + "cluster-issuer"] == "letsencrypt"
        assert not {CM + "issuer", CM + "issuer-kind", CM + "issuer-group"} & set(notes)
        # The controller's annotations stay; ingress-shim writes the certificate into the same <host>-tls Secret.
        assert {k: v for k, v in notes.items() if not k.startswith(CM)} == before["metadata"].get("annotations", {})
        assert after["spec"]["tls"] == before["spec"]["tls"]
        assert after["spec"]["tls"][0]["secretName"] == after["spec"]["tls"][0]["hosts"][0] + "-tls"


def test_without_issuer_no_cert_manager_annotation():
    for ing in ingresses(clouds_with(None)):
        assert not [k for k in ing["metadata"].get("annotations", {}) if k.startswith(CM)]


def test_namespaced_issuer():
    for ing in ingresses(clouds_with({"issuerRef": {"name": "tenant-ca", "kind": "Issuer"}})):
        notes = ing["metadata"]["annotations"]
        assert notes[CM + "issuer"] == "tenant-ca" and CM + "cluster-issuer" not in notes


def test_external_issuer_names_kind_and_group():
    ref = {"name": "pca", "kind": "ClusterIssuer", "group": "awspca.cert-manager.io"}
    for ing in ingresses(clouds_with({"issuerRef": ref})):
        notes = ing["metadata"]["annotations"]
        assert {k: v for k, v in notes.items() if k.startswith(CM)} == {
            CM + "issuer": "pca", CM + "issuer-kind": "ClusterIssuer", CM + "issuer-group": "awspca.cert-manager.io"
        }


@pytest.mark.parametrize("ref", [{"name": "Bad_Name"}, {"name": "x", "kind": "Certificate"}, {"kind": "Issuer"},
                                 {"name": "x", "group": "not a group"}])
def test_invalid_issuer_ref_is_refused(ref):
    with pytest.raises(pydantic.ValidationError):
        clouds_with({"issuerRef": ref})


def test_llm_enabled_suite_gets_the_annotation_too():
    suite = suite_with("two-countries", models_patch(model(), enabled=True))
    _, clouds = load_example("two-countries")
    for name, cloud in clouds.items():
        doc = cloud.model_dump(by_alias=True, exclude_none=True, mode="json")
        doc["spec"]["certManager"] = {"issuerRef": {"name": "letsencrypt"}}
        clouds[name] = NationalCloud.model_validate(doc)
    result = suite_render.render_suite(suite, clouds)
    gateways = [o for o in result.manifests if o["kind"] == "Ingress" and o["metadata"]["name"] == "llm-gateway"]
    assert gateways and all(g["metadata"]["annotations"][CM + "cluster-issuer"] == "letsencrypt" for g in gateways)
