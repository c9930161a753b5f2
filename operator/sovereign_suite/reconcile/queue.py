"""One keyed work queue with client-go's semantics, and per-key exponential backoff.

- A key waiting in the queue is there once, however often it is added (de-duplication).
- A key is never handed to two workers at once: added while a worker processes it, it is marked dirty and
  queued again only when that worker calls ``done``.
- ``add_after`` delays an add (requeue while rolling out, debounced child events); the earliest wins.
- ``add_rate_limited`` delays by the key's backoff (base x 2^failures, capped); ``forget`` resets it.
Every trigger (suite, child and cloud events, the drift tick, requeues) only adds keys; a fixed pool of workers
(worker.py) takes them. Pure Python, no Kubernetes: tests/test_queue.py checks each rule.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)


class Backoff(Generic[K]):
    """Per-key exponential backoff: base * 2^n for the n-th consecutive failure, at most ``cap`` seconds."""

    def __init__(self, base: float = 1.0, cap: float = 300.0):
        self.base, self.cap = base, cap
        self._failures: dict[K, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, key: K) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        return min(self.cap, self.base * (2 ** n))

    def forget(self, key: K) -> None:
        with self._lock:
            self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    def __init__(self, backoff: Backoff[K] | None = None, clock: Callable[[], float] = time.monotonic):
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be processed (in _queue, or re-added while processing)
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []  # heap of (due, sequence, key)
        self._due: dict[K, float] = {}  # earliest due time of each delayed key
        self._seq = 0
        self._shutdown = False

    # ---- adding -----------------------------------------------------------------------------
    def add(self, key: K) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        self._due.pop(key, None)  # an immediate add supersedes a delayed one
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown or key in self._dirty:
                return
            due = self._clock() + delay
            if self._due.get(key, float("inf")) <= due:
                return  # already due earlier
            self._due[key] = due
            self._seq += 1
            heapq.heappush(self._delayed, (due, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        delay = self.backoff.next_delay(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self.backoff.forget(key)

    # ---- taking ------------------------------------------------------------------------------
    def _promote_due_locked(self) -> float | None:
        """Move delayed keys that are due into the queue; the seconds until the next one (None: none)."""
        now = self._clock()
        while self._delayed:
            due, _, key = self._delayed[0]
            if self._due.get(key) != due:  # superseded by an earlier add_after or an add
                heapq.heappop(self._delayed)
                continue
            if due > now:
                return due - now
            heapq.heappop(self._delayed)
            del self._due[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> K | None:
        """The next key (the caller must call ``done(key)``), or None on shutdown or after ``timeout``."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                wait = self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutdown:
                    return None
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    # ---- state -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def pending(self) -> int:
        """Keys queued now, delayed, or being processed (for metrics and tests)."""
        with self._cond:
            return len(self._dirty | self._processing | set(self._due))
