"""The election loop (client-go's LeaderElector, v0.37.2 ``tools/leaderelection/leaderelection.go``) and the
fence every write of the operator checks (``Leadership``).

A replica campaigns (reads the Lease every retry period, jittered, and takes it once free or expired: timing.py),
then renews it every retry period. Its leadership lasts until ``renew_deadline`` after the last renewal it *sent*
successfully; the fence closes at that instant by the clock alone, whatever the loop is doing (a request that
hangs, a process that was stopped and resumed). A renewal sent before the deadline and answered after it, but
within its own renew deadline, reopens the fence (a slow API server; timing.renewed_in_time). When the loop
finds the deadline passed before it could send a renewal, it stops leading for good, without a request: the
replica does not campaign again (the operator then exits, as client-go's users do, and comes back as a standby).
A graceful stop releases the Lease after closing the fence (client-go's ReleaseOnCancel: holder empty,
leaseDurationSeconds 1), so the standby takes over within a retry period or two.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
import uuid
from typing import Callable

from ..reconcile.kube import ApiError
from .lease import LeaseStore, is_conflict
from .timing import (Action, LeaseTiming, Observation, Record, claim, decide, leading_until, next_look, observe,
                     renewed_in_time)

log = logging.getLogger("sovereign_suite.leader")


def new_identity(hostname: str | None = None) -> str:
    """``<host>_<uuid>`` (kube-controller-manager's form): the pod's name says which pod leads, the UUID makes a
    restarted process a new candidate, which never mistakes its previous life's Lease for its own."""
    return f"{hostname or socket.gethostname()}_{uuid.uuid4()}"


class NotLeading(Exception):
    """A write refused by the fence: this replica does not (or no longer) hold the Lease."""


class Leadership:
    """Whether this replica may write now: until a deadline on the monotonic clock. ``always()`` when leader
    election is off (a single replica)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, until: float = -math.inf):
        self._clock = clock
        self._until = until
        self._ended = False
        self._lock = threading.Lock()

    @classmethod
    def always(cls) -> Leadership:
        return cls(until=math.inf)

    @property
    def until(self) -> float:
        with self._lock:
            return self._until

    def may_write(self) -> bool:
        with self._lock:
            return self._clock() < self._until

    def check(self, what: str = "") -> None:
        """Raise NotLeading unless this replica may write now (called right before a mutating request is sent)."""
        if not self.may_write():
            raise NotLeading(f"not the leader: {what} not sent" if what else "not the leader")

    def extend(self, until: float) -> None:
        """Lead until ``until`` (never shortened: an older renewal's late answer changes nothing). A renewal
        answered in time reopens a fence whose previous deadline passed meanwhile (timing.renewed_in_time)."""
        with self._lock:
            if not self._ended:
                self._until = max(self._until, until)

    def end(self) -> None:
        """Close the fence for good."""
        with self._lock:
            self._ended = True
            self._until = -math.inf

    @property
    def ended(self) -> bool:
        with self._lock:
            return self._ended


class LeaderElector:
    """``step()`` makes one attempt and says how long to wait before the next; ``run()`` loops in a thread.
    ``on_started()`` runs (in the loop's thread) once the Lease is ours; ``on_stopped(reason)`` once when
    leadership ends (never if it never started)."""

    def __init__(self, store: LeaseStore, identity: str, timing: LeaseTiming, leadership: Leadership,
                 on_started: Callable[[], None], on_stopped: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic, rand: Callable[[], float] = random.random):
        problems = timing.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.store, self.identity, self.timing, self.leadership = store, identity, timing, leadership
        self.on_started, self.on_stopped = on_started, on_stopped
        self.clock, self.rand = clock, rand
        self.observed: Observation | None = None
        self.resource_version = ""
        self.leading = False
        self.done = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # ---- the loop -----------------------------------------------------------------------------
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        log.info("%s: campaigning as %s (lease %g s, renew deadline %g s, retry %g s)", self.store.describe(),
                 self.identity, self.timing.lease_duration, self.timing.renew_deadline, self.timing.retry_period)
        while not self.done and not self._stop.is_set():
            delay = self.step()
            if delay > 0:
                self._stop.wait(delay)

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; a leader closes its fence first, then (``release``) frees the Lease."""
        self._stop.set()
        was_leading = self.leading
        self.leadership.end()
        if was_leading and release:
            self.release()
        if was_leading:
            self._lose("stopped")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timing.renew_deadline)

    def step(self) -> float:
        if self.done:
            return 0.0
        return self._renew() if self.leading else self._campaign()

    # ---- a candidate ----------------------------------------------------------------------------
    def _campaign(self) -> float:
        wait = self.timing.jittered(self.rand())
        try:
            read = self.store.get()
        except ApiError as err:
            log.warning("%s: cannot read: %s", self.store.describe(), err)
            return wait
        now = self.clock()
        if read is not None:
            self.observed = observe(self.observed, read.record, now)
            self.resource_version = read.resource_version
        action = decide(self.observed if read is not None else None, self.identity, now)
        if action is Action.WAIT:
            return next_look(self.observed, now, wait)
        record = claim(action, read.record if read is not None else None, self.identity,
                       int(self.timing.lease_duration), self.store.stamp())
        sent = self.clock()
        try:
            if action is Action.CREATE:
                self.resource_version = self.store.create(record)
            else:
                self.resource_version = self.store.update(record, self.resource_version)
        except ApiError as err:  # 409: another replica was faster, or the holder renewed meanwhile
            log.info("%s: %s failed: %s", self.store.describe(), action.value, err)
            return wait
        self.observed = Observation(record, self.clock())
        if self._stop.is_set():  # stopped while this attempt was in flight: give the Lease back at once
            self.release()
            self.done = True
            return 0.0
        self.leadership.extend(leading_until(sent, self.timing))
        self.leading = True
        log.info("%s: acquired by %s (%s, transitions %d)", self.store.describe(), self.identity, action.value,
                 record.transitions)
        self.on_started()
        return self.timing.retry_period

    # ---- the leader ----------------------------------------------------------------------------
    def _renew(self) -> float:
        deadline = self.leadership.until
        sent = self.clock()
        if sent >= deadline:
            self._lose(f"renew deadline passed ({self.timing.renew_deadline:g} s without a renewal)")
            return 0.0
        record = claim(Action.RENEW, self.observed.record if self.observed else None, self.identity,
                       int(self.timing.lease_duration), self.store.stamp())
        # no request may outlast the deadline this renewal would set (a slow answer is worth waiting for)
        timeout = self.timing.renew_deadline
        try:
            try:  # client-go's fast path: the version we last wrote
                self.resource_version = self.store.update(record, self.resource_version, timeout)
            except ApiError as err:
                if not is_conflict(err):
                    raise
                read = self.store.get(timeout)  # changed by someone else: still ours?
                if read is None or read.record.holder != self.identity:
                    self._lose(f"the Lease is {'gone' if read is None else 'held by ' + read.record.holder}")
                    return 0.0
                record = claim(Action.RENEW, read.record, self.identity, record.duration, record.renew_time)
                self.resource_version = self.store.update(record, read.resource_version, timeout)
        except ApiError as err:
            left = self.leadership.until - self.clock()
            log.warning("%s: renewal failed (%.1f s left): %s", self.store.describe(), left, err)
            return max(0.0, min(self.timing.retry_period, left))
        answered = self.clock()
        if not renewed_in_time(sent, answered, self.timing):
            self._lose("the renewal answered after the renew deadline")
            return 0.0
        if answered >= deadline:
            log.warning("%s: renewed %.1f s after the renew deadline had passed (a slow API server): leading again "
                        "until %.1f s after the renewal was sent", self.store.describe(), answered - deadline,
                        self.timing.renew_deadline)
        self.observed = Observation(record, answered)
        self.leadership.extend(leading_until(sent, self.timing))
        return max(0.0, min(self.timing.retry_period, self.leadership.until - self.clock()))

    def _lose(self, reason: str) -> None:
        self.leadership.end()
        with self._lock:
            if self.done:
                return
            self.done = True
            self.leading = False
        log.warning("%s: %s stopped leading: %s", self.store.describe(), self.identity, reason)
        self.on_stopped(reason)

    def release(self) -> bool:
        """Free the Lease (holder empty, 1 s, as client-go's tryRelease) once the fence is closed; a conflict
        is read again while the Lease is still ours."""
        for _ in range(3):
            try:
                read = self.store.get()
                if read is None or read.record.holder != self.identity:
                    return False
                stamp = self.store.stamp()
                self.store.update(Record("", 1, read.record.transitions, stamp, stamp), read.resource_version)
                log.info("%s: released by %s", self.store.describe(), self.identity)
                return True
            except ApiError as err:
                if not is_conflict(err):
                    log.warning("%s: release failed: %s", self.store.describe(), err)
                    return False
        return False
