"""Leader election's loop (leader/elector.py) against the real API server, in this process with short timings:
create, renew, take over an expired Lease, release, a race of two candidates decided by the resourceVersion, and
a leader that was not scheduled past its renew deadline stopping without touching the Lease.
Two operator processes are in test_leader_failover.py."""

from __future__ import annotations

import threading
import time

import pytest

from sovereign_suite.leader.elector import LeaderElector, Leadership, new_identity
from sovereign_suite.leader.lease import LEASE, LeaseStore
from sovereign_suite.leader.timing import LeaseTiming, Record
from sovereign_suite.leader.work import lease_kube

from .conftest import wait_for

FAST = LeaseTiming(lease_duration=3, renew_deadline=1.8, retry_period=0.5)
NAME = "sovereign-suite-operator"


class Candidate:
    def __init__(self, kube, namespace: str, timing: LeaseTiming = FAST):
        self.identity = new_identity("test")
        self.leadership = Leadership()
        self.events: list[str] = []
        self.store = LeaseStore(lease_kube(kube, self.identity, timing), namespace, NAME)
        self.elector = LeaderElector(self.store, self.identity, timing, self.leadership,
                                     on_started=lambda: self.events.append("started"),
                                     on_stopped=lambda why: self.events.append(f"stopped: {why}"))


def lease(kube, namespace) -> Record:
    read = LeaseStore(kube, namespace, NAME).get()
    assert read is not None
    return read.record


@pytest.fixture()
def candidates(kube, namespace):
    made: list[Candidate] = []

    def make(timing: LeaseTiming = FAST) -> Candidate:
        made.append(Candidate(kube, namespace, timing))
        return made[-1]

    yield make
    for c in made:
        c.elector.stop(release=False)


def test_first_candidate_creates_the_lease_the_second_waits_then_takes_it_when_expired(kube, namespace,
                                                                                      candidates):
    a, b = candidates(), candidates()
    a.elector.start()
    wait_for(lambda: a.leadership.may_write(), timeout=10, what="a leads")
    b.elector.start()
    rec = lease(kube, namespace)
    assert (rec.holder, rec.duration, rec.transitions) == (a.identity, 3, 0)
    first_renew = rec.renew_time
    time.sleep(2 * FAST.lease_duration)  # a renews every retry period; b never takes a valid Lease
    assert lease(kube, namespace).holder == a.identity and lease(kube, namespace).renew_time != first_renew
    assert not b.leadership.may_write() and b.events == []

    a.elector.stop(release=False)  # as if SIGKILLed: no release
    killed = time.monotonic()
    assert not a.leadership.may_write()
    wait_for(lambda: b.leadership.may_write(), timeout=15, interval=0.05, what="b leads")
    took = time.monotonic() - killed
    rec = lease(kube, namespace)
    assert (rec.holder, rec.transitions) == (b.identity, 1)
    # b waited the lease duration from the last renewal it saw (at most a retry period before the stop)
    assert FAST.lease_duration - FAST.retry_period * 2.2 <= took <= FAST.lease_duration + 2 * FAST.retry_period * 2.2
    assert b.events == ["started"] and a.events == ["started", "stopped: stopped"]


def test_a_released_lease_is_taken_within_retry_periods(kube, namespace, candidates):
    a, b = candidates(), candidates()
    a.elector.start()
    wait_for(lambda: a.leadership.may_write(), timeout=10, what="a leads")
    b.elector.start()
    time.sleep(1)
    a.elector.stop(release=True)
    released = time.monotonic()
    wait_for(lambda: b.leadership.may_write(), timeout=10, interval=0.05, what="b leads")
    assert time.monotonic() - released < FAST.lease_duration  # not the full lease: the release said 1 s
    assert lease(kube, namespace).transitions == 1


def test_two_candidates_racing_for_an_expired_lease_one_wins(kube, namespace, candidates):
    store = LeaseStore(kube, namespace, NAME)
    store.create(Record("gone_0", 1, 7, "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z"))
    racers = [candidates() for _ in range(4)]
    for c in racers:  # first sighting of the record: each waits its 1 s
        c.elector.step()
    time.sleep(1.1)
    barrier = threading.Barrier(len(racers))

    def go(c: Candidate):
        barrier.wait()
        c.elector.step()

    threads = [threading.Thread(target=go, args=(c,)) for c in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leaders = [c for c in racers if c.leadership.may_write()]
    assert len(leaders) == 1  # the others' updates carried the old resourceVersion: 409
    rec = lease(kube, namespace)
    assert rec.holder == leaders[0].identity and rec.transitions == 8


def test_a_leader_not_scheduled_past_its_renew_deadline_stops_without_writing_the_lease(kube, namespace,
                                                                                       candidates):
    """The in-process counterpart of SIGSTOP: the loop does not run for longer than the renew deadline; the fence
    closes by the clock alone, and when the loop runs again it stops leading without sending anything."""
    a = candidates()
    assert a.elector.step() > 0 and a.leadership.may_write()  # created: leads
    before = kube.get(*LEASE, NAME, namespace)["metadata"]["resourceVersion"]
    time.sleep(FAST.renew_deadline + 0.1)
    assert not a.leadership.may_write()  # closed while the loop was not running
    sent = sum(a.store.kube.requests.values())
    a.elector.step()
    assert a.events == ["started", f"stopped: renew deadline passed ({FAST.renew_deadline:g} s without a renewal)"]
    assert sum(a.store.kube.requests.values()) == sent  # not even a read
    assert kube.get(*LEASE, NAME, namespace)["metadata"]["resourceVersion"] == before
    a.elector.step()  # and it never campaigns again
    assert sum(a.store.kube.requests.values()) == sent and not a.leadership.may_write()


def test_a_candidate_stopped_while_acquiring_gives_the_lease_back(kube, namespace, candidates):
    """A stop that comes while the create is in flight (here: before it): the Lease it got is released at once
    (holder empty, 1 s), so the other replica does not wait a lease duration; it never leads."""
    a = candidates()
    a.elector._stop.set()  # noqa: SLF001 - the stop racing the attempt, made deterministic
    assert a.elector.step() == 0.0
    rec = lease(kube, namespace)
    assert (rec.holder, rec.duration) == ("", 1)
    assert a.events == [] and not a.leadership.may_write() and a.elector.done
