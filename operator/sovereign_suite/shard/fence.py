"""The write fence under sharding: a write for a suite goes out only while this replica holds the Lease of the
suite's shard (leader/elector.py's ``Leadership``, one per shard).

The pass sets the suite it works for (``working_on``) in a context variable; the pools that run a pass's requests
on other threads carry the caller's context (reconcile/pools.py), so the API client's fence (``Kube.fence``, called
right before every mutating request is sent) knows which suite a write is for. A write outside any pass is
refused: under sharding every write of the operator belongs to a suite.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from typing import Iterator

from ..leader.elector import Leadership, NotLeading
from ..reconcile.problems import SuiteKey
from .assign import shard_of

_SUITE: contextvars.ContextVar[SuiteKey | None] = contextvars.ContextVar("sovereign_suite_shard_suite", default=None)


@contextmanager
def working_on(key: SuiteKey) -> Iterator[None]:
    token = _SUITE.set(key)
    try:
        yield
    finally:
        _SUITE.reset(token)


def current_suite() -> SuiteKey | None:
    return _SUITE.get()


class ShardFence:
    """Per shard, the ``Leadership`` of the campaign running for it (a closed one once stopped)."""

    def __init__(self, shards: int):
        self.shards = shards
        self._lock = threading.Lock()
        self._held: dict[int, Leadership] = {}

    def shard(self, key: SuiteKey) -> int:
        return shard_of(key.namespace, key.name, self.shards)

    def set(self, shard: int, leadership: Leadership) -> None:
        with self._lock:
            self._held[shard] = leadership

    def may_write(self, key: SuiteKey) -> bool:
        with self._lock:
            held = self._held.get(self.shard(key))
        return held is not None and held.may_write()

    def held(self) -> set[int]:
        with self._lock:
            return {s for s, lead in self._held.items() if lead.may_write()}

    def check(self, what: str = "") -> None:
        """``Kube.fence``: raise NotLeading unless the suite being worked on is in a shard held now."""
        key = current_suite()
        if key is None:
            raise NotLeading(f"sharded: {what} is for no suite, not sent")
        if not self.may_write(key):
            raise NotLeading(f"shard {self.shard(key)} of {key} not held: {what} not sent")
