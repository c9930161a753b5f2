"""The work queue's client-go semantics and the per-key backoff (reconcile/queue.py), with a fake clock."""

from __future__ import annotations

import threading

import pytest

from sovereign_suite.reconcile.queue import Backoff, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_waiting_key_is_queued_once():
    q: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert len(q) == 2
    assert q.get(timeout=0) == "a"
    assert q.get(timeout=0) == "b"
    assert q.get(timeout=0) is None


def test_a_key_is_never_processed_twice_at_once_and_is_requeued_when_it_changed_meanwhile():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")  # changed while a worker processes it
    assert q.get(timeout=0) is None  # not handed to a second worker
    q.done("a")
    assert q.get(timeout=0) == "a"  # queued again once the first worker is done
    q.done("a")
    assert q.get(timeout=0) is None


def test_done_without_a_new_add_does_not_requeue():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.get(timeout=0)
    q.done("a")
    assert q.pending() == 0


def test_add_after_waits_and_the_earliest_delay_wins():
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 3)  # earlier: wins
    q.add_after("a", 20)  # later: ignored
    assert q.get(timeout=0) is None
    clock.t += 3
    assert q.get(timeout=0) == "a"
    q.done("a")
    clock.t += 20
    assert q.get(timeout=0) is None  # the superseded delays do not fire again


def test_an_immediate_add_supersedes_a_delayed_one():
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(clock=clock)
    q.add_after("a", 10)
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.done("a")
    clock.t += 11
    assert q.get(timeout=0) is None


def test_backoff_doubles_per_failure_is_capped_and_forgotten():
    b: Backoff[str] = Backoff(base=1.0, cap=5.0)
    assert [b.next_delay("a") for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert b.next_delay("other") == 1.0  # per key
    b.forget("a")
    assert b.next_delay("a") == 1.0


def test_rate_limited_adds_are_delayed_by_the_keys_backoff():
    clock = Clock()
    q: WorkQueue[str] = WorkQueue(Backoff(base=2.0, cap=60.0), clock=clock)
    assert q.add_rate_limited("a") == 2.0
    assert q.get(timeout=0) is None
    clock.t += 2
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.add_rate_limited("a") == 4.0
    q.forget("a")
    assert q.add_rate_limited("a") == 2.0


def test_workers_block_until_a_key_comes_and_stop_on_shutdown():
    q: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.add("a")
    t.join(2)
    assert got == ["a"]
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(2)
    assert got == ["a", None]
    q.add("b")  # ignored after shutdown
    assert q.pending() == 1  # only "a", still processing


@pytest.mark.parametrize("workers", [4])
def test_many_workers_never_share_a_key(workers):
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    clash: list[int] = []
    lock = threading.Lock()
    seen = []

    def work():
        while (key := q.get(timeout=0.5)) is not None:
            with lock:
                if key in active:
                    clash.append(key)
                active.add(key)
                seen.append(key)
            with lock:
                active.discard(key)
            q.done(key)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for i in range(2000):
        q.add(i % 7)
    for t in threads:
        t.join(5)
    assert clash == []
    assert set(seen) == set(range(7))
