"""The pure part of sharding: which shard a suite is in, which live replica should hold which shard.

Argo CD shards its application controller by destination cluster (argoproj/argo-cd v3.5.1,
``controller/sharding/sharding.go``): ``legacy`` is FNV-1a of the cluster's id modulo ARGOCD_CONTROLLER_REPLICAS
(``LegacyDistributionFunction``), ``round-robin`` the cluster's rank in the id-sorted list modulo the replicas
(``RoundRobinDistributionFunction``; every cluster added or removed reshuffles the others), and
``consistent-hashing`` a consistent hash with bounded loads (``ConsistentHashingWithBoundedLoadsDistributionFunction``,
``controller/sharding/consistent/consistent.go``, load factor 1.25). The replicas' number is an environment
variable, or, with dynamic cluster distribution, the Deployment's replicas, each replica claiming a shard number in
the ``argocd-app-controller-shard-cm`` ConfigMap with a heartbeat (taken over after 3 heartbeats without one:
``GetOrUpdateShardFromConfigMap``). Two replicas may both act on one cluster during a hand-off there: the
heartbeat is a claim, not a fence.

Here (choices the issue leaves open, docs/architecture.md "Sharding"):
- the unit is the **suite**, not the member cluster: a suite's pass writes its children in two to four members at
  once, so sharding by cluster would split one pass between replicas;
- suites go to a **fixed number of shards** (FNV-1a 32 of ``namespace/name`` modulo ``shards``, Argo's legacy
  hash): a suite never changes shard when replicas come and go; only shards move;
- shards go to the **live replicas** by rendezvous hashing (highest random weight) with bounded loads: the
  (shard, replica) pairs by falling weight, each replica filled up to floor(shards / replicas), the rest one more
  each (``assign``). Deterministic for a given set of live replicas (every replica computes the same map),
  balanced within one shard, and a replica coming or going moves few shards (those it takes or had, and the few
  the bound pushes on; tests/test_shard_assign.py bounds them);
- a shard is written only by the holder of its Lease (fence.py), so a hand-off always waits for the previous
  holder's fence to close: unlike Argo's heartbeat, never two writers.
"""

from __future__ import annotations

import math
from typing import Iterable

FNV_OFFSET, FNV_PRIME = 0x811C9DC5, 0x01000193  # FNV-1a 32 (Go's hash/fnv New32a, used by Argo's legacy shards)


def fnv1a32(text: str) -> int:
    h = FNV_OFFSET
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return h


def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of the suite ``namespace/name``: fixed for a given number of shards."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    return fnv1a32(f"{namespace}/{name}") % shards


def weight(replica: str, shard: int) -> int:
    """The rendezvous weight of ``replica`` for ``shard`` (FNV-1a of both, mixed: FNV alone ranks similar
    strings alike)."""
    h = fnv1a32(f"{shard}\x00{replica}")
    h ^= h >> 16  # murmur3's finalizer: spreads FNV's low-entropy high bits
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def assign(shards: int, replicas: Iterable[str]) -> dict[int, str]:
    """Which replica should hold each shard. The (shard, replica) pairs are taken by falling weight, each shard
    to the first replica that holds fewer than floor(shards / replicas); the shards left (fewer than the
    replicas) each go to the highest-weighted replica still at that floor. Every replica ends with the floor or
    one more. Empty without replicas."""
    live = sorted(set(replicas))
    if not live:
        return {}
    floor = shards // len(live)
    load = {r: 0 for r in live}
    out: dict[int, str] = {}
    pairs = sorted(((weight(r, s), r, s) for r in live for s in range(shards)), key=lambda p: (-p[0], p[1], p[2]))
    for _, replica, shard in pairs:
        if shard not in out and load[replica] < floor:
            out[shard] = replica
            load[replica] += 1
    for shard in range(shards):
        if shard not in out:
            replica = max((r for r in live if load[r] == floor), key=lambda r: (weight(r, shard), r))
            out[shard] = replica
            load[replica] += 1
    return out


def wanted(shards: int, replicas: Iterable[str], me: str) -> set[int]:
    """The shards ``me`` should hold among ``replicas`` (``me`` counted as live: a replica deciding is alive)."""
    return {s for s, r in assign(shards, {*replicas, me}).items() if r == me}
