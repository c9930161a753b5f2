"""Deleting a suite: its children in every cluster, following ``deletionPolicy`` (prune.py), before the
finalizer goes (worker.py). Each cluster is cleaned on its own threads (pools.py): a member that does not answer
holds back only its own part, and the finalizer stays while anything of the suite may remain there."""

from __future__ import annotations

import threading
from typing import Any

from .conditions import Findings, conditions
from .context import OperatorContext
from .finetune_serving import finetunes_of
from .kube import ApiError
from .pipeline import Pass, PassResult
from .pools import each_cluster
from .problems import UNREACHABLE, Problem, degraded, from_api_error
from .prune import Pruner
from .status import build_status
from .targets import Target
from .views import on_cluster


def cleanup(ctx: OperatorContext, body: dict[str, Any]) -> PassResult:
    """On deletion: delete the suite's children in every cluster following ``deletionPolicy``. The result's
    problems name every child that could not be deleted, and every member cluster that does not answer (its
    children may still be there); the worker keeps the finalizer until there are none."""
    p = Pass(ctx, body)
    spec = body.get("spec") or {}
    if spec.get("paused"):
        # Paused means hands off, deletion included (like a suspended Flux Kustomization): the finalizer goes,
        # every child stays as it is (docs/architecture.md).
        return PassResult(status=body.get("status") or {}, complete=True)
    retain = (spec.get("deletionPolicy") or "Retain") == "Retain"
    if not retain:
        waiting_for = finetunes_of(p.key, ctx.finetunes.bodies())
        if waiting_for:
            return _wait_for_finetunes(p, waiting_for)
    problems: list[Problem] = []
    events: list[tuple[str, str, str]] = []
    writes = 0
    homes: set[str] = set()
    if not ctx.settings.local_clouds:  # the members of the suite's clouds, built again after a restart
        for tenant in spec.get("tenants") or []:
            cloud = p.clouds.get(tenant.get("cloud") or "")
            if cloud is not None and cloud.spec.cluster == "member":
                found = ctx.members.target(cloud)
                if isinstance(found, Problem):
                    problems.append(degraded(found.reason, f"waiting for the member cluster of NationalCloud "
                                             f"{cloud.name}: {found.message}"))
                else:
                    homes.add(found.name)

    def waiting(target: Target, problem: Problem | None) -> tuple[list[Problem], list[tuple[str, str, str]], int]:
        problem = problem or degraded(UNREACHABLE, "does not answer")
        return [degraded(problem.reason, f"waiting for {target} to delete the suite's children: {problem.message}")
                ], [], 0

    def clean(target: Target, cancel: threading.Event) -> tuple[list[Problem], list[tuple[str, str, str]], int]:
        """One cluster's part, on its writer thread (the clusters are cleaned at the same time)."""
        live = target.cache.children(p.key)
        pruner = Pruner(target, p.key, p.uid, live, cancel=cancel)
        ours = [o for o in live.values() if pruner.ours(o)]
        problem = target.problem()
        if problem is None:
            unsynced = target.cache.unsynced()
            if unsynced and (ours or target.name in homes or not target.is_member):
                # an unlisted cache looks empty: the finalizer would go and the children stay behind
                return [degraded("WatchFailed", f"waiting for the watches of {target} to list before deleting the "
                                 f"suite's children there (not listed yet: "
                                 f"{', '.join(repr(i) for i in unsynced[:3])})")], [], 0
            try:
                pruner.delete(ours, retain=retain)
            except ApiError as err:  # a namespace's content could not be listed
                pruner.problems.append(from_api_error(err, None))
            problem = target.problem() if target.unanswered() else None  # stopped answering meanwhile
        if problem is not None and (ours or target.name in homes):
            return waiting(target, problem)[0], [], pruner.writes
        found = on_cluster(target, pruner.problems)
        return found, pruner.events + [("Warning", pr.reason, f"cannot delete {pr}") for pr in found], pruner.writes

    for found, said, wrote in each_cluster(ctx.targets(), lambda t: t, clean, lambda t: waiting(t, t.problem())):
        problems += found
        events += said
        writes += wrote
    verdict = conditions(Findings(p.generation, tuple(problems), deleting=True))
    status = build_status(p.old_status, verdict.conditions, p.generation, None, [], None)
    return PassResult(status=status, events=events, problems=problems, writes=writes, complete=not problems)


WAITING_FOR_FINETUNES = "WaitingForFineTunes"


def _wait_for_finetunes(p: Pass, names: list[str]) -> PassResult:
    """deletionPolicy Delete and FineTunes still name the suite: nothing is deleted yet. Their training Jobs live
    in the tenant namespaces (which would be kept, holding objects that are not the suite's), and deleting their
    artifacts needs the suite's storage and credentials: they go first (docs/llm-finetuning.md, "Deleting a
    suite that has FineTunes"). The last one's deletion enqueues the suite again."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    problem = degraded(WAITING_FOR_FINETUNES, f"deletionPolicy Delete: waiting for the FineTunes that name this "
                       f"suite to be deleted first ({shown}): their training Jobs are in the tenant namespaces, "
                       "and their artifacts are deleted with the suite's storage; nothing of the suite is "
                       "deleted before")
    verdict = conditions(Findings(p.generation, (problem,), deleting=True))
    status = build_status(p.old_status, verdict.conditions, p.generation, None, [], None)
    return PassResult(status=status, events=[("Warning", WAITING_FOR_FINETUNES, problem.message)],
                      problems=[problem], complete=False)
