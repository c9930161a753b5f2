"""Backups: where a country's object storage is (NationalCloud ``spec.objectStorage``, declared once and used by
every feature that keeps data in the country's buckets), and what a suite or tenant backs up (``spec.backups``,
``spec.tenants[].backups`` overriding it field by field).

A backup goes to the ``objectStorage`` of a NationalCloud of the tenant's own country: the tenant's cloud by
default, or another of the same country (``backups.cloud``); another country's is refused at validation.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, Field

from . import cron
from .common import Model, ObjectName, SecretKeyRef
from .fieldtypes import Endpoint, ImageRef
from .image_pins import pinned

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$"  # S3 bucket naming rules (lower case, 3-63)
REGION_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# The image the backup CronJob runs: Debian's PostgreSQL client (pg_dump of the pinned major, 17), age and
# Python with the backup program (sovereign_suite/backup). Built from this repository's Dockerfile.backup.
BACKUP_IMAGE = pinned("backup")

CronSchedule = Annotated[
    str,
    AfterValidator(cron.check),
    Field(min_length=9, max_length=cron.MAX_LENGTH, json_schema_extra={"pattern": r"^[0-9a-zA-Z*/,-]+( [0-9a-zA-Z*/,-]+){4}$"}),
]


class ObjectStorage(Model):
    """The country's S3-compatible object storage in this cloud. Declared once: backups use it (and later
    features that keep data in the country's buckets)."""

    endpoint: Endpoint = Field(description="S3 endpoint: http(s)://<host>[:<port>], no credentials, no path.")
    region: str | None = Field(None, max_length=63, pattern=REGION_PATTERN,
                               description="The bucket's region (signing region); absent: us-east-1.")
    bucket: str = Field(min_length=3, max_length=63, pattern=BUCKET_PATTERN)
    credentials_secret_ref: ObjectName = Field(
        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in the namespace of each suite "
        "that uses this storage and labelled sovereignsuite.io/referenceable=true (copied into the tenant "
        "namespaces like every referenced Secret).",
    )


class BackupContent(Model):
    databases: bool = Field(True, description="The embedded PostgreSQL databases (pg_dump -Fc), or CloudNativePG's "
                            "base backups and WAL archive (Barman Cloud plugin).")
    media: bool = Field(True, description="Synapse's media store: local_content and local_thumbnails.")
    secrets: bool = Field(True, description="The generated Secrets (database passwords, Synapse's signing key, "
                          "Docs' and the LLM gateway's keys), age-encrypted to encryptionRecipientSecretRef.")


# A backup's id as the backup program writes it (backup/program.py ID_FORMAT): the UTC start time.
BACKUP_ID_PATTERN = r"^([0-9]{8}T[0-9]{6}Z|latest)$"


# A point in time as CloudNativePG takes it (recoveryTarget.targetTime, "a timestamp in the RFC3339 standard":
# cloudnative-pg api/v1/cluster_types.go, RecoveryTarget, v1.27.1): UTC only, to the second, so that the same
# string means the same instant to the operator, to CloudNativePG and to whoever reads the suite.
POINT_IN_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
POINT_IN_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
BACKUP_ID_FORMAT = "%Y%m%dT%H%M%SZ"  # backup/program.py ID_FORMAT
# a Barman server name: the folder of one cluster's base backups and WAL under <prefix>cnpg/ in the bucket
SERVER_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _real_instant(value: str) -> str:
    """Exactly the pattern (strptime alone admits 2026-12-3T1:2:3Z), and an instant that exists (the pattern
    admits 2026-02-30T25:00:00Z)."""
    if not re.fullmatch(POINT_IN_TIME_PATTERN, value):
        raise ValueError(f"{value!r} is not an RFC 3339 UTC time to the second, e.g. 2026-12-03T14:30:00Z")
    datetime.strptime(value, POINT_IN_TIME_FORMAT)  # ValueError -> a validation error naming the field
    return value


def backup_id_time(backup_id: str) -> datetime:
    """The UTC instant a backup id names (its run's start time)."""
    return datetime.strptime(backup_id, BACKUP_ID_FORMAT).replace(tzinfo=timezone.utc)


def point_in_time(value: str) -> datetime:
    return datetime.strptime(value, POINT_IN_TIME_FORMAT).replace(tzinfo=timezone.utc)


# the pattern in the CRD too (json_schema_extra: a Field pattern beside an AfterValidator does not reach it)
PointInTime = Annotated[str, AfterValidator(_real_instant),
                        Field(min_length=20, max_length=20, json_schema_extra={"pattern": POINT_IN_TIME_PATTERN})]
ServerName = Annotated[str, Field(min_length=1, max_length=63, pattern=SERVER_NAME_PATTERN)]


class DatabaseServerNames(Model):
    """The Barman server name each cloudnative-pg database's backups were archived under."""

    matrix: ServerName | None = Field(None, description="Synapse's database; default matrix-postgres.")
    docs: ServerName | None = Field(None, description="Docs' database; default docs-postgres.")


class RestoreFrom(Model):
    """Create the tenant FROM a backup in its country's object storage (where ``backups`` point): the generated
    Secrets, the databases and the media are restored before any application starts, once; a tenant that already
    holds data is never restored over."""

    backup: str = Field("latest", pattern=BACKUP_ID_PATTERN, max_length=16,
                        description="The backup id (its UTC start time, e.g. 20261203T020000Z) or \"latest\": the "
                        "newest complete backup when the restore starts.")
    identity_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret and key holding the country's age identity (AGE-SECRET-KEY-1..., the private half "
        "of encryptionRecipientSecretRef), labelled sovereignsuite.io/referenceable=true; required when "
        "include.secrets is true. Read by the operator only (never copied into the tenant namespace); remove "
        "restoreFrom and this Secret once the tenant is restored (status.tenants[].restore keeps the record).",
    )
    point_in_time: PointInTime | None = Field(
        None, description="CloudNativePG databases only: recover them to this instant (RFC 3339, UTC, e.g. "
        "2026-12-03T14:30:00Z) from their base backups and WAL archive. Absent: to the backup's id time when "
        "backup names an id, to the end of the WAL archive when it is \"latest\". The media and Secrets come from "
        "backup: name the newest backup at or before this instant. Refused for an embedded database (a pg_dump "
        "has no point in time).",
    )
    server_names: DatabaseServerNames | None = Field(
        None, description="CloudNativePG databases only: the Barman server name their backups are under "
        "(<prefix>cnpg/<serverName>/ in the bucket). Default: the Cluster's name (<component>-postgres), the "
        "name of a cluster never restored; a cluster created by a restore archives under "
        "<component>-postgres-<backup id>, so restoring it again needs that name here.",
    )


class Backups(Model):
    """What a tenant backs up, how often and for how long."""

    enabled: bool = False
    cloud: ObjectName | None = Field(
        None, description="The NationalCloud whose spec.objectStorage receives the backups; default: the tenant's "
        "own cloud. It must be in the tenant's country.",
    )
    schedule: CronSchedule = Field(
        "0 2 * * *", description="When to back up: five cron fields (minute hour day-of-month month day-of-week), "
        "in the controller manager's time zone; no macros, no TZ= prefix.",
    )
    retention_days: int = Field(
        14, ge=1, le=3650, description="Backups older than this many days are deleted (the newest complete one is "
        "always kept).",
    )
    include: BackupContent = Field(default_factory=BackupContent)
    encryption_recipient_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret and key holding the country's age recipient (age1..., the public half of an "
        "X25519 identity the country keeps offline); required when include.secrets. The Secrets archive is "
        "encrypted to it: without the identity it cannot be read.",
    )
    image: ImageRef = Field(BACKUP_IMAGE, description="The backup job's image (PostgreSQL client, age, the program).")
    restore_from: RestoreFrom | None = Field(
        None, description="Create the tenant from a backup of this storage (restored once, before any application "
        "starts; status.tenants[].restore records it). Set on the suite, every tenant is restored from its own "
        "country's backups.",
    )
