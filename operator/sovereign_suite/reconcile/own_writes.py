"""What the operator writes on its own resources (SovereignSuites: worker.py, FineTunes: finetune_worker.py):
its finalizer, and the status, only when it changed. A status write is remembered (``last_status``,
``status_version``) until the watch shows it: the next pass starts from it (``with_own_status``), never from the
status before it, which would forget what the last pass found (e.g. the cluster a tenant was applied to:
moves.py)."""

from __future__ import annotations

from typing import Any, Protocol

from .kube import ApiError, Kube
from .status import same_status


class StatusMemory(Protocol):
    last_status: dict[str, Any] | None  # the status last written
    status_version: str  # the resourceVersion that write made


def caught_up(obj: dict[str, Any] | None, rv: str) -> bool:
    """Whether ``obj`` (as a watch delivered it) is at resourceVersion ``rv`` or after it."""
    if obj is None:
        return False
    have = obj["metadata"].get("resourceVersion", "")
    try:
        return int(have) >= int(rv)
    except ValueError:
        return have == rv


def with_own_status(body: dict[str, Any] | None, mem: StatusMemory) -> dict[str, Any] | None:
    """The object as a pass must see it: with the status this operator wrote last when the watch has not shown
    that write yet."""
    if body is None or mem.last_status is None or not mem.status_version or caught_up(body, mem.status_version):
        return body
    return {**body, "status": mem.last_status}


def add_finalizer(kube: Kube, resource: tuple[str, str], body: dict[str, Any], finalizer: str
                  ) -> dict[str, Any] | None:
    """``body`` with ``finalizer`` added (the API server's answer); None when the object is gone or changed
    meanwhile (its event brings it back)."""
    meta = body["metadata"]
    try:
        return kube.merge_patch(*resource, meta["name"], meta["namespace"], {"metadata": {
            "finalizers": list(meta.get("finalizers") or []) + [finalizer],
            "resourceVersion": meta["resourceVersion"]}})
    except ApiError as err:
        if err.status in (404, 409):
            return None
        raise


def write_status(kube: Kube, resource: tuple[str, str], body: dict[str, Any], mem: StatusMemory,
                 status: dict[str, Any], drop_missing: bool = False) -> None:
    """A merge patch of the status, only when it changed; ``drop_missing``: a field the new status no longer has
    is removed. A 404 (the object is gone) or 409 is left to the object's next event."""
    old = body.get("status") or {}
    if same_status(old, status) or same_status(mem.last_status, status):
        return
    patch = {**{k: None for k in old if k not in status}, **status} if drop_missing else status
    meta = body["metadata"]
    try:
        written = kube.merge_patch(*resource, meta["name"], meta["namespace"], {"status": patch}, sub="status")
    except ApiError as err:
        if err.status not in (404, 409):
            raise
        return
    mem.last_status = status
    mem.status_version = ((written or {}).get("metadata") or {}).get("resourceVersion", "")
