"""A pass's restores (reconcile/restore.py decides, restore_secrets.py reads the bucket): for each tenant served
here, the decision, the Secrets to re-create, the restore Job's manifests and the problems. Kept out of
pipeline.py, which calls ``plan`` after dereferencing and ``write_secrets`` before its secrets step."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..components.backup import generated_secrets, prefix as backup_prefix, restore_job
from ..components.postgres import recovery
from ..render import PHASES, RenderResult, phase_of
from . import observe
from .problems import ObjectKey, Problem, degraded, stalled
from .restore import (ANN_RESTORED_FROM, FAILED, REFUSED, RESTORED, RESTORING, Decision, decide, held, holds_data,
                      recovering, restore_job_of)
from .restore_secrets import create_restored, fetch


@dataclass
class Plan:
    decisions: dict[str, Decision] = field(default_factory=dict)  # namespace -> decision
    values: dict[str, tuple[str, dict[str, dict[str, bytes]]]] = field(default_factory=dict)  # ns -> (id, Secrets)
    blocked: set[str] = field(default_factory=set)  # namespaces whose Secrets could not be restored
    problems: list[Problem] = field(default_factory=list)

    def held(self, obj: dict[str, Any]) -> str | None:
        ns = obj["metadata"].get("namespace") or ""
        if ns in self.blocked and phase_of(obj) not in ("namespace", "policy", "config"):
            return "waits: the backup's Secrets could not be restored (see the conditions)"
        return held(obj, self.decisions)


def _termination_message(pods: list[dict[str, Any]]) -> str | None:
    """The restore program's refusal, from its failed Job's pods as the pass reads them (Pass.job_pods: the caches
    keep no finished pod; stripped, ``terminated`` is the container's one run)."""
    for pod in pods:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            msg = (cs.get("terminated") or {}).get("message")
            if msg:
                return msg.strip()[-500:]
    return None


def _clusters_made_by(live: dict[ObjectKey, dict[str, Any]], namespace: str) -> dict[str, str]:
    """The namespace's live CloudNativePG Clusters a restore created: name -> the backup id."""
    out = {}
    for k, o in live.items():
        made = (o["metadata"].get("annotations") or {}).get(ANN_RESTORED_FROM)
        if (k.group, k.kind, k.namespace) == ("postgresql.cnpg.io", "Cluster", namespace) and made:
            out[k.name] = made
    return out


def plan(contexts: list, result: RenderResult, live: dict[ObjectKey, dict[str, Any]],
         old_entries: dict[str, dict[str, Any]], served: Any, job_pods: Any, read_secret: Any,
         suite_ns: str, connect: Any = None) -> Plan:
    """``served(namespace)``: whether this operator writes that tenant; ``job_pods(namespace, job)``: a finished Job's pods;
    ``read_secret(namespace, name)``: a Secret of the suite's namespace; ``old_entries``: namespace -> the
    status's restore entry."""
    out = Plan()
    for ctx in contexts:
        ns = ctx.namespace
        if not served(ns):
            continue
        restore = ctx.backups.restore_from
        job = restore_job_of(live, ns)
        # the Secrets a backup holds (the tenant CA's is generated afresh: not "live data" after a retry)
        generated = set(generated_secrets(ctx))
        failure = None
        # its Failed condition: the live Job is the cache's (strip.py keeps a Job's conditions, not its counters)
        if job is not None and observe.job_state(job) == "Failed":
            failure = _termination_message(job_pods(ns, job))
        d = decide(restore, old_entries.get(ns), job, holds_data(live, ns, generated) if restore else None, failure,
                   recovering(live, ns))
        if d.phase == FAILED:
            out.problems.append(stalled("RestoreFailed", d.message, ObjectKey("batch", "Job", ns, job["metadata"]["name"])
                                        if job else None))
        elif d.phase == REFUSED:
            out.problems.append(degraded("RestoreOverLiveData", d.message))
        missing = [n for n in generated if ObjectKey("", "Secret", ns, n) not in live]
        if d.restore_secrets and restore is not None and (d.backup_id is None or missing):
            got = fetch(read_secret, suite_ns, ctx.backups, ctx.object_storage, backup_prefix(ctx),
                        d.backup_id or restore.backup, connect)
            if isinstance(got, Problem):
                out.problems.append(got)
                out.blocked.add(ns)
                d = dataclasses.replace(d, phase=FAILED, render_job=False, message=got.message)
            else:
                out.values[ns] = got
                d = dataclasses.replace(d, backup_id=got[0])
        # cloudnative-pg: a Cluster created by recovery, then archiving under its own server name
        recovery.restore_clusters(result.manifests, ns, restore,
                                  d.backup_id if d.phase in (RESTORING, RESTORED, FAILED) else None,
                                  _clusters_made_by(live, ns))
        if d.render_job and d.backup_id:
            objs = restore_job.render(ctx, d.backup_id)
            result.manifests += objs
            result.by_component.setdefault((ctx.country, "backup"), []).extend(objs)
        out.decisions[ns] = d
    # the Job and its configuration in their phases (apply_all groups consecutive objects of one phase)
    result.manifests.sort(key=lambda o: PHASES.index(phase_of(o)))
    return out


def write_secrets(kube: Any, out: Plan, specs: list, live: dict[ObjectKey, dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], list[Problem], list]:
    """Create the restored Secrets of one cluster's namespaces (``specs``: theirs). Returns what was written, the
    problems, and the specs the secrets step may still fill: none of a blocked namespace (nothing is generated in
    place of a Secret the backup holds). Runs on that cluster's thread: it touches only its own namespaces."""
    written: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for ns, (bid, values) in sorted(out.values.items()):
        mine = [s for s in specs if s.namespace == ns]
        if not mine:
            continue
        made, found = create_restored(kube, mine, values, bid, live)
        written += made
        if found:
            problems += found
            out.blocked.add(ns)
    return written, problems, [s for s in specs if s.namespace not in out.blocked]


def recorded(old_status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """namespace -> the restore entry the status holds."""
    return {t.get("namespace"): t["restore"] for t in old_status.get("tenants") or [] if t.get("restore")}


def add_status(out: Plan, old_status: dict[str, Any], status: dict[str, Any]) -> None:
    """``status.tenants[].restore``: Restoring, Restored (the backup id used), Failed, Refused. A tenant not looked
    at this pass (invalid spec, a member that did not answer) keeps its entry: the record is never lost."""
    old = recorded(old_status)
    for entry in status.get("tenants") or []:
        d = out.decisions.get(entry["namespace"])
        record = d.entry() if d is not None else old.get(entry["namespace"])
        if record is not None:
            entry["restore"] = record
