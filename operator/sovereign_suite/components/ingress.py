"""Request-size and timeout annotations of the Ingresses, for the controller the NationalCloud names.

The Ingress API has no field for a body-size limit or a read timeout, so each controller reads its own
annotations. ingress-nginx refuses bodies over 1m and closes an upstream that is silent for 60 s by default
(ingress-nginx docs, annotations ``proxy-body-size``, ``proxy-read-timeout``, ``proxy-send-timeout``):
Docs' attachments, Synapse's media and the LLM gateway's image payloads and slow generations need more.
For ``ingressController: other`` nothing is written: the platform team sets the controller's limits
(docs/components.md says which).
"""

from __future__ import annotations

from typing import Any

from ..api.cloud_models import CertManager
from ..api.ingress_annotations import CERT_MANAGER, PROXY_BODY_SIZE, PROXY_READ_TIMEOUT, PROXY_SEND_TIMEOUT
from .base import RenderContext

# cert-manager's ingress-shim creates a Certificate for each tls entry of an Ingress that names an issuer, and
# stores it in the entry's secretName (cert-manager.io/docs/usage/ingress, "Supported Annotations"):
# cert-manager.io/cluster-issuer names a ClusterIssuer, cert-manager.io/issuer an Issuer of the Ingress's namespace
# or, with cert-manager.io/issuer-kind and cert-manager.io/issuer-group, an external issuer. cluster-issuer may not
# be combined with issuer-kind or issuer-group (cert-manager pkg/controller/certificate-shim/sync.go).
# Every key written here is refused in a component's ingressAnnotations (api/ingress_annotations.py REFUSED_KEYS;
# tests/components/test_ingress_annotations.py renders every variant and checks).

# La Suite Docs: the body size its own chart sets (suitenumerique/docs src/helm/env.d/dev/values.impress.yaml.gotmpl,
# v5.4.1: nginx.ingress.kubernetes.io/proxy-body-size: 20m; v3.8.2 had 10m). v5.4.1 accepts images up to 10 MB
# (DOCUMENT_IMAGE_MAX_SIZE, src/backend/impress/settings.py) and files to convert up to 20 MB (y-provider
# CONVERSION_FILE_MAX_SIZE, src/frontend/servers/y-provider/src/env.ts).
DOCS_BODY_SIZE = "20m"
# One Ingress carries every path of Docs, the collaboration WebSocket included, which is idle between edits
# (Docs' chart gives its WebSocket Ingress 86400 s; an hour keeps a quiet editor connected).
DOCS_TIMEOUT_SECONDS = 3600
# Synapse: the body limit is matrix.maxUploadSize; a large upload or a slow remote media fetch can be silent
# for minutes.
SYNAPSE_TIMEOUT_SECONDS = 300


def nginx_size(size: str) -> str:
    """Synapse-style sizes ("100M", "50K", "1G", "1048576") as nginx sizes ("100m", "50k", "1g", "1048576")."""
    return size.lower()


def annotations(ctx: RenderContext, component: str, body_size: str | None = None,
                timeout_seconds: int | None = None) -> dict[str, str]:
    """The annotations of ``component``'s Ingresses: the user's ``ingressAnnotations``, then, for ingress-nginx
    and a component that needs them, a body of at most ``body_size`` and an upstream silent for
    ``timeout_seconds``. The templates print the result through ``tojson``."""
    extra = dict(getattr(ctx.components, component).ingress_annotations)
    if body_size is None or ctx.cloud.spec.ingress_controller != "ingress-nginx":
        return extra
    owned = {
        PROXY_BODY_SIZE: nginx_size(body_size),
        PROXY_READ_TIMEOUT: str(timeout_seconds),
        PROXY_SEND_TIMEOUT: str(timeout_seconds),
    }
    if set(owned) & set(extra):  # validation refuses these keys; never let a user value replace one silently
        raise AssertionError(f"owned annotations in {component}.ingressAnnotations: {sorted(set(owned) & set(extra))}")
    return {**extra, **owned}


def cert_manager_annotations(cert_manager: CertManager | None) -> dict[str, str]:
    """The annotations that make cert-manager issue the Ingress's certificates; none without an issuer (the
    ``<host>-tls`` Secrets must then exist before the suite)."""
    if cert_manager is None:
        return {}
    ref = cert_manager.issuer_ref
    if ref.group is None:
        key = "cluster-issuer" if ref.kind == "ClusterIssuer" else "issuer"
        return {CERT_MANAGER + key: ref.name}
    return {CERT_MANAGER + "issuer": ref.name, CERT_MANAGER + "issuer-kind": ref.kind,
            CERT_MANAGER + "issuer-group": ref.group}


def with_certificates(ctx: RenderContext, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``objects`` with the cloud's cert-manager annotations on every Ingress. Applied to every component's output
    in one place (render.render_tenant), so no Ingress, present or future, is left with the controller's default
    certificate. Returns new Ingress dicts: the renderers' objects are not changed.

    An Ingress whose TLS Secrets an earlier Ingress of ``objects`` already names (Docs' admin Ingress, on the
    docs host) is left unannotated: ingress-shim makes one Certificate per Secret, owned by one Ingress, and
    refuses to update it for another ("certificate resource is not owned by this ingress"); sharing a Secret
    means annotating one of the Ingresses only (cert-manager/cert-manager#2585)."""
    extra = cert_manager_annotations(ctx.cloud.spec.cert_manager)
    if not extra:
        return objects
    out = []
    issued: set[str] = set()  # TLS Secrets an annotated Ingress already asks a certificate for
    for obj in objects:
        if obj.get("kind") == "Ingress":
            meta = obj["metadata"]
            if set(extra) & set(meta.get("annotations", {})):  # refused in ingressAnnotations (see above)
                raise AssertionError(f"cert-manager annotations already on Ingress {meta['name']}")
            secrets = {t.get("secretName") for t in obj["spec"].get("tls") or []}
            if secrets and secrets <= issued:
                out.append(obj)
                continue
            issued |= secrets
            obj = {**obj, "metadata": {**meta, "annotations": {**meta.get("annotations", {}), **extra}}}
        out.append(obj)
    return out
