"""The sharded replica's loop: its heartbeat, its view of the live replicas, and one campaign per shard it should
hold (a ``LeaderElector`` on the shard's Lease, leader/elector.py: the same rules, timings and fence as the
single leader's).

Every retry period the loop renews this replica's heartbeat Lease, lists the others' (handoff.Peers), computes
which shards it should hold (assign.wanted) and starts or stops campaigns (handoff.moves). A campaign started
waits, as any candidate, until the shard's Lease is free, released or expired: the previous holder's fence is
closed by then (leader/timing.py). A campaign stopped closes its fence, then releases the Lease, so that the
replica it was handed to takes it within a retry period or two. A shard whose holding is lost (its renew deadline
passed) closes its fence at once; the loop starts a new campaign for it if it is still wanted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

from .. import metrics
from ..leader.elector import LeaderElector, Leadership
from ..leader.lease import LEASE, LeaseStore, is_conflict, record_of
from ..leader.timing import LeaseTiming, Observation, Record, observe
from ..reconcile.kube import ApiError, Kube
from .assign import wanted
from .fence import ShardFence
from .handoff import Peers, moves

log = logging.getLogger("sovereign_suite.shard")

HEARTBEAT = "shard-heartbeat"  # the heartbeat Leases' component label
SHARD = "shard"
STALE_GRACE = 6  # lease durations after its expiry that a dead replica's heartbeat is deleted


def heartbeat_name(lease_name: str, identity: str) -> str:
    """A replica's heartbeat Lease: the identity's UUID part (a DNS label), unique per process life."""
    return f"{lease_name}-replica-{identity.rsplit('_', 1)[-1][:36] or uuid.uuid4()}"


def shard_lease_name(lease_name: str, shard: int) -> str:
    return f"{lease_name}-shard-{shard}"


class Coordinator:
    def __init__(self, kube: Kube, namespace: str, lease_name: str, identity: str, timing: LeaseTiming,
                 fence: ShardFence, on_gained: Callable[[int], None], clock: Callable[[], float] = time.monotonic):
        self.kube, self.namespace, self.lease_name = kube, namespace, lease_name
        self.identity, self.timing, self.fence, self.on_gained, self.clock = identity, timing, fence, on_gained, clock
        self.heartbeat = LeaseStore(kube, namespace, heartbeat_name(lease_name, identity), component=HEARTBEAT)
        self._heartbeat_rv = ""
        self.peers = Peers()
        self.campaigns: dict[int, LeaderElector] = {}
        self.shards_seen: dict[int, Observation] = {}  # every shard's Lease as this loop saw it (timing.observe)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # a step and stop() never interleave (no campaign started after a stop)
        self._thread: threading.Thread | None = None

    # ---- the loop -------------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="shard-coordinator", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        log.info("sharded: %d shards, replica %s (lease %g s, renew deadline %g s, retry %g s)", self.fence.shards,
                 self.identity, self.timing.lease_duration, self.timing.renew_deadline, self.timing.retry_period)
        while not self._stop.is_set():
            try:
                self.step()
            except ApiError as err:  # the API server did not answer: the campaigns' own deadlines keep us safe
                log.warning("sharding: %s", err)
            self._stop.wait(self.timing.retry_period)

    def step(self) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._step()

    def _step(self) -> None:
        self._beat()
        now = self.clock()
        beats, shards = self._leases()
        self.peers.saw({name: rec for name, (rec, _) in beats.items()}, now)
        self.shards_seen = {s: observe(self.shards_seen.get(s), rec, now) for s, rec in shards.items()}
        alive = self.peers.alive(now)
        for name in sorted(self.peers.stale(now, STALE_GRACE * self.timing.lease_duration)):
            self._delete_heartbeat(name, beats[name][1])
        mine = wanted(self.fence.shards, alive, self.identity)
        running = {s for s, e in self.campaigns.items() if not e.done}
        todo = moves(mine, running)
        for shard in sorted(todo.stop):
            log.info("shard %d: handed over (live replicas: %d)", shard, len(alive | {self.identity}))
            self.campaigns.pop(shard).stop(release=True)
        for shard in sorted(todo.start):
            self._campaign(shard)
        metrics.SHARDS_HELD.set(len(self.fence.held()))

    def stop(self, release: bool = True) -> None:
        """Every held shard's fence closes and (``release``) its Lease is released, then the heartbeat (the
        others see this replica gone at their next look, and take its shards at once)."""
        self._stop.set()
        with self._lock:
            for shard, elector in sorted(self.campaigns.items()):
                elector.stop(release=release)
            self.campaigns.clear()
        metrics.SHARDS_HELD.set(0)
        if not release:
            return
        try:
            read = self.heartbeat.get(self.timing.renew_deadline)
            if read is not None and read.record.holder == self.identity:
                stamp = self.heartbeat.stamp()
                self.heartbeat.update(Record("", 1, 0, stamp, stamp), read.resource_version)
        except ApiError as err:
            log.warning("heartbeat not released: %s", err)

    # ---- parts ----------------------------------------------------------------------------------
    def _campaign(self, shard: int) -> None:
        leadership = Leadership(self.clock)
        self.fence.set(shard, leadership)
        store = LeaseStore(self.kube, self.namespace, shard_lease_name(self.lease_name, shard), component=SHARD)
        elector = LeaderElector(store, self.identity, self.timing, leadership,
                                on_started=lambda: self.on_gained(shard),
                                on_stopped=lambda why: log.info("shard %d: no longer held (%s)", shard, why),
                                clock=self.clock)
        # the shard's Lease as this loop has been seeing it: a campaign started when its holder died counts the
        # lease duration from when the record last changed here, not from its own first read (else a takeover
        # would wait for the heartbeat to expire, then a whole lease duration more)
        elector.observed = self.shards_seen.get(shard)
        self.campaigns[shard] = elector
        elector.start()

    def _beat(self) -> None:
        stamp = self.heartbeat.stamp()
        record = Record(self.identity, int(self.timing.lease_duration), 0, stamp, stamp)
        timeout = self.timing.renew_deadline
        try:
            if not self._heartbeat_rv:
                self._heartbeat_rv = self.heartbeat.create(record, timeout)
            else:
                self._heartbeat_rv = self.heartbeat.update(record, self._heartbeat_rv, timeout)
        except ApiError as err:
            if not is_conflict(err):
                raise
            read = self.heartbeat.get(timeout)  # 409: exists (created before an answer was lost) or changed
            self._heartbeat_rv = "" if read is None else self.heartbeat.update(record, read.resource_version, timeout)

    def _leases(self) -> tuple[dict[str, tuple[Record, str]], dict[int, Record]]:
        """In one list: every replica's heartbeat Lease, name -> (record, resourceVersion), and every shard's
        Lease, shard -> record."""
        leases = self.kube.list(*LEASE, namespace=self.namespace,
                                label_selector=f"app.kubernetes.io/component in ({HEARTBEAT},{SHARD})")
        beats, shards = {}, {}
        for lease in leases:
            name, labels = lease["metadata"]["name"], lease["metadata"].get("labels") or {}
            if labels.get("app.kubernetes.io/component") == HEARTBEAT:
                beats[name] = (record_of(lease), lease["metadata"]["resourceVersion"])
            elif name.startswith(f"{self.lease_name}-shard-") and name.rsplit("-", 1)[1].isdigit():
                shards[int(name.rsplit("-", 1)[1])] = record_of(lease)
        return beats, shards

    def _delete_heartbeat(self, name: str, resource_version: str) -> None:
        """A dead replica's heartbeat, deleted only as it was read (a replica renewing it meanwhile keeps it)."""
        path = self.kube.require(*LEASE).path(self.namespace, name)
        try:
            self.kube.request("DELETE", path, {"preconditions": {"resourceVersion": resource_version}},
                              what=f"Lease {self.namespace}/{name}")
            log.info("heartbeat %s of a replica gone deleted", name)
        except ApiError as err:
            if err.status not in (404, 409):
                log.warning("heartbeat %s not deleted: %s", name, err)
