"""Does a tenant namespace hold anything the operator did not render? Asked before the namespace is deleted
(prune.py): deleting a namespace deletes everything in it, so it is kept on any doubt.

Everything namespaced the API server serves and lets list is asked, as ``kubectl api-resources --namespaced
--verbs=list`` finds it (discovery of every group's preferred version), not only the kinds the operator renders:
a user's Pod or CronJob, a CloudNativePG Backup, a VolumeSnapshot, an object of any CRD all keep the namespace.
An object is the suite's when it carries the suite's labels, or when an owner reference leads to one that is
(the ReplicaSets, Pods, EndpointSlices and ControllerRevisions of its workloads, what CloudNativePG made for its
Cluster). A group that cannot be discovered, or a kind that cannot be listed (403, 5xx, no answer), is a doubt:
the namespace is kept and the answer says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..components.base import LABEL_SUITE, LABEL_SUITE_NS
from .kube import ApiError, Kube
from .problems import SuiteKey

# Objects Kubernetes itself puts in every namespace: never a reason to keep one.
SYSTEM_OBJECTS = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
# Records about objects, not content: Events (core and events.k8s.io) go with what they describe.
RECORDS = {("", "events"), ("events.k8s.io", "events")}


@dataclass
class Content:
    foreign: list[str] = field(default_factory=list)  # "Kind/name" of objects that are not the suite's
    doubts: list[str] = field(default_factory=list)  # what could not be discovered or listed, with the reason
    failed: bool = False  # a doubt that may pass by itself (not a refusal): worth asking again


def _group_versions(kube: Kube) -> list[str]:
    """Every group's preferred version ("v1" for the core group), as kubectl api-resources reads them."""
    versions = list(kube.request("GET", "/api", what="discovery /api").get("versions") or ["v1"])
    for g in kube.request("GET", "/apis", what="discovery /apis").get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("groupVersion")
        if preferred:
            versions.append(preferred)
    return versions


def listable_kinds(kube: Kube) -> tuple[list[tuple[str, str, str]], list[str], bool]:
    """(apiVersion, kind, resource) of every namespaced resource that can be listed; the groups that could not
    be discovered; whether one of those failures may pass by itself."""
    found, doubts, failed = [], [], False
    for gv in _group_versions(kube):
        base = f"/api/{gv}" if "/" not in gv else f"/apis/{gv}"
        try:
            doc = kube.request("GET", base, what=f"discovery {gv}")
        except ApiError as err:
            doubts.append(f"cannot discover {gv}: {err.status} {err.reason}: {err.message}".strip())
            failed = failed or err.status != 403
            continue
        group = gv.rsplit("/", 1)[0] if "/" in gv else ""
        for r in doc.get("resources") or []:
            if "/" in r["name"] or not r.get("namespaced") or "list" not in (r.get("verbs") or []):
                continue
            if (group, r["name"]) in RECORDS:
                continue
            found.append((gv, r["kind"], r["name"]))
    return found, doubts, failed


def namespace_content(kube: Kube, namespace: str, suite: SuiteKey, known_uids: set[str]) -> Content:
    """What ``namespace`` holds that is not the suite's. ``known_uids``: the UIDs of the suite's children there
    (deleted ones included: what they own may still be going)."""
    out = Content()
    try:
        kinds, out.doubts, out.failed = listable_kinds(kube)
    except ApiError as err:
        return Content([], [f"cannot discover the served APIs: {err.status} {err.reason}: {err.message}"],
                       err.status != 403)
    objects: list[tuple[str, dict[str, Any]]] = []
    for api_version, kind, resource in kinds:
        try:
            objects += [(kind, o) for o in kube.list(api_version, kind, namespace=namespace)]
        except ApiError as err:
            out.doubts.append(f"cannot list {resource}.{api_version}: {err.status} {err.reason}".strip())
            out.failed = out.failed or err.status != 403
    ours = set(known_uids)
    rest = []
    for kind, o in objects:
        meta = o["metadata"]
        labels = meta.get("labels") or {}
        if (kind, meta["name"]) in SYSTEM_OBJECTS or o.get("type") == "kubernetes.io/service-account-token":
            continue
        if (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) == (suite.namespace, suite.name):
            ours.add(meta.get("uid") or "")
            continue
        rest.append((kind, o))
    changed = True
    while changed:  # owner chains: Deployment -> ReplicaSet -> Pod, CNPG Cluster -> its Secrets and Pods
        owned = [(k, o) for k, o in rest
                 if any(r.get("uid") in ours for r in o["metadata"].get("ownerReferences") or [])]
        ours |= {o["metadata"].get("uid") or "" for _, o in owned}
        rest = [(k, o) for k, o in rest if all(o is not x for _, x in owned)]
        changed = bool(owned)
    out.foreign = [f"{kind}/{o['metadata']['name']}" for kind, o in rest]
    return out
