"""How an object is stored in the watch cache (cache.py): only what the pipeline reads, so the cache stays small
with hundreds of suites (docs/architecture.md, "Watches"). Convergence needs only metadata (converge.py): the
writers of managedFields without their field sets, but the digest of the operator's own entry; workloads keep
their replica counts, selector, GPU affinity and status; pods why they are not ready (never a member container's
log text); Secrets their key names only, except referenceable ones (whole: the suites copy them).

Strings hundreds of objects repeat (label keys and values, namespaces, node names) are interned, and the few
distinct managedFields writers are shared: each watch event is decoded on its own.
"""

from __future__ import annotations

import sys
from typing import Any

from ..components.base import MANAGED_BY
from .converge import OWN_FIELDS, entry_digest
from .storage_hold import claim_fields

_KEEP_META = ("name", "namespace", "uid", "resourceVersion", "generation", "labels", "deletionTimestamp")
_WRITERS: dict[tuple[str, ...], dict[str, str]] = {}  # one shared dict per (manager, operation, subresource)
_MAX_WRITERS = 1000


def _i(value: Any) -> Any:
    """One shared copy of a string that many stored objects repeat (label keys and values, namespaces, field
    managers): each watch event is decoded on its own, so without this every object holds its own copies."""
    return sys.intern(value) if isinstance(value, str) else value


def _labels(labels: dict[str, Any] | None) -> dict[str, Any]:
    return {_i(k): _i(v) for k, v in (labels or {}).items()}


def _strip_meta(meta: dict[str, Any], managers: bool = True) -> dict[str, Any]:
    out = {k: meta[k] for k in _KEEP_META if k in meta}
    if "namespace" in out:
        out["namespace"] = _i(out["namespace"])
    if "labels" in out:
        out["labels"] = _labels(out["labels"])
    ann = {_i(k): v for k, v in (meta.get("annotations") or {}).items()
           if k.startswith(("sovereignsuite.io/", "cnpg.io/"))}
    if ann:
        out["annotations"] = ann
    if managers:  # who wrote what, without the field sets (converge.foreign_entries reads these three)
        out["managedFields"] = [_writer(e) for e in meta.get("managedFields") or []]
        # and the digest of the operator's own field set: a field removed or rewritten by another writer leaves
        # it (converge.out_of_sync compares it with the digest the operator's apply wrote)
        out[OWN_FIELDS] = entry_digest(meta)
    return out


def _writer(entry: dict[str, Any]) -> dict[str, str]:
    """A managedFields entry reduced to who wrote and how. There are few distinct ones (the operator's apply,
    the controllers' status updates...), so every stored object shares them; nothing writes into a stored
    object (the pipeline reads the cache, and sends what it renders)."""
    key = tuple(str(entry.get(k) or "") for k in ("manager", "operation", "subresource"))
    shared = _WRITERS.get(key)
    if shared is None:
        shared = {k: _i(v) for k, v in zip(("manager", "operation", "subresource"), key) if v}
        if len(_WRITERS) < _MAX_WRITERS:  # bounded: whoever may edit a child can name any field manager
            shared = _WRITERS.setdefault(key, shared)
    return shared


def _extended(resources: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (resources or {}).items() if "/" in k}  # nvidia.com/gpu and the like


def strip_child(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": _i(obj.get("apiVersion")), "kind": _i(obj.get("kind")),
                           "metadata": _strip_meta(obj["metadata"])}
    kind, spec, status = obj.get("kind"), obj.get("spec") or {}, obj.get("status") or {}
    if kind in ("Deployment", "StatefulSet"):
        affinity = ((spec.get("template") or {}).get("spec") or {}).get("affinity") or {}
        out["spec"] = {"replicas": spec.get("replicas", 1), "selector": spec.get("selector") or {},
                       "template": {"spec": {"affinity": affinity}}}
        if kind == "StatefulSet":  # immutable once created: the pass holds a change back (storage_hold.py)
            out["spec"]["volumeClaimTemplates"] = [
                {"name": (t.get("metadata") or {}).get("name"), **claim_fields(t.get("spec") or {})}
                for t in spec.get("volumeClaimTemplates") or []]
        out["status"] = {k: status[k] for k in ("replicas", "readyReplicas", "availableReplicas", "updatedReplicas",
                                                 "observedGeneration", "updateRevision", "currentRevision")
                         if k in status}
    elif kind == "Job":
        out["status"] = {"conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message",
                                                                 "lastTransitionTime")}
                                        for c in status.get("conditions") or []]}
    elif kind == "CronJob":  # when the backup last ran and last succeeded (reconcile/backup_status.py)
        out["status"] = {k: status[k] for k in ("lastScheduleTime", "lastSuccessfulTime") if k in status}
        if obj["metadata"].get("creationTimestamp"):  # since when backups run: the alert's start without a success
            out["metadata"]["creationTimestamp"] = obj["metadata"]["creationTimestamp"]
    elif kind == "Cluster" and str(obj.get("apiVersion", "")).startswith("postgresql.cnpg.io/"):
        # CloudNativePG's Ready condition: a tenant restored by its recovery waits for it (reconcile/restore.py)
        out["status"] = {"conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                                        for c in status.get("conditions") or [] if c.get("type") == "Ready"]}
    elif kind == "ResourceQuota":  # whether a FineTune's pod is refused by the tenant's quota (finetune_quota.py)
        out["status"] = {k: dict(status[k]) for k in ("hard", "used") if k in status}
    elif kind == "PersistentVolumeClaim":  # the class is immutable (storage_hold.py)
        out["spec"] = claim_fields(spec)
    elif kind == "Secret":
        out["data"] = {k: "" for k in obj.get("data") or {}}  # which keys exist, never a value
    return out


def strip_pod(obj: dict[str, Any], log_text: bool = True) -> dict[str, Any]:
    """A pod as the pipeline reads it. ``log_text`` False (member clusters): a container's last termination keeps
    its reason and exit code only, never its message, which is the tail of the container's log for containers
    rendered with ``terminationMessagePolicy: FallbackToLogsOnError`` (Synapse's: user IDs, room IDs, client
    addresses, SQL). What the hub does not hold, its status, conditions and Events cannot copy
    (docs/multi-cluster.md, "What the hub learns of a member")."""
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    if labels.get("app.kubernetes.io/managed-by") != MANAGED_BY:
        labels = {k: v for k, v in labels.items() if k.startswith("sovereignsuite.io/")}
    labels = _labels(labels)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": meta["name"], "namespace": _i(meta.get("namespace")), "labels": labels},
        "spec": {"nodeName": _i(spec.get("nodeName")),
                 "containers": [{"resources": {"limits": _extended((c.get("resources") or {}).get("limits")),
                                               "requests": _extended((c.get("resources") or {}).get("requests"))}}
                                for c in spec.get("containers") or []]},
        "status": {"phase": status.get("phase"),
                   "conditions": [{k: c.get(k) for k in ("type", "status", "reason", "message")}
                                  for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"],
                   # only containers that are not ready, and only why (observe.container_reason)
                   "containerStatuses": [_container_status(c, log_text)
                                         for key in ("initContainerStatuses", "containerStatuses")
                                         for c in status.get(key) or [] if not c.get("ready")]},
    }


def strip_member_pod(obj: dict[str, Any]) -> dict[str, Any]:
    return strip_pod(obj, log_text=False)


def _container_status(c: dict[str, Any], log_text: bool) -> dict[str, Any]:
    # waiting.message is the kubelet's own text (back-off delay, a missing Secret key, a pull error), never the
    # container's output; lastState.terminated.message is what the container wrote, or its log's tail
    # state.terminated: a container that ran once and ended (a Job's pod, restartPolicy Never: a failed check or
    # migration says why there, reconcile/rollout_pass.py), lastState.terminated: the previous run of a restarted one
    waiting = (c.get("state") or {}).get("waiting") or {}

    def ended(term: dict[str, Any]) -> dict[str, Any] | None:
        if not term:
            return None
        out = {"reason": term.get("reason"), "exitCode": term.get("exitCode")}
        if log_text:
            out["message"] = (term.get("message") or "")[-600:]
        return out

    return {"name": c.get("name"), "restartCount": c.get("restartCount", 0),
            "waiting": {"reason": waiting.get("reason"), "message": (waiting.get("message") or "")[:300]},
            "terminated": ended((c.get("state") or {}).get("terminated") or {}),
            "lastTerminated": ended((c.get("lastState") or {}).get("terminated") or {})}


def strip_node(obj: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": meta["name"], "labels": _labels(meta.get("labels"))},
            # podCIDRs: no declared egress range may overlap them (api/egress_checks.py)
            "spec": {"unschedulable": bool(spec.get("unschedulable")),
                     "podCIDRs": [_i(c) for c in spec.get("podCIDRs") or []]},
            "status": {"allocatable": _extended(status.get("allocatable"))}}


def strip_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _strip_meta(obj["metadata"]),
            "status": {"phase": (obj.get("status") or {}).get("phase")}}


def keep_whole(obj: dict[str, Any]) -> dict[str, Any]:
    meta = dict(obj["metadata"])
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}
