"""Secrets: generated ones (created once, missing keys filled in, never regenerated, never logged) and copies
of the Secrets the suite references (they live in the suite's namespace; pods read only their own namespace's).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..api.models import SovereignSuite
from ..components.base import LABEL_COMPONENT, RenderContext, SecretSpec
from ..secretgen import missing_keys
from .kube import ApiError, Kube

LABEL_GENERATED = "sovereignsuite.io/generated"
LABEL_COPY = "sovereignsuite.io/copied-from"


@dataclass(frozen=True)
class SecretRef:
    name: str
    path: str  # the spec field that references it, for messages
    component: str


def referenced_secrets(suite: SovereignSuite, ctx: RenderContext) -> list[SecretRef]:
    """Secrets in the suite's namespace that the tenant's enabled components read."""
    refs: list[SecretRef] = []
    comps = ctx.components
    oidc = suite.spec.identity.oidc
    if oidc and comps.docs.enabled:
        refs.append(SecretRef(oidc.client_secret_ref.name, "spec.identity.oidc.clientSecretRef", "docs"))
    if comps.docs.enabled and comps.docs.s3:
        refs.append(SecretRef(comps.docs.s3.credentials_secret_ref, "components.docs.s3.credentialsSecretRef", "docs"))
    if comps.llm.enabled and comps.llm.hugging_face_token_secret_ref:
        refs.append(SecretRef(comps.llm.hugging_face_token_secret_ref.name,
                              "components.llm.huggingFaceTokenSecretRef", "llm"))
    for name in ("matrix", "docs"):
        comp = getattr(comps, name)
        if comp.enabled and comp.postgres.mode == "external" and comp.postgres.password_secret_ref:
            refs.append(SecretRef(comp.postgres.password_secret_ref.name,
                                  f"components.{name}.postgres.passwordSecretRef", name))
    # one copy per name, whichever component asked first
    seen: dict[str, SecretRef] = {}
    for r in refs:
        seen.setdefault(r.name, r)
    return list(seen.values())


def copy_manifest(source: dict[str, Any], namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": source["metadata"]["name"],
            "namespace": namespace,
            "labels": {**labels, LABEL_COPY: source["metadata"]["namespace"]},
        },
        "type": source.get("type", "Opaque"),
        "data": dict(source.get("data") or {}),
    }


def ensure_generated(kube: Kube, spec: SecretSpec, live: dict[str, Any] | None) -> dict[str, Any] | None:
    """Create the Secret or add the keys it lacks. Returns the written Secret, None when nothing was written.
    Values never leave this function except to the API server."""
    existing = {k: v for k, v in ((live or {}).get("data") or {}).items()}
    values = missing_keys(spec, existing)
    if not values:
        return None
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    labels = {**spec.labels, LABEL_GENERATED: "true", LABEL_COMPONENT: spec.component}
    if live is None:
        try:
            return kube.create({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels},
                "data": encoded,
            })
        except ApiError as err:
            if err.status != 409:  # created meanwhile (e.g. by a previous, interrupted run): fill keys below
                raise
            live = kube.get("v1", "Secret", spec.name, spec.namespace) or {}
            existing = live.get("data") or {}
            encoded = {k: v for k, v in encoded.items() if k not in existing}
            if not encoded:
                return None
    # Only the missing keys, guarded by resourceVersion: a concurrent writer makes this fail, never overwrite.
    return kube.merge_patch("v1", "Secret", spec.name, spec.namespace, {
        "metadata": {"resourceVersion": live["metadata"]["resourceVersion"], "labels": labels},
        "data": encoded,
    })
