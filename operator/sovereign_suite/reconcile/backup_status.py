"""A tenant's last successful backup, for the suite's status (``status.tenants[].backup``) and the metrics.

How the operator learns it, without giving the backup pod any Kubernetes credentials:

- **when**: the backup CronJob's ``status.lastSuccessfulTime``, which the CronJob controller sets when a Job it
  made completes (the cache keeps it: strip.py). A run that failed never moves it (the program exits non-zero and
  leaves no manifest);
- **how big, which backup**: the program writes ``{"id": ..., "bytes": ...}`` to its container's termination
  message file (``terminationMessagePolicy: File``: only what the program writes, never a log tail). The operator
  lists the tenant's backup pods (label ``sovereignsuite.io/backup=true``) once per new ``lastSuccessfulTime``
  (one request a backup, not one a pass: the result is kept in the status and reused while the time is the
  same), and parses the newest succeeded one strictly (an id of the program's format, an integer).

``enabledSince`` is the CronJob's creation time: until a first success, the alert measures from it (a tenant
whose backups never succeeded is alerted, not silent).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

from ..api import cron
from ..components.backup import LABEL_BACKUP, NAME as CONTAINER
from .kube import ApiError

log = logging.getLogger(__name__)
ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")  # backup/program.py ID_FORMAT
MAX_BYTES = 1 << 60


def parse_message(message: str | None) -> tuple[str, int] | None:
    """(id, bytes) from the program's termination message, or None when it is anything else."""
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"id", "bytes"}:
        return None
    bid, size = data["id"], data["bytes"]
    if not isinstance(bid, str) or not ID_RE.match(bid) or type(size) is not int or not 0 <= size < MAX_BYTES:
        return None
    return bid, size


def newest_success(pods: list[dict[str, Any]]) -> tuple[str, int] | None:
    """(id, bytes) of the newest succeeded backup container among ``pods``."""
    best: tuple[str, str, int] | None = None  # (finishedAt, id, bytes)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") != "Succeeded":
            continue
        for c in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (c.get("state") or {}).get("terminated") or {}
            if c.get("name") != CONTAINER or term.get("exitCode") != 0:
                continue
            parsed = parse_message(term.get("message"))
            if parsed and (best is None or (term.get("finishedAt") or "", parsed[0]) > best[:2]):
                best = (term.get("finishedAt") or "", *parsed)
    return (best[1], best[2]) if best else None


def backup_entry(schedule: str, cronjob: dict[str, Any] | None, old: dict[str, Any] | None,
                 list_pods: Callable[[str], list[dict[str, Any]]], namespace: str) -> dict[str, Any]:
    """The tenant's ``backup`` status entry. ``old``: the entry the status holds now; ``list_pods(selector)``:
    the tenant namespace's pods with that label selector (called only for a success not recorded yet)."""
    entry: dict[str, Any] = {"schedule": schedule, "intervalSeconds": cron.longest_gap(schedule) or 0}
    if cronjob is None:
        return entry  # not applied yet
    meta = cronjob.get("metadata") or {}
    if meta.get("creationTimestamp"):
        entry["enabledSince"] = meta["creationTimestamp"]
    last = (cronjob.get("status") or {}).get("lastSuccessfulTime")
    if not last:
        return entry
    entry["lastSuccessTime"] = last
    old = old or {}
    if old.get("lastSuccessTime") == last and "sizeBytes" in old:
        entry.update({k: old[k] for k in ("lastBackupId", "sizeBytes") if k in old})
        return entry
    try:
        found = newest_success(list_pods(f"{LABEL_BACKUP}=true"))
    except ApiError as err:  # the size is a detail: the time alone still says the backup succeeded (logged)
        log.warning("backup pods of %s could not be listed: %s", namespace, err)
        found = None
    if found:
        entry["lastBackupId"], entry["sizeBytes"] = found
    return entry
