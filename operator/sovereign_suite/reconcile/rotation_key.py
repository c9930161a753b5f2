"""The key of the rotation annotation (``secrets-hash``, reconcile/secrets.py ``roll_on_rotation``).

Pods that read a copied (referenced) Secret carry in their template an HMAC-SHA256 of that Secret's data, so that
a rotated value rolls them. The annotation is readable by whoever reads the Deployment (the tenant admins): a plain
hash of the data would let them test guesses of a weak value (an external database password) offline. Keyed with
a random key they cannot read, the annotation only tells them *that* the data changed.

The key is generated once per suites' namespace, in the Secret ``sovereign-suite-rotation-key`` there, labelled as
the operator's: beside the referenced Secrets whose data it keys, so whoever can read it can read those Secrets
anyway (docs/security.md, "Referenced Secrets"). It is read once per namespace and kept in memory: a converged
suite costs no request; a restart reads the same key, so nothing rolls.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading

from ..components.base import MANAGED_BY
from .kube import ApiError, Kube
from .problems import ObjectKey, Problem, from_api_error, stalled

KEY_SECRET = "sovereign-suite-rotation-key"
KEY_FIELD = "key"
KEY_BYTES = 32  # RFC 2104, section 3: a key shorter than the hash's output (32 bytes for SHA-256) is discouraged
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_ROLE = "sovereignsuite.io/role"
ROLE = "rotation-key"


def key_manifest(namespace: str, key: bytes) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": KEY_SECRET, "namespace": namespace,
                         # managed-by: a suite cannot reference it (api/secret_refs.py refuses the operator's own)
                         "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ROLE: ROLE}},
            "data": {KEY_FIELD: base64.b64encode(key).decode()}}


def key_of(secret: dict, namespace: str) -> bytes | Problem:
    """The key held by the Secret, or why it cannot be used. A Secret of that name the operator did not make is
    not adopted (as for generated Secrets: reconcile/secrets.py)."""
    where = ObjectKey("", "Secret", namespace, KEY_SECRET)
    labels = secret["metadata"].get("labels") or {}
    if labels.get(LABEL_MANAGED_BY) != MANAGED_BY or labels.get(LABEL_ROLE) != ROLE:
        return stalled("Conflict", f"exists and is not the operator's rotation key (labels {LABEL_MANAGED_BY}="
                       f"{MANAGED_BY}, {LABEL_ROLE}={ROLE}): the operator does not adopt it; delete it to let the "
                       "operator generate one", where)
    try:
        key = base64.b64decode((secret.get("data") or {}).get(KEY_FIELD) or "", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < KEY_BYTES:
        return stalled("Conflict", f"key {KEY_FIELD!r} does not hold a rotation key of at least {KEY_BYTES} bytes; "
                       "delete the Secret to let the operator generate one", where)
    return key


class RotationKeys:
    """The rotation key of each suites' namespace, read (or created) on first use and kept."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._reading: dict[str, threading.Lock] = {}

    def key(self, namespace: str) -> bytes | Problem:
        with self._lock:
            if namespace in self._keys:
                return self._keys[namespace]
            lock = self._reading.setdefault(namespace, threading.Lock())
        with lock:  # two suites of one namespace create it once
            with self._lock:
                if namespace in self._keys:
                    return self._keys[namespace]
            found = self._read_or_create(namespace)
            if isinstance(found, bytes):
                with self._lock:
                    self._keys[namespace] = found
            return found

    def _read_or_create(self, namespace: str) -> bytes | Problem:
        where = ObjectKey("", "Secret", namespace, KEY_SECRET)
        try:
            secret = self.kube.get("v1", "Secret", KEY_SECRET, namespace)
            if secret is None:
                try:
                    secret = self.kube.create(key_manifest(namespace, secrets.token_bytes(KEY_BYTES)))
                except ApiError as err:
                    if err.status != 409:
                        raise
                    secret = self.kube.get("v1", "Secret", KEY_SECRET, namespace)  # another process made it
                    if secret is None:
                        return from_api_error(err, where)
        except ApiError as err:
            return from_api_error(err, where)
        return key_of(secret, namespace)
