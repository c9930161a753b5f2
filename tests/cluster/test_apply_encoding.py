"""What a user writes reaches the API server unchanged through the operator's apply (reconcile/kube.py): the
API server parses an apply body as YAML, whose reader refuses DEL, the C1 controls, U+FFFE and U+FFFF raw, and
reads NEL, U+2028 and U+2029 as line breaks. Annotation values (components' ingressAnnotations) may hold any
string, so every such character is sent, and must come back, as itself."""

from __future__ import annotations

import pytest

from sovereign_suite.reconcile.kube import ApiError

from .test_render_dryrun import FIELD_MANAGER

VALUES = {
    "example.eu/c1": "a\x91b\x80\x9f",
    "example.eu/del": "a\x7fb",
    "example.eu/breaks": "a\x85b\u2028c\u2029d\ne",
    "example.eu/bom": "\ufeffa",
    "example.eu/astral": "\U0001F600 \U000ffecc",
    "example.eu/quotes": "'\"\\\\\x91",
    "example.eu/yaml": "--- {a: [b]} # c\n...",
}


def ingress(namespace: str, notes: dict[str, str]) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "encoding", "namespace": namespace, "annotations": notes},
            "spec": {"ingressClassName": "nginx",
                     "defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}}


def apply_dry_run(kube, obj: dict) -> dict:
    return kube.request("PATCH", f"/apis/networking.k8s.io/v1/namespaces/{obj['metadata']['namespace']}/ingresses/"
                        f"{obj['metadata']['name']}", body=obj, content_type="application/apply-patch+yaml",
                        query={"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All",
                               "fieldValidation": "Strict"})


def test_every_character_comes_back_unchanged(kube, namespace):
    stored = apply_dry_run(kube, ingress(namespace, VALUES))
    assert stored["metadata"]["annotations"] == VALUES


@pytest.mark.parametrize("char", ["\x91", "\x7f", "\uffff"])
def test_without_the_escapes_the_api_server_refuses_them(kube, namespace, char):
    """The control: the same body as raw UTF-8 JSON (what was sent before) is refused, so the test above can fail."""
    import json

    obj = ingress(namespace, {"example.eu/x": f"a{char}b"})
    with pytest.raises(ApiError) as err:
        kube.request("PATCH", f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses/encoding",
                     body=json.dumps(obj, ensure_ascii=False).encode(), content_type="application/apply-patch+yaml",
                     query={"fieldManager": FIELD_MANAGER, "force": "true", "dryRun": "All"})
    assert "control characters are not allowed" in str(err.value)
