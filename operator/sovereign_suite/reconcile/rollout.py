"""A tenant's move from one release to another, in order (pure: a state machine over what the cluster shows).

When a tenant's release differs from the one its databases reached (``status.tenants[].release``), the pass
rolls it step by step, one step per condition met, recomputed from the live objects at every pass:

  Backup       a one-off Job from the tenant's backup CronJob (when backups are configured), and wait for it;
  CheckConfig  the new Synapse image loads the rendered configuration (``python -m synapse.config``, as ESS's
               check-config hook Job: element-hq/ess-helm charts/matrix-stack/templates/synapse/
               synapse_check_config_job_hook.yaml, process type check-config -> synapse.config in _helpers.tpl);
  Database     the databases' workloads get their new image (a minor PostgreSQL version; a major is refused:
               api/upgrade_rules.py) and are ready;
  Migrations   Docs' migrate Job of the new backend image completes (Synapse migrates its schema on start);
  Application  the applications (Synapse's main process first of all) run the new images and are ready;
  Workers      Synapse's workers (components/matrix/workers.py) follow: they refuse a schema the main process
               has not migrated yet.

Until its step comes, a workload keeps its live version (the pass does not send it: the previous version keeps
serving), and so do the ConfigMaps only held workloads read (reconcile/rollout_config.py), and a failed step stops the rollout with its reason: a Job of the step failed (its pod's last words), or a
workload of the step does not roll out because its pods are stuck (crash-looping, an image that cannot be pulled...:
observe.STUCK, with the container's last words; a Synapse refusal named as such, crash_causes.py). Recomputed at
every pass: a stuck workload that recovers (the kubelet retries) lets its step go on; a failed Job stays failed
until it is deleted or the release set back. A workload step (Database, Migrations, Application, Workers) that is neither done
nor failed fails once it has run longer than the rollout step deadline (``since`` in the status; a readiness probe that
never passes, a pod that stays Pending): ProgressDeadlineExceeded, naming what it waits for. The I/O (reading the Jobs and pods, applying what
is released) is the pass's: reconcile/pipeline.py, reconcile/rollout_pass.py.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ..components.matrix.workers import WORKER_LABEL

STEPS = ("Backup", "CheckConfig", "Database", "Migrations", "Application", "Workers", "Done")
# what each step still holds at its live version: everything after it
_HOLDS = {
    "Backup": frozenset({"database", "migrations", "application", "workers"}),
    "CheckConfig": frozenset({"database", "migrations", "application", "workers"}),
    "Database": frozenset({"migrations", "application", "workers"}),
    "Migrations": frozenset({"application", "workers"}),
    "Application": frozenset({"workers"}),
    "Workers": frozenset(),
    "Done": frozenset(),
}
BACKUP_JOB_PREFIX = "upgrade-backup-"
CHECK_JOB_PREFIX = "synapse-check-config-"


@dataclass(frozen=True)
class Observed:
    """What the cluster shows of one tenant's rollout. Job states: Missing, Running, Complete or Failed
    (observe.job_state)."""

    backups: bool  # the tenant's backups are configured (its CronJob is rendered)
    backup_job: str = "Missing"
    check_job: str = "Missing"
    database_ready: bool = False  # every database workload runs its desired image and is ready
    migrations: str = "Complete"  # Docs' migrate Job of the new image (Complete when Docs is off)
    application_ready: bool = False
    workers_ready: bool = False
    # why a Job or the application failed (a Job's condition, a container's classified last words)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    step: str
    state: str  # Running, Failed or Done
    reason: str = ""
    message: str = ""
    jobs: frozenset[str] = frozenset()  # the one-off Jobs to render: "backup", "check"
    hold: frozenset[str] = frozenset()  # the categories of workloads kept at their live version


def _at(step: str, jobs: set[str], state: str = "Running", reason: str = "", message: str = "") -> Decision:
    return Decision(step, state, reason or ("Upgrading" if state == "Running" else ""), message, frozenset(jobs),
                    _HOLDS[step])


def decide(o: Observed) -> Decision:
    """The rollout's current step: the first whose condition is not met yet (or that failed)."""
    jobs = {"backup"} if o.backups else set()
    if o.backups and o.backup_job != "Complete":
        if o.backup_job == "Failed":
            why = o.failures.get("backup", ("BackupFailed", ""))
            return _at("Backup", jobs, "Failed", "PreUpgradeBackupFailed",
                       f"the backup before the upgrade failed ({why[0]}: {why[1]}); nothing was upgraded")
        return _at("Backup", jobs, message="taking the backup before the upgrade")
    jobs.add("check")
    if o.check_job != "Complete":
        if o.check_job == "Failed":
            why = o.failures.get("check", ("Failed", ""))
            return _at("CheckConfig", jobs, "Failed", "ConfigCheckFailed",
                       f"the new Synapse refuses the configuration ({why[0]}: {why[1]}); the previous version "
                       "keeps serving")
        return _at("CheckConfig", jobs, message="the new Synapse checks the configuration")
    if not o.database_ready:
        if "database" in o.failures:
            return _at("Database", jobs, "Failed", *o.failures["database"])
        return _at("Database", jobs, message="the databases roll to their new image")
    if o.migrations == "Failed":
        why = o.failures.get("migrations", ("Failed", ""))
        return _at("Migrations", jobs, "Failed", "MigrationFailed", f"{why[0]}: {why[1]}")
    if o.migrations != "Complete":
        return _at("Migrations", jobs, message="the database migrations run")
    if not o.application_ready:
        if "application" in o.failures:
            return _at("Application", jobs, "Failed", *o.failures["application"])
        return _at("Application", jobs, message="the applications roll to their new images")
    if not o.workers_ready:
        if "workers" in o.failures:
            return _at("Workers", jobs, "Failed", *o.failures["workers"])
        return _at("Workers", jobs, message="Synapse's workers roll after the main process")
    return Decision("Done", "Done", "Upgraded")


# The steps whose workloads roll or whose Job runs. The Deployment controller's own deadline (progressDeadlineSeconds) covers
# Deployments only and says nothing of a Pending pod's StatefulSet: one deadline of the operator's covers them all.
# Docs' migrate Job has no activeDeadlineSeconds of its own (the operator's pre-upgrade backup and check Jobs do).
DEADLINE_STEPS = {"Database": "database", "Migrations": "migrations", "Application": "application",
                  "Workers": "workers"}
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def step_since(d: Decision, old: dict[str, Any] | None, from_release: str, to_release: str,
               now: datetime) -> str:
    """When ``d``'s step began: the previous pass's entry's time when it was the same move at the same step (a
    failed step keeps it too), else now."""
    if (old and old.get("since") and old.get("step") == d.step and old.get("fromRelease") == from_release
            and old.get("toRelease") == to_release):
        return old["since"]
    return now.astimezone(timezone.utc).strftime(STAMP)


def past_deadline(d: Decision, since: str, now: datetime, deadline: float, waiting: str) -> Decision:
    """``d``, or a failure when its workload step has run for longer than ``deadline`` seconds; ``waiting``: what
    the step still waits for. A step that gets done later goes on (recomputed every pass)."""
    if d.state != "Running" or d.step not in DEADLINE_STEPS:
        return d
    try:
        began = datetime.strptime(since, STAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        return d
    elapsed = (now - began).total_seconds()
    if elapsed <= deadline:
        return d
    return replace(d, state="Failed", reason="ProgressDeadlineExceeded",
                   message=f"step {d.step} not done {int(elapsed)} s after it began (deadline {int(deadline)} s); "
                           f"waiting for {waiting or 'its workloads'}")


def category(obj: dict[str, Any]) -> str | None:
    """Which step rolls ``obj`` (None: configuration, Services...: applied at once, as before)."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    if kind == "Cluster" or (kind == "StatefulSet" and name.endswith("-postgres")):
        return "database"
    if kind == "Job" and name.startswith("docs-migrate-"):
        return "migrations"
    if kind in ("Deployment", "StatefulSet"):
        labels = obj["metadata"].get("labels") or {}
        return "workers" if WORKER_LABEL in labels else "application"
    return None


def images(obj: dict[str, Any]) -> list[str]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    if obj["kind"] == "Cluster":
        return [(obj.get("spec") or {}).get("imageName") or ""]
    return [c.get("image", "") for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]


def job_suffix(from_release: str, to_release: str, desired: list[dict[str, Any]]) -> str:
    """One name per move (the releases and every image it rolls to): a rollout resumed by a later pass finds its
    Jobs again; a new target image is a new check."""
    digest = hashlib.sha256(f"{from_release}>{to_release}".encode())
    for img in sorted({i for o in desired if category(o) for i in images(o)}):
        digest.update(img.encode())
    return digest.hexdigest()[:10]


def backup_job(cronjob: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A one-off run of the tenant's backup CronJob (components/backup/): its jobTemplate, as `kubectl create job
    --from=cronjob/backup` makes one."""
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": cronjob["metadata"]["namespace"],
                     "labels": {**(meta.get("labels") or {}), **labels},
                     "annotations": {**(meta.get("annotations") or {}), "sovereignsuite.io/upgrade-step": "Backup"}},
        "spec": template["spec"],
    }


def check_job(synapse: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, Any]:
    """The new Synapse image loading the rendered configuration, from Synapse's main Deployment's pod: the same
    init container (it writes the database settings), config and keys; ``python -m synapse.config`` (Synapse's
    synapse/config/__main__.py: loads the config with the homeserver's arguments, exits 1 on a ConfigError) instead
    of the homeserver; no probes, no ports, and no media volume (the running Synapse holds it)."""
    pod = copy.deepcopy(synapse["spec"]["template"])
    spec = pod["spec"]
    for c in spec["containers"]:
        if c["name"] == "synapse":
            c["command"] = ["python3", "-m", "synapse.config", *c["command"][3:]]
        for key in ("startupProbe", "readinessProbe", "livenessProbe", "ports"):
            c.pop(key, None)
    spec["volumes"] = [v if v["name"] != "media" else {"name": "media", "emptyDir": {"sizeLimit": "1Mi"}}
                       for v in spec.get("volumes") or []]
    spec["restartPolicy"] = "Never"
    pod["metadata"] = {"labels": labels}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": synapse["metadata"]["namespace"], "labels": labels,
                     "annotations": {"sovereignsuite.io/upgrade-step": "CheckConfig"}},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": 600, "template": pod},
    }
