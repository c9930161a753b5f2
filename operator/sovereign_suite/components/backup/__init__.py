"""A tenant's backups (``spec.backups``; rendered when enabled): a CronJob ``backup`` running the backup program
(``sovereign_suite/backup/program.py``) on the schedule, its configuration (ConfigMap ``backup-config``), and the
NetworkPolicy that lets its pod reach the embedded databases. What it backs up, to the country's object storage
(the ``objectStorage`` of a NationalCloud of the tenant's country), under ``<suite namespace>/<suite>/<country>/``:

- the **embedded** databases (``pg_dump -Fc``; Synapse's ``e2e_one_time_keys_json`` without its rows). A
  **cloudnative-pg** database is backed up by CloudNativePG itself (Barman Cloud plugin: ``ObjectStore``, WAL
  archiving from the Cluster's ``spec.plugins``, ``ScheduledBackup``; rendered by components/postgres). An
  **external** database is its owner's to back up;
- Synapse's media store: ``local_content``, and ``local_thumbnails`` unless ``dynamic_thumbnails`` is on
  (element-hq/synapse docs/usage/administration/backups.md, v1.163.2). The remote media cache is left out;
- the generated Secrets, age-encrypted to the country's recipient.

The pod's egress: DNS (every pod's), the databases it dumps (here), the object storage (tenancy/network.py,
purpose ``objectStorage``), nothing else: it is kept out of the namespace-wide same-namespace rule.
"""

from __future__ import annotations

import json
from typing import Any

from ...api.backups import Backups
from .. import tls
from ..base import RenderContext, container_security, pod_security
from ..postgres import PASSWORD_KEY, PORT as POSTGRES_PORT, object_name as db_object_name

COMPONENT = "backup"
NAME = "backup"
CONFIG = "backup-config"
SYNAPSE_UID = 991  # the media volume is Synapse's (its fsGroup): the backup reads it as the same user and group
MOUNT = "/etc/backup"
SECRETS_ROOT = "/backup/secrets"
MEDIA_ROOT = "/backup/media"
WORK = "/backup/work"  # dumps and archives before upload (disk)
SEALED_WORK = "/backup/sealed"  # the clear Secrets tar before age encrypts it: memory only
RECIPIENT_FILE = f"{MOUNT}/recipient/recipient"
S3_DIR = f"{MOUNT}/s3"
TLS_DIR = f"{MOUNT}/tls"  # the tenant's CA certificate (components/tls.py), to verify the embedded databases
# Synapse's advice: one-time keys restored and handed out again break end-to-end sessions
# (element-hq/synapse docs/usage/administration/backups.md, v1.163.2).
SYNAPSE_EXCLUDED_DATA = ("e2e_one_time_keys_json",)
PROGRAM = ["python3", "-m", "sovereign_suite.backup.program", f"{MOUNT}/config/config.json"]
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
# A run may take hours on a big database; never two at once (the CronJob forbids overlaps), at most a day.
ACTIVE_DEADLINE = 6 * 3600
LABEL_BACKUP = "sovereignsuite.io/backup"


def prefix(ctx: RenderContext) -> str:
    """Where the tenant's backups go in the bucket: unique per suite (namespace, name) and country."""
    return f"{ctx.suite.metadata.namespace or 'default'}/{ctx.suite_name}/{ctx.country}/"


def embedded_databases(ctx: RenderContext) -> list[tuple[str, Any]]:
    """(component, Postgres) of the enabled components' embedded databases, when databases are backed up."""
    if not ctx.backups.include.databases:
        return []
    c = ctx.components
    return [(name, comp.postgres) for name, comp in (("matrix", c.matrix), ("docs", c.docs))
            if comp.enabled and comp.postgres.mode == "embedded"]


def media_included(ctx: RenderContext) -> bool:
    return ctx.backups.include.media and ctx.components.matrix.enabled


def generated_secrets(ctx: RenderContext) -> list[str]:
    """The names of the Secrets the operator generates in the tenant namespace (the other renderers' own list)."""
    from .. import module  # the component modules import base, as this one does

    names: list[str] = []
    for comp in ("matrix", "jitsi", "docs", "llm"):
        mod = module(comp)
        if getattr(ctx.components, comp).enabled and hasattr(mod, "secrets"):
            names += [s.name for s in mod.secrets(ctx)]
    return sorted(set(names))


def config(ctx: RenderContext) -> dict[str, Any]:
    backups: Backups = ctx.backups
    storage = ctx.object_storage
    assert storage is not None  # validation: enabled backups have a declared object storage
    cfg: dict[str, Any] = {
        "prefix": prefix(ctx),
        "retentionDays": backups.retention_days,
        "workDir": WORK,
        "labels": {"suite": ctx.suite_name, "namespace": ctx.namespace, "country": ctx.tenant.country},
        "s3": {"endpoint": storage.endpoint, "bucket": storage.bucket, "region": storage.region or "us-east-1",
               "credentialsDir": S3_DIR},
        "databases": [],
        "directories": [],
    }
    for component, pg in embedded_databases(ctx):
        secret = db_object_name(component)
        cfg["databases"].append({
            "name": component, "host": secret, "port": POSTGRES_PORT, "database": pg.database or component,
            "user": pg.user or component, "passwordFile": f"{SECRETS_ROOT}/{secret}/{PASSWORD_KEY}",
            # the embedded servers accept TLS only (hostssl), with a certificate of the tenant's CA for this name
            "sslMode": "verify-full", "sslRootCert": f"{TLS_DIR}/{tls.CA_CERT}",
            "excludeTableData": list(SYNAPSE_EXCLUDED_DATA) if component == "matrix" else [],
        })
    if media_included(ctx):
        dynamic = bool(ctx.components.matrix.extra_config.get("dynamic_thumbnails"))
        cfg["directories"].append({"name": "matrix-media", "path": MEDIA_ROOT,
                                   "include": ["local_content"] + ([] if dynamic else ["local_thumbnails"])})
    if backups.include.secrets:
        cfg["secrets"] = {"recipientFile": RECIPIENT_FILE, "workDir": SEALED_WORK,
                          "dirs": {name: f"{SECRETS_ROOT}/{name}" for name in generated_secrets(ctx)}}
    return cfg


def _mounted_secrets(ctx: RenderContext) -> list[str]:
    """Secrets the pod mounts: every generated one when Secrets are backed up, else the databases' passwords."""
    if ctx.backups.include.secrets:
        return generated_secrets(ctx)
    return sorted(db_object_name(c) for c, _ in embedded_databases(ctx))


def cronjob(ctx: RenderContext) -> dict[str, Any]:
    backups = ctx.backups
    storage = ctx.object_storage
    assert storage is not None
    labels = {**ctx.labels(COMPONENT, NAME), LABEL_BACKUP: "true"}
    # The Jobs and pods the CronJob makes carry no managed-by or suite labels: they are the CronJob controller's,
    # never the operator's children (not watched, never pruned, never taken for a migration Job).
    run_labels = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                          "app.kubernetes.io/part-of", "app.kubernetes.io/component", LABEL_BACKUP)}
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": CONFIG}},
        {"name": "s3", "secret": {"secretName": storage.credentials_secret_ref, "defaultMode": 0o440,
                                  "items": [{"key": k, "path": k} for k in
                                            ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]}},
        {"name": "work", "emptyDir": {}},
        {"name": "sealed", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": f"{MOUNT}/config", "readOnly": True},
        {"name": "s3", "mountPath": S3_DIR, "readOnly": True},
        {"name": "work", "mountPath": WORK},
        {"name": "sealed", "mountPath": SEALED_WORK},
    ]
    if embedded_databases(ctx):
        volumes.append(tls.ca_volume("tls-ca"))
        mounts.append({"name": "tls-ca", "mountPath": TLS_DIR, "readOnly": True})
    if backups.include.secrets and backups.encryption_recipient_secret_ref is not None:
        ref = backups.encryption_recipient_secret_ref
        volumes.append({"name": "recipient", "secret": {"secretName": ref.name, "defaultMode": 0o440,
                                                        "items": [{"key": ref.key, "path": "recipient"}]}})
        mounts.append({"name": "recipient", "mountPath": f"{MOUNT}/recipient", "readOnly": True})
    for i, name in enumerate(_mounted_secrets(ctx)):
        volumes.append({"name": f"secret-{i}", "secret": {"secretName": name, "defaultMode": 0o440}})
        mounts.append({"name": f"secret-{i}", "mountPath": f"{SECRETS_ROOT}/{name}", "readOnly": True})
    affinity = ctx.region_affinity()
    if media_included(ctx):
        volumes.append({"name": "media", "persistentVolumeClaim": {"claimName": "synapse-media", "readOnly": True}})
        mounts.append({"name": "media", "mountPath": MEDIA_ROOT, "readOnly": True})
        # the media volume is ReadWriteOnce: only a pod on Synapse's node can mount it beside Synapse
        affinity = {**affinity, "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": ctx.selector("matrix", "synapse")},
             "topologyKey": "kubernetes.io/hostname"}]}}
    container = {
        "name": NAME,
        "image": backups.image,
        "command": PROGRAM,
        "env": [{"name": "HOME", "value": WORK}],
        "resources": RESOURCES,
        "volumeMounts": mounts,
        # the program writes {"id", "bytes"} there on success: how the operator learns the backup's size
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": container_security(read_only_root=True),
    }
    security = {**pod_security(SYNAPSE_UID), "fsGroupChangePolicy": "OnRootMismatch"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": NAME, "namespace": ctx.namespace, "labels": labels},
        "spec": {
            "schedule": backups.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(run_labels)},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": ACTIVE_DEADLINE,
                    "template": {
                        "metadata": {"labels": dict(run_labels)},
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": False,  # no API access: nothing to ask it
                            "securityContext": security,
                            "affinity": affinity,
                            "containers": [container],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }


def database_policy(ctx: RenderContext, name: str = "allow-egress-backup-databases", part: str = NAME,
                    pods: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Egress from the backup pods (or ``pods``: the restore Job's, restore_job.py) to the tenant's embedded
    databases only."""
    dbs = embedded_databases(ctx)
    if not dbs:
        return []
    return [{
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": ctx.labels(COMPONENT, part)},
        "spec": {
            "podSelector": pods or {"matchLabels": {LABEL_BACKUP: "true"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": db_object_name(c)}}}],
                        "ports": [{"protocol": "TCP", "port": POSTGRES_PORT}]} for c, _ in dbs],
        },
    }]


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    if not ctx.backups.enabled:
        return []
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG, "namespace": ctx.namespace, "labels": ctx.labels(COMPONENT, NAME)},
        # JSON written by json.dumps: every value reaches the file through its escaper
        "data": {"config.json": json.dumps(config(ctx), indent=1, sort_keys=True)},
    }
    return [cm, cronjob(ctx), *database_policy(ctx)]
