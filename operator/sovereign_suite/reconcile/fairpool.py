"""A fixed number of threads shared by every cluster, with a cap per cluster (docs/performance.md, "27 members").

A pool per cluster made the operator's thread count grow with its members (a writer per pass and an apply pool of
16 per cluster: hundreds of threads at 27 members). Here the threads are shared, and two rules keep what the
pools per cluster gave:

- ``per_key``: one cluster (the key) never runs more than that many tasks at once, so a member that hangs holds
  at most ``per_key`` threads (until its requests time out) and ``threads - per_key`` are left to the others;
- round robin over the clusters that have work waiting, so a cluster with a long queue (a new member listing every
  kind, a 27-country suite's applies) does not starve one with a single task.

Used for a cluster's initial and recovering lists (at most a few lists at once over all clusters: 27 members
starting together must not all list at once), for the part of a pass writing one cluster and for its applies.
Threads are started when work needs them, up to ``threads``, and kept (no thread per task).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Hashable, TypeVar

R = TypeVar("R")


class FairPool:
    def __init__(self, name: str, threads: int, per_key: int):
        if threads < 1 or per_key < 1:
            raise ValueError(f"{name}: threads and per_key must be at least 1 (got {threads}, {per_key})")
        self.name = name
        self.threads = threads
        self.per_key = min(per_key, threads)
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]]] = {}
        self._order: deque[Hashable] = deque()  # keys with work waiting, in round-robin order
        self._running: dict[Hashable, int] = {}
        self._workers: list[threading.Thread] = []
        self._idle = 0  # threads waiting for work
        self._pending = 0  # tasks queued, not started
        self._stopped = False

    # ---- use ----------------------------------------------------------------------------------
    def submit(self, key: Hashable, fn: Callable[..., R], *args: Any) -> Future[R]:
        """``fn(*args)`` on one of the pool's threads when ``key`` has fewer than ``per_key`` tasks running and
        its turn comes. After ``shutdown`` the task is refused (RuntimeError), like a shut-down executor's."""
        future: Future[R] = Future()
        with self._cond:
            if self._stopped:
                raise RuntimeError(f"{self.name}: shut down")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                self._order.append(key)
            queue.append((future, fn, args))
            self._pending += 1
            if self._pending > self._idle and len(self._workers) < self.threads:
                t = threading.Thread(target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True)
                self._workers.append(t)
                t.start()
            self._cond.notify()
        return future

    def running(self, key: Hashable) -> int:
        with self._cond:
            return self._running.get(key, 0)

    def waiting(self, key: Hashable) -> int:
        with self._cond:
            return len(self._queues.get(key) or ())

    def thread_count(self) -> int:
        with self._cond:
            return len(self._workers)

    def shutdown(self, wait: bool = False) -> None:
        """No new task; the tasks waiting are cancelled; those running finish and the threads exit (``wait``:
        joined)."""
        with self._cond:
            self._stopped = True
            for queue in self._queues.values():
                for future, _, _ in queue:
                    future.cancel()
            self._queues.clear()
            self._order.clear()
            self._pending = 0
            self._cond.notify_all()
            workers = list(self._workers)
        if wait:
            for t in workers:
                if t is not threading.current_thread():
                    t.join()

    # ---- scheduling ---------------------------------------------------------------------------
    def _next(self) -> tuple[Hashable, tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] | None:
        """The first key in round-robin order that has work and room under its cap; it goes to the back of the
        order (if it has more work). Called with the lock held."""
        for _ in range(len(self._order)):
            key = self._order[0]
            self._order.rotate(-1)
            if self._running.get(key, 0) >= self.per_key:
                continue
            queue = self._queues[key]
            task = queue.popleft()
            self._pending -= 1
            if not queue:
                del self._queues[key]
                self._order.remove(key)
            self._running[key] = self._running.get(key, 0) + 1
            return key, task
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                picked = self._next()
                while picked is None:
                    if self._stopped:
                        return
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    picked = self._next()
            key, (future, fn, args) = picked
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits, like an executor
                        future.set_exception(exc)
            finally:
                del future, fn, args  # nothing of the task held while this thread waits for the next one
                with self._cond:
                    left = self._running[key] - 1
                    if left:
                        self._running[key] = left
                    else:
                        del self._running[key]
                    self._cond.notify()  # a task of this key held back by its cap may run now
