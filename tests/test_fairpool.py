"""The shared pool's scheduling (reconcile/fairpool.py): a fixed number of threads whatever the number of clusters,
at most ``per_key`` tasks of one cluster at once (a hung member holds no more), round robin between clusters."""

from __future__ import annotations

import threading
import time

import pytest

from sovereign_suite.reconcile.fairpool import FairPool


def test_the_threads_do_not_grow_with_the_clusters():
    pool = FairPool("t", threads=4, per_key=2)
    try:
        futures = [pool.submit(f"member-{i}", lambda i=i: i * 2) for i in range(27 * 20)]
        assert [f.result(timeout=10) for f in futures] == [i * 2 for i in range(27 * 20)]
        assert pool.thread_count() <= 4
    finally:
        pool.shutdown()


def test_a_cluster_never_runs_more_than_its_cap_and_a_hung_one_leaves_the_rest_to_the_others():
    pool = FairPool("t", threads=4, per_key=2)
    release = threading.Event()
    try:
        hung = [pool.submit("hung", release.wait, 10) for _ in range(6)]  # a member whose requests never end
        time.sleep(0.2)
        assert pool.running("hung") == 2 and pool.waiting("hung") == 4
        started = time.monotonic()
        assert [pool.submit("fr", lambda x=x: x, ).result(timeout=5) for x in range(5)] == list(range(5))
        assert time.monotonic() - started < 1.0
        assert not any(f.done() for f in hung)
    finally:
        release.set()
        pool.shutdown()


def test_round_robin_between_clusters_with_work_waiting():
    """One thread: the order the tasks run in alternates between the clusters, whatever the order they came in."""
    pool = FairPool("t", threads=1, per_key=1)
    ran: list[str] = []
    gate = threading.Event()
    try:
        first = pool.submit("gate", gate.wait, 10)  # holds the one thread while the queues fill
        time.sleep(0.1)
        futures = [pool.submit("de", ran.append, f"de{i}") for i in range(3)]
        futures += [pool.submit("fr", ran.append, f"fr{i}") for i in range(3)]
        futures.append(pool.submit("se", ran.append, "se0"))
        gate.set()
        first.result(timeout=5)
        for f in futures:
            f.result(timeout=5)
        assert ran == ["de0", "fr0", "se0", "de1", "fr1", "de2", "fr2"]
    finally:
        pool.shutdown()


def test_a_task_held_back_by_its_cap_runs_once_one_of_its_cluster_ends():
    pool = FairPool("t", threads=3, per_key=1)
    release = threading.Event()
    try:
        a = pool.submit("de", release.wait, 10)
        b = pool.submit("de", lambda: "second")
        time.sleep(0.2)
        assert not b.done() and pool.running("de") == 1  # threads are free, but Germany is at its cap
        release.set()
        assert a.result(timeout=5) is True and b.result(timeout=5) == "second"
    finally:
        pool.shutdown()


def test_an_exception_reaches_the_waiter_and_the_thread_goes_on():
    pool = FairPool("t", threads=1, per_key=1)
    try:
        with pytest.raises(ZeroDivisionError):
            pool.submit("de", lambda: 1 / 0).result(timeout=5)
        assert pool.submit("de", lambda: "next").result(timeout=5) == "next"
        assert pool.running("de") == 0
    finally:
        pool.shutdown()


def test_shutdown_cancels_what_waits_and_refuses_new_work():
    pool = FairPool("t", threads=1, per_key=1)
    release = threading.Event()
    running = pool.submit("de", release.wait, 10)
    time.sleep(0.1)
    waiting = pool.submit("fr", lambda: "never")
    pool.shutdown()
    assert waiting.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit("fr", lambda: None)
    release.set()
    assert running.result(timeout=5) is True


def test_the_cap_is_at_most_the_threads():
    assert FairPool("t", threads=2, per_key=8).per_key == 2
    with pytest.raises(ValueError):
        FairPool("t", threads=0, per_key=1)
