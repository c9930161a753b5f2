"""The operator's work when sharded (``run --shards N``): the workers run on every replica at once, each pass
only for a suite whose shard this replica holds (worker.process asks ``OperatorContext.owns``), every write
fenced by that shard's Lease (fence.py). A shard gained enqueues its suites (the previous holder's queue is gone);
a shard lost closes its fence at once, and its suites' passes are skipped from then on.
"""

from __future__ import annotations

import logging

from .. import metrics
from ..leader.work import lease_kube, timing_of
from ..reconcile.context import OperatorContext
from ..reconcile.worker import start
from .coordinator import Coordinator

log = logging.getLogger("sovereign_suite.shard")


def begin_sharded(ctx: OperatorContext) -> Coordinator:
    assert ctx.shards is not None, "run --shards sets the shard fence"
    timing = timing_of(ctx)
    namespace = ctx.settings.lease_namespace or ctx.settings.operator_namespace

    def gained(shard: int) -> None:
        keys = [k for k in ctx.suite_keys() if ctx.shards.shard(k) == shard]
        log.info("shard %d: held by %s, %d suite(s) pass", shard, ctx.identity, len(keys))
        for key in keys:
            ctx.enqueue(key, "shard")
            ctx.enqueue_finetunes(key)  # the FineTunes of its suites (fenced by the suite's shard)

    metrics.LEADER.set(0)  # no replica leads all the work; sovereign_suite_shards_held says what each does
    start(ctx)  # the workers skip what is not ours; a shard gained enqueues its suites
    coordinator = Coordinator(lease_kube(ctx.kube, ctx.identity, timing), namespace, ctx.settings.lease_name,
                              ctx.identity, timing, ctx.shards, gained)
    ctx.elector = coordinator  # stopped first by ctx.shutdown(): fences closed, Leases released
    coordinator.start()
    return coordinator
