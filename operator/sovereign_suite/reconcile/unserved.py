"""When a watch of a kind the cluster does not serve (a CRD not installed: CloudNativePG's Cluster, the Prometheus
Operator's ServiceMonitor) asks API discovery again.

A fixed interval made every such watch of every member ask every 30 s for ever: in a converged fleet of 27
members, the only requests the operator sent a member were these discovery GETs (3 groups per member,
docs/performance.md, "27 members"). Now the wait starts at ``base`` (``SOVEREIGN_SUITE_DISCOVERY_INTERVAL``, 30 s),
doubles after each answer that the kind is still not served, up to ``cap``
(``SOVEREIGN_SUITE_DISCOVERY_MAX_INTERVAL``, 300 s: 30, 60, 120, 240, then every 300 s), and is back to ``base``
once the kind is served (a CRD deleted later is then looked for quickly again).

The backoff only bounds the background look. A pass that needs the kind does not wait for it: ``Kube.require``
and ``Kube.kind`` ask discovery whenever their cached answer is older than ``base`` (kube.py), and when such an
answer finds the kind served, ``Kube`` wakes the watches waiting for its group (``Kube.waiters``), which list
it at once. No jitter: the watches of one group in one cluster (Cluster and ScheduledBackup, ServiceMonitor and
PodMonitor) wait the same times from the same start, so the first one's request answers the others from the
cache.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)

DEFAULT_BASE = 30.0
DEFAULT_CAP = 300.0


class UnservedBackoff:
    """The waits between discovery requests for a kind not served: ``base`` x 2^n after the n-th consecutive
    miss, at most ``cap`` (never less than ``base``)."""

    def __init__(self, base: float = DEFAULT_BASE, cap: float = DEFAULT_CAP):
        if base <= 0:
            raise ValueError(f"discovery interval must be positive, not {base}")
        self.base, self.cap = base, max(base, cap)
        self._misses = 0

    def next(self) -> float:
        """The wait after one more answer that the kind is not served."""
        delay = min(self.cap, self.base * 2 ** min(self._misses, 32))  # the exponent bounded: no float overflow
        self._misses += 1
        return delay

    def reset(self) -> None:
        """The kind is served: the next miss (the CRD deleted) waits ``base`` again."""
        self._misses = 0


class Waiters:
    """Callbacks waiting for a group/version to serve a kind it did not (``Kube.waiters``); thread-safe. A
    callback runs on the thread whose discovery request found the kind (a pass, a list thread): it must be quick
    (an informer's only schedules its wake-up on its event loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, dict[int, Callable[[], None]]] = {}
        self._next = 0

    def add(self, api_version: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Wait; returns what stops waiting."""
        with self._lock:
            self._next += 1
            token = self._next
            self._waiting.setdefault(api_version, {})[token] = callback

        def cancel() -> None:
            with self._lock:
                waiting = self._waiting.get(api_version) or {}
                waiting.pop(token, None)
                if not waiting:
                    self._waiting.pop(api_version, None)
        return cancel

    def found(self, api_version: str) -> None:
        """Discovery found a kind of ``api_version`` that it had not: every callback waiting for it runs."""
        with self._lock:
            callbacks = list((self._waiting.get(api_version) or {}).values())
        for cb in callbacks:
            try:
                cb()
            except Exception:  # noqa: BLE001 - one broken waiter must not fail the request that found the kind
                log.exception("discovery of %s: a waiter failed", api_version)
