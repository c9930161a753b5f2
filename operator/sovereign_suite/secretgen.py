"""Values for the Secrets renderers declare (``SecretSpec``). Used by the operator (once per key, never
regenerating a stored value) and by ``sovereign-suite render --generate-secrets``. Never logs a value."""

from __future__ import annotations

import base64
import secrets as _random
import string
from typing import Any

from . import tlsgen
from .components.base import SecretKey, SecretSpec
from .tlsgen import TLS_GENERATORS

PLACEHOLDER = "GENERATED-BY-OPERATOR"
_ALNUM = string.ascii_letters + string.digits


def generate(key: SecretKey) -> str:
    """One value of a key that stands alone (the TLS keys come in pairs: tlsgen.fill)."""
    if key.generator == "synapse-signing-key":
        # Synapse's signing key file: "<algorithm> <version> <unpadded base64 of the 32-byte ed25519 seed>".
        version = "a_" + "".join(_random.choice(_ALNUM) for _ in range(4))
        seed = base64.b64encode(_random.token_bytes(32)).decode().rstrip("=")
        return f"ed25519 {version} {seed}\n"
    return "".join(_random.choice(_ALNUM) for _ in range(key.length))


def missing_keys(spec: SecretSpec, existing: dict[str, str] | None) -> dict[str, str]:
    """Values for the keys the stored Secret lacks (all keys when it does not exist). ``existing``: the stored
    Secret's decoded values (the TLS keys need the stored CA to sign a new server's certificate). Raises
    tlsgen.TlsStateError when a stored CA or certificate lacks its other half."""
    have = existing or {}
    out = {k: generate(v) for k, v in sorted(spec.keys.items())
           if k not in have and v.generator not in TLS_GENERATORS}
    out.update(tlsgen.fill(spec.keys, have, spec.name))
    return dict(sorted(out.items()))


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
