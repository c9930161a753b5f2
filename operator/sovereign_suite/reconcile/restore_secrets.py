"""The operator's side of a restore (reconcile/restore.py): it resolves the backup (``latest`` -> an id) in the
country's bucket and re-creates the tenant's generated Secrets from the backup's sealed archive, before its
secrets step would generate them. The Job restores the databases and the media after that, with those Secrets.

The bucket's credentials (``objectStorage.credentialsSecretRef``) and the country's age identity
(``restoreFrom.identitySecretRef``) are read from the suite's namespace, where their owner labelled them
referenceable (api/secret_refs.py); the identity is never copied anywhere. Values are held in memory for this
pass only, never logged. A restored Secret is labelled as a generated one (the operator then owns it, fills a key
a newer version adds, never regenerates one) and annotated with the backup id it came from.
"""

from __future__ import annotations

import base64
from typing import Any

from ..api.backups import Backups, ObjectStorage
from ..api.secret_refs import OPT_IN_LABEL
from ..components.base import LABEL_COMPONENT, SecretSpec
from .kube import ApiError
from .problems import ObjectKey, Problem, from_api_error, stalled
from .restore import ANN_RESTORED_FROM
from .secrets import LABEL_GENERATED


def secret_value(read: Any, namespace: str, name: str, key: str, what: str) -> str | Problem:
    """One key of a referenceable Secret of the suite's namespace (``read(namespace, name)``)."""
    obj = read(namespace, name)
    where = ObjectKey("", "Secret", namespace, name)
    if obj is None:
        return stalled("MissingSecret", f"{what}: Secret {name} not found in {namespace}", where)
    if (obj["metadata"].get("labels") or {}).get(OPT_IN_LABEL) != "true":
        return stalled("SecretNotReferenceable", f"{what}: Secret {name} is not labelled {OPT_IN_LABEL}=true",
                       where)
    value = (obj.get("data") or {}).get(key)
    if value is None:
        return stalled("MissingSecret", f"{what}: Secret {name} has no key {key}", where)
    return base64.b64decode(value).decode()


def fetch(read: Any, suite_ns: str, backups: Backups, storage: ObjectStorage, prefix: str, wanted: str,
          connect: Any = None) -> tuple[str, dict[str, dict[str, bytes]]] | Problem:
    """(the backup id, its Secrets) of ``wanted`` under ``prefix``, or the Problem saying why not:
    RestoreSourceMissing (no such backup, an incomplete one), RestoreSecretsRefused (corrupt, another country's
    identity), or the missing reference. ``connect``: makes the S3 client (tests)."""
    access = secret_value(read, suite_ns, storage.credentials_secret_ref, "AWS_ACCESS_KEY_ID",
                           "objectStorage.credentialsSecretRef")
    secret = secret_value(read, suite_ns, storage.credentials_secret_ref, "AWS_SECRET_ACCESS_KEY",
                           "objectStorage.credentialsSecretRef")
    for v in (access, secret):
        if isinstance(v, Problem):
            return v
    # the backup program's S3 client and archive reader are imported only by a restore: the operator otherwise
    # never runs them (bench/memory_breakdown.py: with them, every replica held about 1 MiB more from its start)
    from ..backup.restore import RestoreError
    from ..backup.s3 import Client, Credentials, S3Error
    from ..backup.sealed import fetch_secrets

    identity = None
    ref = backups.restore_from.identity_secret_ref if backups.restore_from else None
    if ref is not None:
        identity = secret_value(read, suite_ns, ref.name, ref.key, "restoreFrom.identitySecretRef")
        if isinstance(identity, Problem):
            return identity
    client = (connect or Client)(storage.endpoint.rstrip("/"), storage.bucket, storage.region or "us-east-1",
                                 Credentials(str(access), str(secret)))
    try:
        return fetch_secrets(client, prefix, wanted, identity)
    except RestoreError as err:
        text = str(err)
        reason = ("RestoreSourceMissing" if any(w in text for w in ("not found", "incomplete", "no complete",
                                                                    "not a backup id")) else "RestoreSecretsRefused")
        return stalled(reason, f"restoreFrom {wanted!r}: {text}; nothing was restored nor generated, the "
                               "applications stay stopped")
    except (S3Error, OSError) as err:
        return stalled("RestoreSourceMissing", f"restoreFrom {wanted!r}: the object storage {storage.endpoint} "
                                               f"bucket {storage.bucket} cannot be read ({err})")


def create_restored(kube: Any, specs: list[SecretSpec], values: dict[str, dict[str, bytes]], backup_id: str,
                    live: dict[ObjectKey, dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Create each rendered generated Secret the backup holds and the namespace lacks. Returns what was written
    and the problems (a Secret that could not be created: its spec must not be generated either)."""
    written, problems = [], []
    for spec in specs:
        key = ObjectKey("", "Secret", spec.namespace, spec.name)
        if spec.name not in values or key in live:
            continue
        body = {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": spec.name, "namespace": spec.namespace,
                         "labels": {**spec.labels, LABEL_GENERATED: "true", LABEL_COMPONENT: spec.component},
                         "annotations": {ANN_RESTORED_FROM: backup_id}},
            "data": {k: base64.b64encode(v).decode() for k, v in sorted(values[spec.name].items())},
        }
        try:
            written.append(kube.create(body))
        except ApiError as err:
            if err.status == 409:  # created meanwhile (an earlier, interrupted pass): it is there
                continue
            problems.append(from_api_error(err, key))
    return written, problems
