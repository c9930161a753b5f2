"""Threads per cluster: a cluster's writes never wait for another cluster's threads (docs/architecture.md, "The
work queue and the workers").

Each cluster (the operator's own, each member) has two pools of its own, made with its ``Target`` and stopped
with it:

- ``writes``: a thread per pass writing this cluster (a pass writes its clusters at the same time: each
  cluster's part of a pass runs here), as many as passes run at once (``SOVEREIGN_SUITE_WORKERS``).
- ``requests``: the applies of one phase and the deletes of a prune, in parallel (``SOVEREIGN_SUITE_APPLY_WORKERS``
  per cluster).

A member that hangs holds its own threads only, until its requests time out. ``each_cluster`` runs a pass's
clusters at once and waits for them, except for a member known not to answer (a request or a watch of any pass
got no answer in time): the pass reports that member's tenants ``ClusterUnreachable`` and goes on; the part it
leaves behind is told to stop (``cancel``) and sends no new request.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")
POLL = 0.2  # how often a pass looks whether a member it waits for stopped answering


class ClusterPools:
    def __init__(self, name: str, writers: int, requests: int):
        self.writes = ThreadPoolExecutor(max_workers=max(1, writers), thread_name_prefix=f"write-{name}")
        self.requests = ThreadPoolExecutor(max_workers=max(1, requests), thread_name_prefix=f"apply-{name}")
        self._lock = threading.Lock()
        self._stopped = False

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``fn`` over ``items`` on the ``requests`` pool, results in order. A single item, or a pool stopped
        meanwhile (the cluster's credentials rotated during a pass), runs on the calling thread."""
        items = list(items)
        with self._lock:
            futures = None if self._stopped or len(items) <= 1 else [self.requests.submit(fn, i) for i in items]
        if futures is None:
            return [fn(i) for i in items]
        return [f.result() for f in futures]

    def submit(self, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` on the ``writes`` pool (on a thread of its own once the pool is stopped)."""
        with self._lock:
            if not self._stopped:
                return self.writes.submit(fn, *args)
        done: Future[R] = Future()

        def run() -> None:
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting pass, like the pool would
                done.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="write-late").start()
        return done

    def stop(self) -> None:
        """No new work; what runs finishes (a request in flight ends by its deadline) and the threads exit."""
        with self._lock:
            self._stopped = True
            self.writes.shutdown(wait=False)
            self.requests.shutdown(wait=False)


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
