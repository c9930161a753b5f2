"""When is a live child as rendered, and how to make it so (docs/architecture.md, "Convergence").

The rule: a child is in sync when
  1. its ``sovereignsuite.io/applied-hash`` annotation equals the hash of what the operator renders now, and
  2. no other writer owns a field of it: every ``managedFields`` entry outside the status subresource is the
     operator's own server-side apply entry, or a controller allowed to coexist (the controller manager writes
     a Deployment's revision annotation, a PVC's binding).
Otherwise the pass applies it (server-side apply, forced): SSA removes every field the operator's manager owned
and no longer sends (a removed setting goes), and overwrites the fields it sends. A field another writer
added by hand is first handed over to the operator's manager (``takeover_patch``, the same rewrite as
client-go's csaupgrade), so that the apply removes it too.

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
ANN_OWNER = "sovereignsuite.io/owner-uid"
# Writers whose fields on the operator's children are expected (not drift): Kubernetes' own controllers.
DEFAULT_COEXISTING = frozenset({"kube-controller-manager", "kube-scheduler", "kubelet", "kube-apiserver"})


def coexisting_managers() -> frozenset[str]:
    extra = os.environ.get("SOVEREIGN_SUITE_COEXISTING_MANAGERS", "")
    return DEFAULT_COEXISTING | {m.strip() for m in extra.split(",") if m.strip()}


def content_hash(obj: dict[str, Any]) -> str:
    """Hash of a rendered object, its own hash annotation left out. Canonical JSON: key order never matters."""
    meta = obj.get("metadata") or {}
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if k != ANN_HASH}
    canon = {**obj, "metadata": {**meta, "annotations": ann}}
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def stamp(obj: dict[str, Any], owner_uid: str | None) -> dict[str, Any]:
    """The object as the operator applies it: the suite's UID (unless None) and the hash of the whole object."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), **({ANN_OWNER: owner_uid} if owner_uid else {})}
    out = {**obj, "metadata": meta}
    meta["annotations"][ANN_HASH] = content_hash(out)
    return out


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
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(ANN_HASH)
    if have != want:
        return "changed" if have else "not applied by this version"
    foreign = foreign_entries(live, coexisting)
    if foreign:
        return "edited by " + ", ".join(sorted({f"{e.get('manager')} ({e.get('operation')})" for e in foreign}))
    return None


def union_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Union of two FieldsV1 trees (JSON objects whose leaves are {})."""
    out = dict(a)
    for k, v in b.items():
        out[k] = union_fields(out[k], v) if k in out and isinstance(out[k], dict) and isinstance(v, dict) else (
            out.get(k, v))
    return out


def takeover_patch(live: dict[str, Any], coexisting: frozenset[str] | None = None) -> list[dict[str, Any]] | None:
    """A JSON patch handing the fields of foreign writers to the operator's apply entry (None: nothing to do).
    ``live`` must be the full object (with managedFields); the patch fails if it changed meanwhile."""
    meta = live["metadata"]
    foreign = foreign_entries(live, coexisting)
    if not foreign:
        return None
    ids = {id(e) for e in foreign}
    entries = [dict(e) for e in meta.get("managedFields") or [] if id(e) not in ids]
    ours = next((e for e in entries if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"
                 and not e.get("subresource")), None)
    if ours is None:
        ours = {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": live["apiVersion"],
                "fieldsType": "FieldsV1", "fieldsV1": {},
                "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        entries.append(ours)
    fields = dict(ours.get("fieldsV1") or {})
    for e in foreign:
        fields = union_fields(fields, e.get("fieldsV1") or {})
    ours["fieldsV1"] = fields
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
        {"op": "replace", "path": "/metadata/managedFields", "value": entries},
    ]
