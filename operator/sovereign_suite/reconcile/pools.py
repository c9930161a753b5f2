"""The threads that write the clusters: a fixed number shared by all of them, with a cap per cluster
(docs/architecture.md, "The work queue and the workers"; fairpool.py).

Two shared pools (``SharedPools``, one per operator), each a ``FairPool`` keyed by cluster:

- ``writes``: the part of a pass writing one cluster (a pass writes its clusters at the same time), at most
  ``SOVEREIGN_SUITE_WORKERS`` of one cluster at once (one per pass running);
- ``requests``: the applies of one phase and the deletes of a prune, in parallel, at most
  ``SOVEREIGN_SUITE_APPLY_WORKERS`` of one cluster at once.

Each pool has half as many threads again as one cluster may hold, so a member that hangs holds at most its cap
(until its requests time out) and the other clusters keep the rest; their number does not grow with the members
(a pool per cluster grew to 24 threads per member). ``ClusterPools`` is one cluster's view of them.
``each_cluster`` runs a pass's clusters at once and waits for them, except for a member known not to answer (a
request or a watch of any pass got no answer in time): the pass reports that member's tenants
``ClusterUnreachable`` and goes on; the part it leaves behind is told to stop (``cancel``) and sends no new
request.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import Any, Callable, Iterable, TypeVar

from .fairpool import FairPool

T = TypeVar("T")
R = TypeVar("R")
POLL = 0.2  # how often a pass looks whether a member it waits for stopped answering


class SharedPools:
    """Every cluster's writer and apply threads: ``writers`` (passes at once) and ``requests`` (applies at once)
    per cluster, half as many again in all."""

    def __init__(self, writers: int, requests: int):
        writers, requests = max(1, writers), max(1, requests)
        self.writes = FairPool("write", writers + (writers + 1) // 2, writers)
        self.requests = FairPool("apply", requests + (requests + 1) // 2, requests)

    def stop(self) -> None:
        self.writes.shutdown()
        self.requests.shutdown()


class ClusterPools:
    """One cluster's share of the pools: ``shared`` (the operator's), or pools of its own (``writers`` and
    ``requests`` threads) when none is given."""

    def __init__(self, name: str, writers: int, requests: int, shared: SharedPools | None = None):
        self.name = name
        self._own = shared is None
        if shared is None:  # exactly the threads asked for, all its own
            self.writes = FairPool(f"write-{name}", max(1, writers), max(1, writers))
            self.requests = FairPool(f"apply-{name}", max(1, requests), max(1, requests))
        else:
            self.writes, self.requests = shared.writes, shared.requests
        self._key = object()  # this cluster's key in the shared pools (a target rebuilt gets a new one)
        self._lock = threading.Lock()
        self._stopped = False

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the ``requests`` pool, results in order. A single item, or a pool stopped
        meanwhile (the cluster's credentials rotated during a pass), runs on the calling thread."""
        items = list(items)
        with self._lock:
            futures = None if self._stopped or len(items) <= 1 else [
                self.requests.submit(self._key, contextvars.copy_context().run, fn, i) for i in items]
        if futures is None:
            return [fn(i) for i in items]
        return [f.result() for f in futures]

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` on the ``writes`` pool (on a thread of its own once the pool is stopped)."""
        # the caller's context goes with the work: the write fence under sharding reads the suite of the pass
        # from it (shard/fence.py); one copy per task (a context cannot be entered by two threads at once)
        fn = functools.partial(contextvars.copy_context().run, fn)
        with self._lock:
            if not self._stopped:
                return self.writes.submit(self._key, fn, *args)
        done: Future[R] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting pass, like the pool would
                done.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="write-late").start()
        return done

    def stop(self) -> None:
        """No new work from this cluster's view; what runs finishes (a request in flight ends by its deadline).
        Pools of its own are shut down (their threads exit); shared ones go on for the other clusters."""
        with self._lock:
            self._stopped = True
            if self._own:
                self.writes.shutdown()
                self.requests.shutdown()


def each_cluster(items: list[T], target_of: Callable[[T], Any], fn: Callable[[T, threading.Event], R],
                 given_up: Callable[[T], R], poll: float = POLL) -> list[R]:
    """``fn(item, cancel)`` for every item at the same time, each on the writer pool of its cluster
    (``target_of(item)``, a Target); the results in order. An item whose cluster stops answering before it is
    done (``Target.unanswered``) is not waited for: its ``cancel`` is set and its result is ``given_up(item)``."""
    cancels = [threading.Event() for _ in items]
    futures = [target_of(i).pools.submit(fn, i, c) for i, c in zip(items, cancels)]
    out: list[R] = []
    for item, future, cancel in zip(items, futures, cancels):
        while True:
            try:
                out.append(future.result(timeout=poll))
                break
            except FutureTimeout:
                if target_of(item).unanswered():
                    cancel.set()
                    out.append(given_up(item))
                    break
    return out
