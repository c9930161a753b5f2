"""The pure rules of a hand-off: which replicas are alive (their heartbeat Leases), which shard campaigns to start
and which to stop.

A replica's heartbeat is a Lease of its own (``sovereign-suite-replica-<id>``) it renews every retry period. As
for the leader's Lease (leader/timing.py), no replica trusts the times written in it: a peer is alive while its
record changed within the record's ``leaseDurationSeconds`` on the observer's own clock. A heartbeat only decides
who *should* hold a shard (assign.py); who *may write* it is the shard's Lease alone (fence.py), so a wrong view
of the peers (a heartbeat late, a replica partitioned) costs balance, never safety.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..leader.timing import Observation, Record, expired, observe


class Peers:
    """The replicas' heartbeats as this replica observed them."""

    def __init__(self) -> None:
        self._seen: dict[str, Observation] = {}

    def saw(self, records: dict[str, Record], now: float) -> None:
        """The heartbeat Leases read at ``now`` (by Lease name); a Lease gone is forgotten."""
        self._seen = {name: observe(self._seen.get(name), rec, now) for name, rec in records.items()}

    def alive(self, now: float) -> set[str]:
        """The identities of the replicas whose heartbeat changed within its lease duration (a released heartbeat,
        holder empty, is a replica that stopped)."""
        return {o.record.holder for o in self._seen.values() if o.record.holder and not expired(o, now)}


    def stale(self, now: float, grace: float) -> set[str]:
        """The heartbeat Leases (names) unchanged for their lease duration and ``grace`` seconds more: replicas
        gone without releasing (SIGKILLed, evicted), whose Lease a live replica deletes (each process life has a
        Lease of its own: without this they would pile up)."""
        return {name for name, o in self._seen.items()
                if now >= o.seen_at + o.record.duration + grace}


@dataclass(frozen=True)
class Moves:
    start: frozenset[int]  # campaign for these shards (they are ours to hold, and no campaign runs)
    stop: frozenset[int]  # give these up: close their fence, release their Lease if held


def moves(wanted: set[int], running: set[int]) -> Moves:
    """``running``: the shards with a campaign or a holding in progress on this replica. A shard no longer wanted
    is stopped (fence first, then the Lease released: its new holder takes it within a retry period or two); a
    wanted shard without a campaign gets one (it waits, as any candidate, for the current holder's Lease to be
    released or to expire: the previous holder's fence is closed by then)."""
    return Moves(frozenset(wanted - running), frozenset(running - wanted))
