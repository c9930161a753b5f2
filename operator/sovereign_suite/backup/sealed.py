"""The generated Secrets of a backup, read by the operator itself (``restoreFrom``): the sealed archive
(``secrets.tar.age``) fetched from the country's bucket, checked against the backup's manifest, decrypted with the
country's age identity (agefile.py) and parsed, all in memory. The operator creates the Secrets from it before its
secrets step would generate them (reconcile/restore_secrets.py): nothing is regenerated, and the databases start
with their restored passwords.

The same refusals as the restore program (restore.py): no such backup, an incomplete one, an object whose SHA-256
differs from the manifest, an identity the archive was not sealed to, an entry the program never writes.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from .agefile import AgeError, decrypt
from .program import MANIFEST
from .restore import RestoreError, read_checked, resolve
from .s3 import Client, S3Error

SEALED = "secrets.tar.age"


def read_manifest(s3: Client, prefix: str, wanted: str) -> tuple[str, dict[str, Any]]:
    """(the backup id ``wanted`` resolves to, its manifest). Raises RestoreError."""
    bid = resolve(s3, prefix, wanted)
    try:
        return bid, json.loads(s3.get(f"{prefix}{bid}/{MANIFEST}"))
    except (S3Error, ValueError) as err:
        raise RestoreError(f"backup {bid}: its manifest cannot be read ({err})") from None


def parse_archive(plain: bytes) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        for member in tar.getmembers():
            secret, _, key = member.name.partition("/")
            if not member.isfile() or not secret or not key or "/" in key or ".." in member.name:
                raise RestoreError(f"unexpected entry {member.name!r} in the Secrets archive")
            out.setdefault(secret, {})[key] = tar.extractfile(member).read()  # type: ignore[union-attr]
    return out


def fetch_secrets(s3: Client, prefix: str, wanted: str, identity: str | None
                  ) -> tuple[str, dict[str, dict[str, bytes]]]:
    """(backup id, secret name -> key -> value) of the backup ``wanted`` (an id or "latest"). A backup without
    a Secrets archive gives no Secrets. Raises RestoreError."""
    bid, manifest = read_manifest(s3, prefix, wanted)
    entry = next((o for o in manifest.get("objects", []) if o.get("key") == SEALED), None)
    if entry is None:
        return bid, {}
    if identity is None:
        raise RestoreError(f"backup {bid} holds the Secrets and no identity was given to decrypt them")
    data = read_checked(s3, prefix, bid, entry)
    try:
        plain = decrypt(data, identity)
    except AgeError as err:
        raise RestoreError(f"backup {bid}: the Secrets archive cannot be decrypted with this identity ({err})"
                           ) from None
    try:
        return bid, parse_archive(plain)
    except tarfile.TarError as err:
        raise RestoreError(f"backup {bid}: the Secrets archive is not a tar ({err})") from None
