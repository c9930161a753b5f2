"""Migration Jobs that held-back children wait for (``sovereignsuite.io/after-job``): which are Complete, and what
to do with a Failed one (report it, delete it after a backoff so that the next pass runs it again)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from . import observe
from .apply import ANN_AFTER_JOB
from .kube import ApiError
from .problems import ObjectKey, Problem, degraded, from_api_error


def seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return 0.0
    return (datetime.now(timezone.utc) - then).total_seconds()


def migration_jobs(ctx: Any, mem: Any, kube: Any, live: dict[ObjectKey, dict[str, Any]],
                   desired: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], list[Problem], float | None]:
    """(namespace, name) of the Complete Jobs, the problems of Failed ones, and when to look again. ``kube`` and
    ``live``: the cluster the Jobs run in; ``mem``: the suite's memory (attempts per Job)."""
    wanted = {(o["metadata"]["namespace"], o["metadata"]["annotations"][ANN_AFTER_JOB]) for o in desired
              if (o["metadata"].get("annotations") or {}).get(ANN_AFTER_JOB)}
    ready, problems, requeue = set(), [], None
    for ns, name in sorted(wanted):
        key = ObjectKey("batch", "Job", ns, name)
        job = live.get(key)
        state = observe.job_state(job) if job else "Missing"
        if state == "Complete":
            ready.add((ns, name))
            mem.job_attempts.pop(name, None)
        elif state == "Failed":
            attempt = mem.job_attempts.get(name, 0)
            delay = min(ctx.settings.job_retry_cap, ctx.settings.job_retry_base * 2 ** attempt)
            failed = next((c for c in job["status"]["conditions"] if c.get("type") == "Failed"), {})
            left = delay - seconds_since(failed.get("lastTransitionTime"))
            problems.append(degraded("MigrationFailed", f"failed ({failed.get('reason') or 'Failed'}: "
                                     f"{failed.get('message') or ''}); run again "
                                     f"{'now' if left <= 0 else f'in {left:.0f} s'} (attempt {attempt + 1})", key))
            if left <= 0:
                try:
                    kube.delete({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns}})
                    live.pop(key, None)
                    mem.job_attempts[name] = attempt + 1
                    requeue = 1.0
                except ApiError as err:
                    problems.append(from_api_error(err, key))
            else:
                requeue = max(1.0, left) if requeue is None else min(requeue, max(1.0, left))
    return ready, problems, requeue
