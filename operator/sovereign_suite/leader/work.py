"""The operator's work under leader election: the workers and the drift loop run only while this replica leads.

Without ``--leader-elect`` the work starts at once (one process). With it, the watch caches and Kopf's watch of
the suites and clouds run on every replica (reads only: a standby that takes over has a warm cache and starts
its first passes at once), and the elector starts the workers when the Lease is ours. Leadership lost (the
renew deadline passed: the API server did not answer, or the process was stopped and resumed) ends the process
with exit code 3 once the fence is closed: everything it was doing stops at once, and Kubernetes restarts the
container as a new standby with fresh memory (client-go's users do the same: kube-controller-manager exits on
"leaderelection lost").
"""

from __future__ import annotations

import logging
import os
from typing import Callable

from .. import metrics
from ..reconcile.context import OperatorContext
from ..reconcile.kube import Kube
from ..reconcile.transport import Deadlines
from ..reconcile.worker import start
from .elector import LeaderElector
from .lease import LeaseStore
from .timing import LeaseTiming

log = logging.getLogger("sovereign_suite.leader")

EXIT_LOST = 3  # the process's exit code when leadership is lost (the container restarts as a standby)
LEASE_AGENT = "sovereign-suite-leader-election"  # the Lease's requests in the audit log, apart from the work


def timing_of(ctx: OperatorContext) -> LeaseTiming:
    s = ctx.settings
    return LeaseTiming(s.lease_duration, s.renew_deadline, s.retry_period)


def lease_kube(kube: Kube, identity: str, timing: LeaseTiming) -> Kube:
    """The Lease's own client: no retry inside a request (the elector decides when to try again), and no request
    waits longer than the renew deadline (a renewal passes its own, shorter, timeout)."""
    return Kube(kube.api, max_retries=0, user_agent=f"{LEASE_AGENT}/{identity}",
                deadlines=Deadlines(connect=timing.renew_deadline, read=timing.renew_deadline, watch=0))


def begin(ctx: OperatorContext, exit_process: Callable[[int], None] = os._exit) -> None:
    """Start the work now, or campaign for the Lease and start it when leading (called once the caches synced)."""
    if not ctx.settings.leader_elect:
        metrics.LEADER.set(1)
        start(ctx)
        return
    timing = timing_of(ctx)
    namespace = ctx.settings.lease_namespace or ctx.settings.operator_namespace
    identity = ctx.identity
    store = LeaseStore(lease_kube(ctx.kube, identity, timing), namespace, ctx.settings.lease_name)

    def started() -> None:
        metrics.LEADER.set(1)
        log.info("leading: starting %d workers", ctx.settings.workers)
        for key in ctx.suite_keys():  # the previous leader's queue is gone: every suite passes once
            ctx.enqueue(key, "leader")
        for ft in ctx.finetunes.keys():  # and every FineTune
            ctx.enqueue_finetune(ft)
        start(ctx)

    def stopped(reason: str) -> None:
        metrics.LEADER.set(0)
        if ctx.stop.is_set():  # a graceful stop (Kopf's cleanup): nothing more to do
            return
        log.error("leadership lost (%s): no more writes; exiting with %d to restart as a standby", reason,
                  EXIT_LOST)
        ctx.stop.set()
        ctx.queue.shutdown()
        logging.shutdown()
        exit_process(EXIT_LOST)

    metrics.LEADER.set(0)
    ctx.elector = LeaderElector(store, identity, timing, ctx.leadership, started, stopped)
    ctx.elector.start()
