"""The status of a SovereignSuite (written by the operator; its schema is generated into the CRD)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .common import Model


# --------------------------------------------------------------------------------------------------
# Status


class Condition(Model):
    type: Literal["Ready", "Reconciling", "Stalled", "Degraded"]
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field("", max_length=32768)
    observed_generation: int | None = None
    last_transition_time: str


class WorkerTypeStatus(Model):
    """Ready/desired replicas of one Synapse worker type (components.matrix.workers)."""

    type: str
    ready_replicas: int = 0
    desired_replicas: int = 0


class ComponentStatus(Model):
    name: str
    ready: bool
    ready_replicas: int = 0
    desired_replicas: int = 0
    reason: str = ""
    message: str = ""
    workers: list[WorkerTypeStatus] = Field(default_factory=list, description="Matrix: per Synapse worker type.")


class ModelStatus(Model):
    """Where an LLM model runs and why it does not (reconcile/gpu.py)."""

    name: str
    product: str = Field("", description="GPU product chosen for the model (empty when none can hold it).")
    gpus: int = Field(0, description="GPUs the model requests (replicas x gpusPerReplica).")
    state: Literal["Pending", "Scheduled", "Loading", "Ready", "Unschedulable"]
    reason: str = ""
    message: str = ""


class BackupStatus(Model):
    """The tenant's backups (reconcile/backup_status.py): when the last one succeeded, which and how big."""

    schedule: str
    interval_seconds: int = Field(0, description="The longest wait between two scheduled runs (the alert fires "
                                  "when the last success is older than twice this).")
    enabled_since: str | None = Field(None, description="When the backup CronJob was created.")
    last_success_time: str | None = Field(None, description="When the last backup succeeded (the CronJob's "
                                          "lastSuccessfulTime).")
    last_backup_id: str | None = Field(None, description="Its id: the folder <prefix><id>/ in the bucket.")
    size_bytes: int | None = Field(None, description="Its size in the bucket (the objects it uploaded).")


class RestoreStatus(Model):
    """The tenant created from a backup (backups.restoreFrom; reconcile/restore.py). Once Restored, it is never
    restored again (this record, and the restored Secrets' sovereignsuite.io/restored-from annotation)."""

    phase: str = Field(description="Restoring (the applications wait), Restored, Failed (they stay stopped; the "
                       "message says why) or Refused (the tenant already held data: nothing was restored).")
    backup_id: str | None = Field(None, description="The backup restored (\"latest\" resolved to its id).")
    message: str | None = Field(None, max_length=32768)


class ReleaseStatus(Model):
    """The release the tenant's databases reached (recorded once it served: reconcile/rollout.py); the refusals of
    api/upgrade_rules.py compare a spec with it."""

    name: str
    synapse_schema_version: int | None = Field(None, description="The schema Synapse migrated its database to.")
    synapse_compat_version: int | None = Field(
        None, description="The database's compat version: no Synapse with a lower SCHEMA_VERSION may run on it.")
    postgres_major: dict[str, int] = Field(
        default_factory=dict, description="Per component (matrix, docs): the embedded PostgreSQL's major version.")


class UpgradeStatus(Model):
    """A tenant's rollout from one release to another (reconcile/rollout.py)."""

    from_release: str
    to_release: str
    step: Literal["Backup", "CheckConfig", "Database", "Migrations", "Application", "Workers", "Done"]
    state: Literal["Running", "Failed", "Done"]
    reason: str = ""
    message: str = ""
    since: str | None = Field(
        None, description="When the current step began (RFC 3339, UTC): a workload step not done within the "
        "operator's rollout step deadline fails with ProgressDeadlineExceeded.")


class TenantStatus(Model):
    country: str
    namespace: str
    cluster: str | None = Field(
        None, description="Where the tenant lives: `local` (the operator's cluster), the NationalCloud whose member "
        "cluster holds it (push mode), or `remote` (pull mode: another country's operator serves it).")
    cluster_reachable: bool | None = Field(
        None, description="Whether that cluster answered the operator's last look (absent for `remote`).")
    cluster_uid: str | None = Field(
        None, alias="clusterUID", description="The identity of the cluster the tenant was applied to: the uid of its kube-system "
        "Namespace. A NationalCloud whose credentials come to reach another cluster is refused as a move "
        "(TenantMoveRefused) unless the tenant is being restored or deletionPolicy is Delete.")
    ready: bool
    components: list[ComponentStatus] = Field(default_factory=list)
    models: list[ModelStatus] = Field(default_factory=list)
    backup: BackupStatus | None = Field(None, description="Present when the tenant's backups are enabled.")
    restore: RestoreStatus | None = Field(None, description="Present when the tenant is (or was) created from a "
                                          "backup.")
    release: ReleaseStatus | None = Field(None, description="The release the tenant's databases reached.")
    upgrade: UpgradeStatus | None = Field(None, description="The rollout to another release, while it runs or "
                                          "after it failed.")


class StatusWarning(Model):
    """Something valid that will not work as the suite is written (a component's egress not declared). It does not
    change Ready or any condition: the operator cannot tell whether the endpoint is reached another way."""

    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    field: str = Field(description="The field to set, e.g. spec.network.egress.oidc.")
    message: str = Field("", max_length=32768)


class SovereignSuiteStatus(Model):
    observed_generation: int | None = None
    countries: str | None = Field(None, description="Countries, for the printer column (e.g. FR,DE).")
    ready_summary: str | None = Field(None, description="Ready tenants/total tenants, for the printer column.")
    components_summary: str | None = Field(
        None, description="Ready/desired replicas per tenant and component (e.g. \"FR matrix 7/7 docs 5/5\"), for "
        "the wide printer column.")
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    tenants: list[TenantStatus] = Field(default_factory=list)
    warnings: list[StatusWarning] = Field(
        default_factory=list,
        description="What is valid but will not work (reason EgressNotDeclared: an enabled component needs an endpoint "
        "outside the cluster for which no egress range is declared). Never changes Ready; also printed by "
        "`sovereign-suite validate` and `sovereign-suite status` as warning lines, and sent as a Warning Event when "
        "it appears.",
    )
    operator: dict[str, Any] = Field(
        default_factory=dict,
        description="The operator's own bookkeeping (handler progress); not an interface.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
