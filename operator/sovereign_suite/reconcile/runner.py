"""``sovereign-suite run``: the operator in the foreground."""

from __future__ import annotations

import ctypes
import logging
import os

from .credentials import hub_client


M_ARENA_MAX = -8  # glibc's malloc.h
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before any thread starts. glibc gives threads their own arenas (up to 8 per
    core) so that they can allocate at the same time; the operator's threads (a watch per kind and cluster,
    about 20 per member cluster, and its workers) run Python, which allocates under the GIL, one at a time, so
    the extra arenas buy nothing and each keeps freed memory of its own: with four members they held 26 MiB
    (docs/performance.md). ``MALLOC_ARENA_MAX`` in the environment still wins. False where there is no
    glibc (nothing to tune)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False


def leader_settings(args) -> dict:
    """The leader-election settings of ``run``'s flags; refused (InputError naming the flag) when the timings
    break client-go's rules (leader/timing.py)."""
    from ..api.validation import InputError, Problem
    from ..leader.timing import LeaseTiming

    shards = getattr(args, "shards", 0) or 0
    if shards < 0:
        raise InputError([Problem("--shards", f"must be 0 (off) or a number of shards, not {shards}")])
    if shards and getattr(args, "leader_elect", False):
        raise InputError([Problem("--shards", "not with --leader-elect: sharded replicas all work, each on the "
                                  "shards it holds; leader election makes one replica do all of it")])
    if not getattr(args, "leader_elect", False) and not shards:
        return {}
    timing = LeaseTiming(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                         args.leader_elect_retry_period)
    problems = timing.problems()
    if problems:
        raise InputError([Problem("--leader-elect-lease-duration/--leader-elect-renew-deadline/"
                                  "--leader-elect-retry-period", p) for p in problems])
    if shards:
        return dict(shards=shards, lease_name=args.leader_elect_resource_name,
                    lease_namespace=args.leader_elect_resource_namespace or "", lease_duration=timing.lease_duration,
                    renew_deadline=timing.renew_deadline, retry_period=timing.retry_period)
    return dict(leader_elect=True, lease_name=args.leader_elect_resource_name,
                lease_namespace=args.leader_elect_resource_namespace or "", lease_duration=timing.lease_duration,
                renew_deadline=timing.renew_deadline, retry_period=timing.retry_period)


def main(args) -> int:
    from .kopf_import import kopf
    from prometheus_client import start_http_server

    from . import handlers  # noqa: F401 - registers the Kopf handlers
    from ..leader.elector import Leadership, new_identity
    from .context import OperatorContext, Settings
    from .kube import USER_AGENT, Kube

    arenas_capped = limit_malloc_arenas()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(tuple(args.namespace or ()), tuple(getattr(args, "local_cloud", None) or ()),
                                 drift_interval=getattr(args, "drift_interval", None),
                                 operator_namespace=getattr(args, "operator_namespace", None),
                                 member_secrets_namespace=getattr(args, "member_secrets_namespace", None),
                                 **leader_settings(args))
    leadership, identity, user_agent, fence = Leadership.always(), "", USER_AGENT, None
    if settings.leader_elect:
        # every write checks the fence; the replica's identity in its user agent tells the replicas apart in the
        # audit log (the field manager of creates and patches stays the part before "/": USER_AGENT)
        leadership, identity = Leadership(), new_identity()
        user_agent, fence = f"{USER_AGENT}/{identity}", leadership.check
    shard_fence = None
    if settings.shards:
        # sharded: the same identity in the user agent; every write checks the Lease of its suite's shard
        from ..shard.fence import ShardFence

        shard_fence, identity = ShardFence(settings.shards), new_identity()
        user_agent, fence = f"{USER_AGENT}/{identity}", shard_fence.check
    ctx = OperatorContext(Kube(hub_client(), discovery_ttl=settings.discovery_interval, user_agent=user_agent,
                               fence=fence), settings, leadership=leadership)
    ctx.identity = identity
    ctx.shards = shard_fence
    start_http_server(args.metrics_port)
    logging.getLogger("sovereign_suite").info(
        "metrics on :%d/metrics, liveness on :%d/healthz, %d workers%s; %s", args.metrics_port,
        args.liveness_port, settings.workers, f", {MALLOC_ARENAS} malloc arenas" if arenas_capped else "",
        f"pull mode, local clouds: {', '.join(settings.local_clouds)}" if settings.local_clouds
        else f"push mode (a NationalCloud with cluster: member is a member cluster; kubeconfig Secrets read in "
        f"{settings.member_secrets} only)")
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace or [],
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz",
        memo=kopf.Memo(ctx=ctx),
    )
    return 0
