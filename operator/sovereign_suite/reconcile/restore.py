"""Whether a tenant is to be restored from a backup (``backups.restoreFrom``), and what the pass does about it.

Pure: ``decide`` reads the spec, what the status recorded, the live restore Job and whether the namespace already
holds the tenant's data, and says what this pass does. The pipeline (pipeline.py) then:

1. Restoring, Secrets not all there: the operator reads the backup's sealed Secrets (restore_secrets.py) and
   creates them before its secrets step (which then finds them and generates nothing);
2. renders the restore Job (components/backup/restore_job.py) and applies it after the databases;
3. holds back every application workload, Job, CronJob and route of the namespace (the ``jobs``, ``apps`` and
   ``routing`` phases) until the Job has succeeded: nothing starts on an empty database, no backup runs of a
   half-restored tenant (it would become "latest");
4. records ``status.tenants[].restore`` (phase, the backup id actually used).

Never twice over live data: a tenant recorded Restored is not restored again; a namespace that already holds
the tenant's generated Secrets (not restored ones), runs its applications or holds a CloudNativePG Cluster the
restore did not create (its recovery bootstrap would not apply) is refused (RestoreOverLiveData) and left as it
is; the Job is never retried by itself (``backoffLimit: 0``), a Failed one stays, with the apps held, until a
person deletes it or names another backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.backups import RestoreFrom
from ..components.backup.restore_job import LABEL_RESTORE
# on the Secrets the operator restored, and on the CloudNativePG Clusters it created by recovery: the backup id
from ..components.postgres.recovery import ANN_RESTORED_FROM
from ..render import phase_of
from . import observe

HELD_PHASES = ("jobs", "apps", "routing")
RESTORING, RESTORED, FAILED, REFUSED = "Restoring", "Restored", "Failed", "Refused"


@dataclass(frozen=True)
class Decision:
    phase: str = ""  # "" (no restore), Restoring, Restored, Failed, Refused
    backup_id: str | None = None  # None while Restoring: resolve restoreFrom.backup ("latest") in the bucket
    render_job: bool = False
    hold: bool = False  # hold back the jobs, apps and routing phases of the namespace
    restore_secrets: bool = False  # create the backup's Secrets that are missing; generate none of them
    message: str = ""

    def entry(self) -> dict[str, Any] | None:
        """``status.tenants[].restore``."""
        if not self.phase:
            return None
        return {"phase": self.phase, **({"backupId": self.backup_id} if self.backup_id else {}),
                **({"message": self.message} if self.message else {})}


def restore_job_of(live: dict[Any, dict[str, Any]], namespace: str) -> dict[str, Any] | None:
    """The newest live restore Job of the namespace (the suite's children labelled with a backup id)."""
    jobs = [o for k, o in live.items() if k.kind == "Job" and k.namespace == namespace
            and LABEL_RESTORE in (o["metadata"].get("labels") or {})]
    return max(jobs, key=lambda o: o["metadata"]["labels"][LABEL_RESTORE]) if jobs else None


def holds_data(live: dict[Any, dict[str, Any]], namespace: str, generated: set[str]) -> str | None:
    """What of the tenant already lives in the namespace (None: nothing): a generated Secret the operator did
    not restore, or an application workload."""
    for k, o in sorted(live.items()):
        if k.namespace != namespace:
            continue
        meta = o["metadata"]
        if k.kind == "Secret" and k.name in generated and ANN_RESTORED_FROM not in (meta.get("annotations") or {}):
            return f"Secret {k.name} exists and was not restored"
        if k.kind in ("Deployment", "StatefulSet") and phase_of(o) == "apps":
            return f"{k.kind} {k.name} runs"
        if (k.group, k.kind) == ("postgresql.cnpg.io", "Cluster") \
                and ANN_RESTORED_FROM not in (meta.get("annotations") or {}):
            # CloudNativePG recovers a Cluster only when it creates it (bootstrap): never over this database
            return f"CloudNativePG Cluster {k.name} exists and was not created by a restore"
    return None


def recovering(live: dict[Any, dict[str, Any]], namespace: str) -> str | None:
    """The namespace's CloudNativePG Clusters a restore created that are not Ready yet (None: none): their
    recovery from the backup's archive has not finished. CloudNativePG v1.27.1 reports it in the Cluster's
    condition ``Ready`` (api/v1/cluster_types.go, ConditionClusterReady)."""
    waiting = []
    for k, o in sorted(live.items()):
        if (k.group, k.kind, k.namespace) != ("postgresql.cnpg.io", "Cluster", namespace) \
                or ANN_RESTORED_FROM not in (o["metadata"].get("annotations") or {}):
            continue
        ready = next((c for c in (o.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
        if ready.get("status") != "True":
            why = ": ".join(x for x in (ready.get("reason"), ready.get("message")) if x)
            waiting.append(f"{k.name} ({why or 'no Ready condition yet'})")
    return ", ".join(waiting) or None


def decide(restore: RestoreFrom | None, recorded: dict[str, Any] | None, job: dict[str, Any] | None,
           live_data: str | None, failure: str | None = None, databases: str | None = None) -> Decision:
    """``recorded``: the status's restore entry; ``job``: the live restore Job; ``live_data``: what of the tenant
    already lives there (holds_data); ``failure``: the Job's pod's termination message, when it failed;
    ``databases``: the CloudNativePG Clusters still recovering (``recovering``)."""
    if recorded and recorded.get("phase") == RESTORED:
        # done once: never again, whatever the spec says now (the Job, while restoreFrom stays, is kept as proof)
        return Decision(RESTORED, recorded.get("backupId"), render_job=restore is not None and job is not None)
    if restore is None:
        return Decision()
    if job is not None:
        bid = job["metadata"]["labels"][LABEL_RESTORE]
        state = observe.job_state(job)
        if state == "Complete" and databases:
            # the media are back; the applications still wait for CloudNativePG's recovery, never an empty start
            return Decision(RESTORING, bid, render_job=True, hold=True, restore_secrets=True, message=(
                f"the media are restored; waiting for CloudNativePG's recovery of {databases}"))
        if state == "Complete":
            return Decision(RESTORED, bid, render_job=True)
        if state == "Failed":
            cond = next((c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == "Failed"),
                        {})
            why = failure or f"{cond.get('reason') or 'Failed'}: {cond.get('message') or ''}".strip()
            return Decision(FAILED, bid, render_job=True, hold=True, restore_secrets=True, message=(
                f"the restore Job {job['metadata']['name']} failed ({why}); the applications stay stopped. Delete "
                "the Job to run it again (into an empty database and media volume only), or name another backup"))
        return Decision(RESTORING, bid, render_job=True, hold=True, restore_secrets=True)
    if live_data is not None:
        return Decision(REFUSED, message=f"restoreFrom ignored: the tenant already holds data ({live_data}); "
                                         "a backup is never restored over live data")
    return Decision(RESTORING, None, render_job=True, hold=True, restore_secrets=True)


def held(obj: dict[str, Any], decisions: dict[str, Decision]) -> str | None:
    """Why ``obj`` waits (None: it is applied now): the restore of its namespace has not succeeded yet."""
    d = decisions.get(obj["metadata"].get("namespace") or "")
    if d is None or not d.hold or phase_of(obj) not in HELD_PHASES:
        return None
    if obj["kind"] == "Job" and LABEL_RESTORE in (obj["metadata"].get("labels") or {}):
        return None  # the restore Job itself
    return f"waits for the restore of backup {d.backup_id or '?'}"
