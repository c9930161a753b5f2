"""The restore Job of a tenant created from a backup (``backups.restoreFrom``; the operator decides when,
reconcile/restore.py): it runs the restore program (backup/restore.py) on the backup ``id``, in the backup image,
into the tenant's EMPTY embedded databases and its EMPTY media volume. The generated Secrets are not its to
restore: the operator created them from the backup before anything else (reconcile/restore_secrets.py), so the
databases start with their restored passwords and the Job mounts them as the backup CronJob does.

Pure: (context, backup id) -> the ConfigMap, the Job and the NetworkPolicy letting its pod reach the databases.
Applied in the ``jobs`` phase (after the databases); every application waits until it has succeeded.

- ``backoffLimit: 0``: never retried by Kubernetes. A second attempt after a partial write would find a
  non-empty database and refuse; a failure is reported (RestoreFailed) and a person decides.
- no API access (no ServiceAccount token), like the backup pod: it reads the bucket and writes the volumes only.
- its pod is named ``backup`` (app.kubernetes.io/name), so the backup pod's egress applies (the object storage,
  DNS; kept out of the namespace-wide rule) and the databases admit it; it carries ``sovereignsuite.io/restore``,
  not ``sovereignsuite.io/backup`` (the backup status reads those pods' termination messages as backups).
"""

from __future__ import annotations

import json
from typing import Any

from .. import tls
from ..base import RenderContext, container_security, pod_security
from ..postgres import object_name as db_object_name
from . import database_policy as backup_database_policy
from . import (COMPONENT, MEDIA_ROOT, MOUNT, NAME as BACKUP_POD, RESOURCES, S3_DIR, SECRETS_ROOT, SYNAPSE_UID, TLS_DIR,
               WORK, config as backup_config, embedded_databases, media_included)

CONFIG = "restore-config"
LABEL_RESTORE = "sovereignsuite.io/restore"  # the backup id the Job restores
PROGRAM = ["python3", "-m", "sovereign_suite.backup.restore", f"{MOUNT}/config/config.json"]
ACTIVE_DEADLINE = 12 * 3600  # the database dumps of a large tenant take hours to restore
WAIT_FOR_DATABASES = 1800  # the embedded databases start with the Job (their first start, initdb included)


def job_name(backup_id: str) -> str:
    """``restore-<id>``: a new backup id is a new Job (a Job's template is immutable)."""
    return f"restore-{backup_id.lower()}"


def config(ctx: RenderContext) -> dict[str, Any]:
    """The backup's own configuration (the same prefix, storage, databases, media), without what only a backup
    needs (the Secrets to seal, retention), and with the wait for the databases."""
    cfg = backup_config(ctx)
    cfg.pop("secrets", None)
    cfg.pop("retentionDays", None)
    cfg["waitSeconds"] = WAIT_FOR_DATABASES
    for db in cfg["databases"]:
        db.pop("excludeTableData", None)
    for spec in cfg["directories"]:
        spec["path"] = MEDIA_ROOT
    return cfg


def job(ctx: RenderContext, backup_id: str) -> dict[str, Any]:
    storage = ctx.object_storage
    assert storage is not None  # validation: restoreFrom needs the backups' object storage
    name = job_name(backup_id)
    labels = {**ctx.labels(COMPONENT, "restore"), LABEL_RESTORE: backup_id}
    pod_labels = {**ctx.selector(COMPONENT, BACKUP_POD), LABEL_RESTORE: backup_id}
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG}},
        {"name": "s3", "secret": {"secretName": storage.credentials_secret_ref, "defaultMode": 0o440,
                                  "items": [{"key": k, "path": k} for k in
                                            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]}},
        {"name": "work", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": f"{MOUNT}/config", "readOnly": True},
        {"name": "s3", "mountPath": S3_DIR, "readOnly": True},
        {"name": "work", "mountPath": WORK},
    ]
    dbs = embedded_databases(ctx)
    if dbs:
        volumes.append(tls.ca_volume("tls-ca"))
        mounts.append({"name": "tls-ca", "mountPath": TLS_DIR, "readOnly": True})
    for i, secret in enumerate(sorted(db_object_name(c) for c, _ in dbs)):
        volumes.append({"name": f"secret-{i}", "secret": {"secretName": secret, "defaultMode": 0o440}})
        mounts.append({"name": f"secret-{i}", "mountPath": f"{SECRETS_ROOT}/{secret}", "readOnly": True})
    if media_included(ctx):  # Synapse is not running yet: the ReadWriteOnce volume is the Job's alone
        volumes.append({"name": "media", "persistentVolumeClaim": {"claimName": "synapse-media"}})
        mounts.append({"name": "media", "mountPath": MEDIA_ROOT})
    container = {
        "name": "restore",
        "image": ctx.backups.image,
        "command": PROGRAM + [backup_id, "-", f"{WORK}/out"],
        "env": [{"name": "HOME", "value": WORK}],
        "resources": RESOURCES,
        "volumeMounts": mounts,
        # the program writes {"id"} on success, its refusal on failure: the operator's RestoreFailed message
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": container_security(read_only_root=True),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ACTIVE_DEADLINE,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {**pod_security(SYNAPSE_UID), "fsGroupChangePolicy": "OnRootMismatch"},
                    "affinity": ctx.region_affinity(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def database_policy(ctx: RenderContext) -> list[dict[str, Any]]:
    return backup_database_policy(ctx, "allow-egress-restore-databases", "restore",
                                  {"matchExpressions": [{"key": LABEL_RESTORE, "operator": "Exists"}]})


def render(ctx: RenderContext, backup_id: str) -> list[dict[str, Any]]:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG, "namespace": ctx.namespace, "labels": ctx.labels(COMPONENT, "restore")},
        "data": {"config.json": json.dumps(config(ctx), indent=1, sort_keys=True)},
    }
    return [cm, *database_policy(ctx), job(ctx, backup_id)]
