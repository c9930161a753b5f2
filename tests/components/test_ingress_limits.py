"""Body sizes and timeouts on the Ingresses (issue 14): ingress-nginx's defaults (1m body, 60 s read) cut
Docs uploads, Synapse media and LLM image payloads."""

from __future__ import annotations

from sovereign_suite.api.models import NationalCloud
from sovereign_suite.components import docs, llm, matrix
from sovereign_suite.components.base import build_contexts

from ..helpers import load_example, suite_with

NGINX = "nginx.ingress.kubernetes.io/"


def fr(patch: dict | None = None, controller: str | None = None):
    suite, clouds = load_example("four-countries")
    if patch:
        suite = suite_with("four-countries", patch)
    if controller:
        doc = clouds["fr-secnumcloud"].model_dump(by_alias=True)
        doc["spec"]["ingressController"] = controller
        clouds = {**clouds, "fr-secnumcloud": NationalCloud.model_validate(doc)}
    return build_contexts(suite, clouds)[0]


def ingress(objs: list[dict], name: str) -> dict:
    (obj,) = [o for o in objs if o["kind"] == "Ingress" and o["metadata"]["name"] == name]
    return obj


def test_docs_accepts_20m_like_its_own_chart_and_keeps_the_websocket_open() -> None:
    # suitenumerique/docs src/helm/env.d/dev/values.impress.yaml.gotmpl (v5.4.1): proxy-body-size 20m (10m at
    # v3.8.2); its WebSocket Ingress has proxy-read-timeout 86400 (src/helm/impress/values.yaml, v5.4.1).
    notes = ingress(docs.render(fr()), "docs")["metadata"]["annotations"]
    assert notes[NGINX + "proxy-body-size"] == "20m"
    assert int(notes[NGINX + "proxy-read-timeout"]) >= 3600


def test_docs_admin_routes_static_to_the_backend() -> None:
    # suitenumerique/docs src/helm/impress/templates/ingress_admin.yaml (v5.4.1): path /static -> backend, on the
    # admin Ingress only (tests/components/test_docs_admin.py: not rendered by default).
    admin = {"components": {"docs": {"admin": {"enabled": True, "sourceRanges": ["192.0.2.0/24"]}}}}
    paths = ingress(docs.render(fr(admin)), "docs-admin")["spec"]["rules"][0]["http"]["paths"]
    (static,) = [p for p in paths if p["path"] == "/static"]
    assert static["backend"]["service"]["name"] == "docs-backend"


def test_synapse_body_size_follows_max_upload_size() -> None:
    notes = ingress(matrix.render(fr({"components": {"matrix": {"maxUploadSize": "200M"}}})),
                    "synapse")["metadata"]["annotations"]
    assert notes[NGINX + "proxy-body-size"] == "200m"
    assert notes[NGINX + "proxy-read-timeout"] == "300"


def test_gateway_body_size_and_timeout_are_settings() -> None:
    default = ingress(llm.render(fr()), "llm-gateway")["metadata"]["annotations"]
    assert default[NGINX + "proxy-body-size"] == "32m"
    assert default[NGINX + "proxy-read-timeout"] == "600"
    patched = fr({"components": {"llm": {"gateway": {"maxBodySize": "100m", "timeoutSeconds": 1200}}}})
    notes = ingress(llm.render(patched), "llm-gateway")["metadata"]["annotations"]
    assert (notes[NGINX + "proxy-body-size"], notes[NGINX + "proxy-send-timeout"]) == ("100m", "1200")


def test_other_controllers_get_no_nginx_annotations() -> None:
    ctx = fr(controller="other")
    for objs, name in ((docs.render(ctx), "docs"), (matrix.render(ctx), "synapse"), (llm.render(ctx), "llm-gateway")):
        assert "annotations" not in ingress(objs, name)["metadata"], name
