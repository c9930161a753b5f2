"""Values for the Secrets renderers declare (``SecretSpec``). Used by the operator (once per key, never
regenerating a stored value) and by ``sovereign-suite render --generate-secrets``. Never logs a value."""

from __future__ import annotations

import base64
import secrets as _random
import string
from typing import Any

from .components.base import SecretKey, SecretSpec

PLACEHOLDER = "GENERATED-BY-OPERATOR"
_ALNUM = string.ascii_letters + string.digits


def generate(key: SecretKey) -> str:
    if key.generator == "synapse-signing-key":
        # Synapse's signing key file: "<algorithm> <version> <unpadded base64 of the 32-byte ed25519 seed>".
        version = "a_" + "".join(_random.choice(_ALNUM) for _ in range(4))
        seed = base64.b64encode(_random.token_bytes(32)).decode().rstrip("=")
        return f"ed25519 {version} {seed}\n"
    return "".join(_random.choice(_ALNUM) for _ in range(key.length))


def missing_keys(spec: SecretSpec, existing: dict[str, str] | None) -> dict[str, str]:
    """Values for the keys the stored Secret lacks (all keys when it does not exist)."""
    have = existing or {}
    return {k: generate(v) for k, v in sorted(spec.keys.items()) if k not in have}


def secret_manifest(spec: SecretSpec, values: dict[str, str] | None = None) -> dict[str, Any]:
    """A Secret for ``spec``. Without ``values`` every key holds a placeholder (offline render)."""
    data = {k: (values or {}).get(k, PLACEHOLDER) for k in sorted(spec.keys)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": dict(spec.labels)},
        "type": "Opaque",
        "stringData": data,
    }
