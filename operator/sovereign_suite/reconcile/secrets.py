"""Secrets: generated ones (created once, missing keys filled in, never regenerated, never logged), copies
of the Secrets the suite references (api/secret_refs.py says which; they live in the suite's namespace and pods
read only their own namespace's), and the pod-template hash that rolls pods when a copied Secret changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from ..components.base import LABEL_COMPONENT, LABEL_SUITE, LABEL_SUITE_NS, SecretSpec
from ..secretgen import missing_keys
from .kube import ApiError, Kube
from .problems import SuiteKey

LABEL_GENERATED = "sovereignsuite.io/generated"
LABEL_COPY = "sovereignsuite.io/copied-from"


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


def _missing(spec: SecretSpec, live: dict[str, Any] | None) -> dict[str, str]:
    """The base64 values of the keys the stored Secret lacks. The stored values are passed decoded: a new server's
    certificate is signed with the CA the Secret already holds (tlsgen.fill)."""
    stored = {k: base64.b64decode(v).decode(errors="replace") for k, v in ((live or {}).get("data") or {}).items()}
    return {k: base64.b64encode(v.encode()).decode() for k, v in missing_keys(spec, stored).items()}


def ensure_generated(kube: Kube, spec: SecretSpec, live: dict[str, Any] | None, suite: SuiteKey
                     ) -> dict[str, Any] | None:
    """Create the Secret or add the keys it lacks. Returns the written Secret, None when nothing was written.
    Values never leave this function except to the API server. A Secret of that name that exists but is not
    labelled as this suite's is never adopted (409 Conflict)."""
    encoded = _missing(spec, live)
    if not encoded:
        return None
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
            live = kube.get("v1", "Secret", spec.name, spec.namespace) or {"metadata": {}}
            theirs = live["metadata"].get("labels") or {}
            if (theirs.get(LABEL_SUITE_NS), theirs.get(LABEL_SUITE)) != (suite.namespace, suite.name):
                raise ApiError(409, "Conflict", "a Secret of this name exists and is not labelled as this "
                               "suite's: the operator does not adopt it", f"Secret/{spec.namespace}/{spec.name}")
            encoded = _missing(spec, live)  # again: a new server certificate must be signed by the stored CA
            if not encoded:
                return None
    # Only the missing keys, guarded by resourceVersion: a concurrent writer makes this fail, never overwrite.
    return kube.merge_patch("v1", "Secret", spec.name, spec.namespace, {
        "metadata": {"resourceVersion": live["metadata"]["resourceVersion"], "labels": labels},
        "data": encoded,
    })


ANN_SECRETS_HASH = "sovereignsuite.io/secrets-hash"


def secret_names_used(pod_spec: dict[str, Any]) -> set[str]:
    """Names of the Secrets a pod template reads (env, envFrom, volumes, projected volumes)."""
    names: set[str] = set()
    for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
        for e in c.get("env") or []:
            ref = ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                names.add(ref)
        for e in c.get("envFrom") or []:
            ref = (e.get("secretRef") or {}).get("name")
            if ref:
                names.add(ref)
    for v in pod_spec.get("volumes") or []:
        if (v.get("secret") or {}).get("secretName"):
            names.add(v["secret"]["secretName"])
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("secret") or {}).get("name"):
                names.add(src["secret"]["name"])
    return names


def rotation_digest(key: bytes, data: list[list[Any]]) -> str:
    """HMAC-SHA256 of the Secrets' data under the operator's key (reconcile/rotation_key.py), 64 bits of it: the
    annotation changes when the data does, and tells whoever reads it nothing they could test a guess against."""
    return hmac.new(key, json.dumps(data, sort_keys=True).encode(), hashlib.sha256).hexdigest()[:16]


def roll_on_rotation(manifests: list[dict[str, Any]], copies: list[dict[str, Any]], key: bytes
                     ) -> list[dict[str, Any]]:
    """Deployments and StatefulSets reading a copied (referenced) Secret get a pod-template annotation keyed on
    that Secret's data (``rotation_digest``): a rotated OIDC, S3 or database password rolls the pods that read it
    from env. Generated Secrets never change, so they need none."""
    by_ns: dict[tuple[str, str], dict[str, Any]] = {
        (c["metadata"]["namespace"], c["metadata"]["name"]): c.get("data") or {} for c in copies}
    if not by_ns:
        return manifests
    out = []
    for obj in manifests:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            out.append(obj)
            continue
        ns = obj["metadata"]["namespace"]
        template = obj["spec"]["template"]
        used = sorted(n for n in secret_names_used(template.get("spec") or {}) if (ns, n) in by_ns)
        if not used:
            out.append(obj)
            continue
        digest = rotation_digest(key, [[n, by_ns[(ns, n)]] for n in used])
        meta = dict(template.get("metadata") or {})
        meta["annotations"] = {**(meta.get("annotations") or {}), ANN_SECRETS_HASH: digest}
        out.append({**obj, "spec": {**obj["spec"], "template": {**template, "metadata": meta}}})
    return out
