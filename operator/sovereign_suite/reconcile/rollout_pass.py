"""The reconcile pass's side of a release rollout (reconcile/rollout.py is the pure state machine): what the live
objects say of each upgrading tenant, the one-off Jobs to add to its desired objects, which workloads keep their
live version, and the release record (status.tenants[].release) once a release serves."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

from ..api.models import SovereignSuite
from ..api.derived_names import namespace_of
from ..api.upgrade_rules import image_major
from ..api.validation import effective_backups, effective_components, tenant_release
from ..api.releases import catalogue
from . import observe
from .converge import ANN_HASH, stamp
from .problems import ObjectKey
from .rollout_config import held_configuration, with_config_copies
from .rollout import BACKUP_JOB_PREFIX, CHECK_JOB_PREFIX, DEADLINE_STEPS, Decision, Observed, backup_job, category, \
    check_job, decide, job_suffix, past_deadline, step_since

Live = dict[ObjectKey, dict[str, Any]]


def recorded(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """namespace -> the release its databases reached, from the suite's status."""
    return {t["namespace"]: t["release"] for t in status.get("tenants") or [] if t.get("namespace") and
            t.get("release")}


def _rolled(desired: dict[str, Any], live: Live) -> bool:
    """``desired`` is applied (its hash) and rolled out (every replica updated and ready)."""
    obj = live.get(ObjectKey.of(desired))
    if obj is None:
        return False
    if ((obj["metadata"].get("annotations") or {}).get(ANN_HASH) != desired["metadata"]["annotations"][ANN_HASH]):
        return False
    if obj["kind"] in ("Deployment", "StatefulSet"):
        return observe.workload_ready(obj)[2]
    return True


def _job(live: Live, ns: str, name: str) -> tuple[str, tuple[str, str] | None]:
    job = live.get(ObjectKey("batch", "Job", ns, name))
    if job is None:
        return "Missing", None
    state = observe.job_state(job)
    failed = next((c for c in (job.get("status") or {}).get("conditions") or [] if c.get("type") == "Failed"), {})
    return state, (failed.get("reason") or "Failed", failed.get("message") or "") if state == "Failed" else None


JobPods = Callable[[str, dict[str, Any]], list[dict[str, Any]]]


def observe_tenant(ns: str, objs: list[dict[str, Any]], live: Live, backups: bool, suffix: str,
                   pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]], job_pods: JobPods) -> Observed:
    """``pods_of(namespace, match_labels)``: the pods there (from the watch cache); ``job_pods(namespace, job)``: a
    finished Job's own pods (read from the cluster: the cache keeps no finished pod), stripped as the cache does."""
    def job_of(name: str) -> tuple[str, tuple[str, str] | None]:
        state, why = _job(live, ns, name)
        if why is not None:  # the Job's own words (its pod's log tail) say more than BackoffLimitExceeded
            pods = job_pods(ns, live[ObjectKey("batch", "Job", ns, name)])
            why = observe.container_reason(pods) or _terminated(pods) or why
        return state, why

    backup_state, backup_why = job_of(BACKUP_JOB_PREFIX + suffix)
    check_state, check_why = job_of(CHECK_JOB_PREFIX + suffix)
    if not any(o["metadata"]["name"] == "synapse" and o["kind"] == "Deployment" for o in objs):
        check_state = "Complete"  # no Synapse in this tenant: nothing to check
    failures = {k: v for k, v in (("backup", backup_why), ("check", check_why)) if v is not None}
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        by_cat.setdefault(category(o) or "", []).append(o)
    migrations = "Complete"
    for job in by_cat.get("migrations", []):
        state, why = job_of(job["metadata"]["name"])
        migrations = state if state != "Missing" else "Running"
        if why:
            failures["migrations"] = why
    for cat in ("database", "application", "workers"):
        why = _stuck(ns, by_cat.get(cat, []), live, pods_of)
        if why:
            failures[cat] = why
    return Observed(
        backups=backups, backup_job=backup_state, check_job=check_state,
        database_ready=all(_rolled(o, live) for o in by_cat.get("database", [])),
        migrations=migrations,
        application_ready=all(_rolled(o, live) for o in by_cat.get("application", [])),
        workers_ready=all(_rolled(o, live) for o in by_cat.get("workers", [])),
        failures=failures)


def _stuck(ns: str, objs: list[dict[str, Any]], live: Live,
           pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]]) -> tuple[str, str] | None:
    """Why a workload of a step does not roll out, when its pods are stuck (a container crash-looping, an image
    that cannot be pulled, a missing Secret key: observe.STUCK), with the container's last words; a Synapse
    refusal the operator knows is named as such (crash_causes.py, through observe.container_reason). A pod still
    starting, or Pending, is not stuck: the step is still Running."""
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet") or _rolled(o, live):
            continue
        match = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        why = observe.container_reason(pods_of(ns, match)) if match else None
        if why:
            return why[0], f"{o['kind']}/{o['metadata']['name']}: {why[1]}"
    return None


def waiting_for(ns: str, objs: list[dict[str, Any]], live: Live,
                pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]]) -> str:
    """The workloads of ``objs`` not rolled out yet (each with its ready count) and the Jobs not complete, with the
    scheduler's words for a Pending pod."""
    out = []
    for o in objs:
        if o["kind"] == "Job":  # Docs' migrate Job: its pods carry the Job controller's job-name label
            if _job(live, ns, o["metadata"]["name"])[0] != "Complete":
                pending = observe.pending_reason(pods_of(ns, {"job-name": o["metadata"]["name"]}))
                out.append(f"Job/{o['metadata']['name']}" + (f": {pending[0]}: {pending[1]}" if pending else ""))
            continue
        if o["kind"] not in ("Deployment", "StatefulSet") or _rolled(o, live):
            continue
        obj = live.get(ObjectKey.of(o))
        desired, ready, _ = observe.workload_ready(obj) if obj is not None else (0, 0, False)
        text = f"{o['kind']}/{o['metadata']['name']} ({ready}/{desired} ready)" if obj is not None \
            else f"{o['kind']}/{o['metadata']['name']} (not applied yet)"
        match = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pending = observe.pending_reason(pods_of(ns, match)) if match else None
        if pending:
            text += f": {pending[0]}: {pending[1]}"
        out.append(text)
    return ", ".join(out)


def _terminated(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The first non-zero exit of a Job's pods (as the watch cache stores them: reconcile/strip.py), with its
    termination message (the tail of the log for FallbackToLogsOnError containers)."""
    for pod in pods:
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            term = c.get("terminated") or c.get("lastTerminated") or {}
            if term.get("exitCode"):
                return term.get("reason") or "Error", " ".join((term.get("message") or "").split())[-500:]
    return None


def plan(suite: SovereignSuite, desired: list[dict[str, Any]], live: Live, old_status: dict[str, Any], uid: str,
         served: Callable[[str], bool], pods_of: Callable[[str, dict[str, str]], list[dict[str, Any]]],
         job_pods: JobPods, labels: Callable[[Any, str, str], dict[str, str]],
         now: datetime | None = None, deadline: float = 600.0
         ) -> tuple[list[dict[str, Any]], set[ObjectKey], dict[str, dict[str, Any]]]:
    """The desired objects with each upgrading tenant's one-off Jobs, the workloads held at their live version,
    and each upgrading tenant's status.tenants[].upgrade. ``desired`` is stamped; ``served(ns)``: the tenant is
    written by this pass; ``labels(tenant, component, part)``: the rendered labels; ``pods_of``, ``job_pods``: as
    observe_tenant's; ``deadline``: seconds a workload step may run (rollout.past_deadline)."""
    rec = recorded(old_status)
    now = now or datetime.now(timezone.utc)
    old_upgrades = {t["namespace"]: t["upgrade"] for t in old_status.get("tenants") or []
                    if t.get("namespace") and t.get("upgrade")}
    jobs: list[dict[str, Any]] = []
    held: set[ObjectKey] = set()
    upgrades: dict[str, dict[str, Any]] = {}
    for tenant in suite.spec.tenants:
        ns = namespace_of(suite, tenant)
        have, want = (rec.get(ns) or {}).get("name"), tenant_release(suite, tenant).name
        if not have or have == want or not served(ns):
            continue
        objs = [o for o in desired if o["metadata"].get("namespace") == ns]
        suffix = job_suffix(have, want, objs)
        cronjob = next((o for o in objs if o["kind"] == "CronJob" and o["metadata"]["name"] == "backup"), None)
        backups = cronjob is not None and effective_backups(suite, tenant).enabled
        decision = decide(observe_tenant(ns, objs, live, backups, suffix, pods_of, job_pods))
        since = step_since(decision, old_upgrades.get(ns), have, want, now)
        if decision.step in DEADLINE_STEPS:
            step_objs = [o for o in objs if category(o) == DEADLINE_STEPS[decision.step]]
            decision = past_deadline(decision, since, now, deadline, waiting_for(ns, step_objs, live, pods_of))
        if "backup" in decision.jobs and cronjob is not None:
            job = backup_job(cronjob, BACKUP_JOB_PREFIX + suffix, labels(tenant, "backup", "upgrade-backup"))
            jobs.append(stamp(job, uid))
        synapse = next((o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse"), None)
        if "check" in decision.jobs and synapse is not None:
            job = check_job(synapse, CHECK_JOB_PREFIX + suffix, labels(tenant, "matrix", "synapse-check-config"))
            configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
            jobs += [stamp(o, uid) for o in with_config_copies(job, configmaps)]
        held |= {ObjectKey.of(o) for o in objs if category(o) in decision.hold}
        held |= held_configuration(objs, decision.hold)
        upgrades[ns] = upgrade_entry(have, want, decision, since)
    return desired + jobs, held, upgrades


def upgrade_entry(have: str, want: str, d: Decision, since: str) -> dict[str, Any]:
    return {"fromRelease": have, "toRelease": want, "step": d.step, "state": d.state, "reason": d.reason,
            "message": d.message, "since": since}


def release_record(suite: SovereignSuite, tenant: Any, old: dict[str, Any] | None, ready: bool,
                   upgrade: dict[str, Any] | None) -> dict[str, Any] | None:
    """The tenant's status.tenants[].release: the old record while a rollout runs or the tenant is not ready, the
    tenant's release once it serves (Synapse's schema from the catalogue; the compat version never goes down:
    a database keeps what the newest Synapse wrote)."""
    release = tenant_release(suite, tenant)
    if upgrade is not None and upgrade["state"] != "Done":
        return old
    if not ready or (old and old.get("name") != release.name and upgrade is None):
        return old  # not serving, or a move this pass did not roll (paused, held back before the rollout step)
    comps = effective_components(suite, tenant)
    out: dict[str, Any] = {"name": release.name}
    schema = catalogue().by_synapse_image(comps.matrix.image) if comps.matrix.enabled else None
    old = old or {}
    if schema is not None:
        out["synapseSchemaVersion"] = max(schema.synapse.schema_version, old.get("synapseSchemaVersion") or 0)
        out["synapseCompatVersion"] = max(schema.synapse.compat_version, old.get("synapseCompatVersion") or 0)
    else:  # an image the catalogue does not know: what was known stays
        out.update({k: old[k] for k in ("synapseSchemaVersion", "synapseCompatVersion") if k in old})
    majors = {}
    for name in ("matrix", "docs"):
        comp = getattr(comps, name)
        if comp.enabled and comp.postgres.mode == "embedded" and image_major(comp.postgres.image) is not None:
            majors[name] = image_major(comp.postgres.image)
    if majors:
        out["postgresMajor"] = majors
    return out



def add_releases(suite: SovereignSuite, status: dict[str, Any], old_status: dict[str, Any],
                 upgrades: dict[str, dict[str, Any]]) -> None:
    """Each tenant's release record and rollout in ``status``: the record moves to the tenant's release once it
    serves it (ready, no rollout left), and is kept otherwise."""
    old = recorded(old_status)
    for tenant, entry in zip(suite.spec.tenants, status.get("tenants") or []):
        ns = entry["namespace"]
        upgrade = upgrades.get(ns)
        record = release_record(suite, tenant, old.get(ns), bool(entry.get("ready")), upgrade)
        if record is not None:
            entry["release"] = record
        if upgrade is not None and upgrade["state"] != "Done":
            entry["upgrade"] = upgrade
