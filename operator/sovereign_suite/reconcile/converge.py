"""When is a live child as rendered, and how to make it so (docs/architecture.md, "Convergence").

The rule: a child is in sync when
  1. its ``sovereignsuite.io/applied-hash`` annotation equals the hash of what the operator renders now;
  2. the operator's own server-side apply entry in ``managedFields`` still holds the fields its last apply gave
     it: the digest of that entry's field set equals ``sovereignsuite.io/applied-fields``, written by that apply.
     An update that only removes a field (``kubectl label ns x key-``, a JSON-patch ``remove``, ``kubectl set env
     deploy/x FOO-``) leaves its writer no entry at all, and takes the field out of the operator's entry; an
     update that rewrites a rendered field moves it to its writer's entry. Either way the entry shrinks, and only
     an apply of the operator's can make it grow again;
  3. no write of the operator's own outside its apply is left (a create, the retained label): those fields are
     handed to the apply entry, so that the apply removes what it does not render.
Otherwise the pass applies it (server-side apply, forced): SSA removes every field the operator's manager owned
and no longer sends (a removed setting goes), and overwrites the fields it sends.

What the apply entry will hold is known before the apply: SSA gives the applier exactly the fields of the applied
configuration (structured-merge-diff's ``Updater.Apply``: the manager's set becomes the configuration's
``ToFieldSet()``), and a dry-run apply of the same configuration answers it without persisting anything. The
applied object carries the digest of that set, so an operator restarted later compares the live entry with the
annotation and needs no memory of its own, nor a request: the watch cache keeps the digest of the live entry
(cache.py), never the field sets.

Other writers: a field another manager added that the operator does not render (an OpenShift SCC annotation on a
Namespace, Reloader's or ``kubectl rollout restart``'s pod-template annotation, a MetalLB Service annotation) is
left alone, and its writer's presence is no drift. Only the fields of another writer that the operator renders
(its current entry, or what its apply will own) are handed over before an apply (``takeover_patch``, the
rewrite client-go's csaupgrade does): a field shared with another writer would otherwise survive its removal
from the render.

Why a hash and not a field-by-field compare: the compare saw only the fields still rendered, so a removed
setting stayed forever; and the hash needs nothing of the live object but its metadata, so the watch cache
keeps no spec (memory) and a converged suite costs no request at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from typing import Any

FIELD_MANAGER = "sovereign-suite-operator"
ANN_HASH = "sovereignsuite.io/applied-hash"
ANN_FIELDS = "sovereignsuite.io/applied-fields"
ANN_OWNER = "sovereignsuite.io/owner-uid"
# Where a stripped object (cache.py) keeps the digest of the operator's apply entry: no Kubernetes field has
# this name. None: the object has no such entry.
OWN_FIELDS = "ownFieldsDigest"
# Writers whose fields on the operator's children are expected (not drift): Kubernetes' own controllers.
DEFAULT_COEXISTING = frozenset({"kube-controller-manager", "kube-scheduler", "kubelet", "kube-apiserver"})
# The value an apply's dry run carries in ANN_FIELDS: a field set holds paths, never values, so the dry run
# gives the operator the same set as the apply that carries the digest.
PENDING = "pending"


def coexisting_managers() -> frozenset[str]:
    extra = os.environ.get("SOVEREIGN_SUITE_COEXISTING_MANAGERS", "")
    return DEFAULT_COEXISTING | {m.strip() for m in extra.split(",") if m.strip()}


def content_hash(obj: dict[str, Any]) -> str:
    """Hash of a rendered object, its own hash and field digest left out. Canonical JSON: key order never
    matters."""
    meta = obj.get("metadata") or {}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in (ANN_HASH, ANN_FIELDS)}
    canon = {**obj, "metadata": {**meta, "annotations": ann}}
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def stamp(obj: dict[str, Any], owner_uid: str | None) -> dict[str, Any]:
    """The object as the operator applies it: the suite's UID (unless None) and the hash of the whole object."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), **({ANN_OWNER: owner_uid} if owner_uid else {})}
    out = {**obj, "metadata": meta}
    meta["annotations"][ANN_HASH] = content_hash(out)
    return out


def with_fields_digest(obj: dict[str, Any], digest: str) -> dict[str, Any]:
    """``obj`` (stamped) carrying the digest of the field set its apply gives the operator."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), ANN_FIELDS: digest}
    return {**obj, "metadata": meta}


def own_entry(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The operator's server-side apply entry of ``managedFields`` (not a subresource's)."""
    return next((e for e in meta.get("managedFields") or [] if e.get("manager") == FIELD_MANAGER
                 and e.get("operation") == "Apply" and not e.get("subresource")), None)


def fields_digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def entry_digest(meta: dict[str, Any]) -> str | None:
    """Digest of the field set of the operator's apply entry in a full object's metadata (None: no entry)."""
    entry = own_entry(meta)
    return None if entry is None else fields_digest(entry.get("fieldsV1") or {})


def own_fields_digest(live: dict[str, Any]) -> str | None:
    """The live digest: kept by the cache in a stripped object, computed from a full one."""
    meta = live.get("metadata") or {}
    return meta[OWN_FIELDS] if OWN_FIELDS in meta else entry_digest(meta)


def foreign_entries(live: dict[str, Any], coexisting: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """``managedFields`` entries of writers other than the operator's apply (status subresource excepted)."""
    allowed = coexisting_managers() if coexisting is None else coexisting
    out = []
    for e in (live.get("metadata") or {}).get("managedFields") or []:
        if e.get("subresource") == "status":
            continue
        if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply":
            continue
        if e.get("manager") in allowed:
            continue
        out.append(e)
    return out


def out_of_sync(live: dict[str, Any] | None, desired: dict[str, Any],
                coexisting: frozenset[str] | None = None) -> str | None:
    """Why ``live`` must be applied again (None: in sync). ``desired`` is stamped."""
    if live is None:
        return "missing"
    want = desired["metadata"]["annotations"][ANN_HASH]
    ann = (live.get("metadata") or {}).get("annotations") or {}
    have = ann.get(ANN_HASH)
    if have != want:
        return "changed" if have else "not applied by this version"
    recorded = ann.get(ANN_FIELDS)
    if not recorded or recorded == PENDING:
        return "no digest of the operator's fields (applied by an older version)"
    if own_fields_digest(live) != recorded:
        return "a field of the operator's was removed or rewritten by another writer"
    own = [e for e in foreign_entries(live, coexisting) if e.get("manager") == FIELD_MANAGER]
    if own:
        return "written by the operator outside its apply (" + ", ".join(
            sorted({str(e.get("operation")) for e in own})) + ")"
    return None


# ---- field sets (FieldsV1: a tree of "f:", "k:", "v:", "i:" keys; {} or a "." child marks a path in the set) ----

def _member(node: dict[str, Any]) -> bool:
    return not node or "." in node


def _node(member: bool, children: dict[str, Any]) -> dict[str, Any] | None:
    if not children:
        return {} if member else None
    return {".": {}, **children} if member else children


def union_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Union of two FieldsV1 trees (the roots are not paths themselves)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _union(out[k], v) if k in out else v
    return out


def _union(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    children = {k: v for k, v in a.items() if k != "."}
    for k, v in b.items():
        if k != ".":
            children[k] = _union(children[k], v) if k in children else v
    return _node(_member(a) or _member(b), children) or {}


def intersect_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The paths of FieldsV1 tree ``a`` that ``b`` holds too."""
    out = {}
    for k in a.keys() & b.keys():
        node = _intersect(a[k], b[k])
        if node is not None:
            out[k] = node
    return out


def _intersect(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    children = {}
    for k in (a.keys() & b.keys()) - {"."}:
        node = _intersect(a[k], b[k])
        if node is not None:
            children[k] = node
    return _node(_member(a) and _member(b), children)


def subtract_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The paths of FieldsV1 tree ``a`` that ``b`` does not hold."""
    out = {}
    for k, v in a.items():
        node = _subtract(v, b[k]) if k in b else v
        if node is not None:
            out[k] = node
    return out


def _subtract(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    children = {}
    for k, v in a.items():
        if k == ".":
            continue
        node = _subtract(v, b[k]) if k in b else v
        if node is not None:
            children[k] = node
    return _node(_member(a) and not _member(b), children)


def takeover_patch(live: dict[str, Any], wanted: dict[str, Any] | None = None,
                   coexisting: frozenset[str] | None = None) -> list[dict[str, Any]] | None:
    """A JSON patch handing to the operator's apply entry the fields of other writers that the operator renders:
    those its apply entry holds now and ``wanted`` (what its next apply will hold), and every field of the
    operator's own writes outside its apply. Fields the operator does not render stay their writers'. None:
    nothing to hand over. ``live`` must be the full object (with managedFields); the patch fails if it changed
    meanwhile (a 422 "test failed": the caller reads it again)."""
    meta = live["metadata"]
    foreign = {id(e) for e in foreign_entries(live, coexisting)}
    current = own_entry(meta)
    ours = dict(current) if current is not None else {
        "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": live["apiVersion"],
        "fieldsType": "FieldsV1", "fieldsV1": {}, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    mine = dict(ours.get("fieldsV1") or {})
    scope = union_fields(mine, wanted or {})
    entries: list[dict[str, Any]] = []
    moved = False
    for e in meta.get("managedFields") or []:
        if e is current:
            entries.append(ours)
            continue
        if id(e) not in foreign:
            entries.append(e)
            continue
        fields = e.get("fieldsV1") or {}
        take = fields if e.get("manager") == FIELD_MANAGER else intersect_fields(fields, scope)
        if not take:
            entries.append(e)
            continue
        moved = True
        mine = union_fields(mine, take)
        rest = subtract_fields(fields, take)
        if rest:
            entries.append({**e, "fieldsV1": rest})
    if not moved:
        return None
    ours["fieldsV1"] = mine
    if current is None:
        entries.append(ours)
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
        {"op": "replace", "path": "/metadata/managedFields", "value": entries},
    ]
