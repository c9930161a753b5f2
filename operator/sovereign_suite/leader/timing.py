"""The pure decisions of leader election: when a candidate may take the Lease, how long the leader may act.

Semantics of client-go's ``tools/leaderelection`` at v0.37.2 (the version hack/tools/kubernetes pins;
``leaderelection.go``):

- A candidate never trusts the times written in the Lease (another machine's clock). It remembers when *it*
  first saw the current record (``observedTime``, reset whenever the record changes) and may take the Lease only
  once ``leaseDurationSeconds`` (of that record) have passed on its own clock without a change
  (``isLeaseValid``); an empty ``holderIdentity`` (a released Lease) may be taken at once
  (``tryAcquireOrRenew`` step 3).
- Taking it from another holder increments ``leaseTransitions``; the holder's own renewal keeps it and
  ``acquireTime`` (step 4).
- ``LeaseDuration > RenewDeadline > JitterFactor * RetryPeriod`` (``NewLeaderElector``), JitterFactor 1.2.
- A leader that cannot renew within ``RenewDeadline`` stops leading (``renew``).

One thing is stricter here: the leader's deadline runs from the moment it *sent* its last successful renewal
(client-go counts from the start of its renew loop), and every write checks it (``Leadership.may_write``): the
server applied that renewal after it was sent, so a candidate saw it no earlier, and waits ``lease_duration``
from then. The leader's last write is therefore at least ``lease_duration - renew_deadline`` before the earliest
takeover, on any two clocks that run at the same rate (monotonic clocks: no wall-clock sync needed); rates may
differ by the ratio ``lease_duration / renew_deadline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

JITTER_FACTOR = 1.2  # client-go leaderelection.go, JitterFactor


@dataclass(frozen=True)
class LeaseTiming:
    """Durations in seconds. With the defaults a SIGKILLed leader is replaced after 9 to 12.2 s plus a request's
    time: its last renewal was at most a retry period before the kill; the standby saw it at most a jittered
    retry period (2.2 s) later and takes the Lease lease_duration after that (next_look). client-go's core
    defaults (15, 10, 2) would take up to 19.4 s, more than the 15 s the operator promises."""

    lease_duration: float = 10.0
    renew_deadline: float = 6.0
    retry_period: float = 1.0

    def problems(self) -> list[str]:
        """What is wrong with these timings (client-go's NewLeaderElector checks), empty when valid."""
        out = []
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            out.append("lease duration, renew deadline and retry period must be greater than zero")
        if self.lease_duration <= self.renew_deadline:
            out.append(f"lease duration ({self.lease_duration:g} s) must be greater than the renew deadline "
                       f"({self.renew_deadline:g} s): the difference is the margin between the old leader's last "
                       "write and the new leader's first")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            out.append(f"renew deadline ({self.renew_deadline:g} s) must be greater than {JITTER_FACTOR} x the "
                       f"retry period ({self.retry_period:g} s)")
        if self.lease_duration != int(self.lease_duration):
            out.append("lease duration must be whole seconds (the Lease's leaseDurationSeconds is an integer)")
        return out

    def jittered(self, fraction: float) -> float:
        """A candidate's wait between attempts: retry_period + fraction x JITTER_FACTOR x retry_period, fraction in
        [0, 1) (client-go's wait.Jitter, used by acquire), so that candidates do not ask in step."""
        return self.retry_period * (1 + JITTER_FACTOR * fraction)


@dataclass(frozen=True)
class Record:
    """The election record: a Lease's spec (client-go's LeaderElectionRecord). Times are as written (RFC 3339
    strings), never compared: only whether the record changed matters."""

    holder: str = ""
    duration: int = 0
    transitions: int = 0
    acquire_time: str = ""
    renew_time: str = ""


@dataclass(frozen=True)
class Observation:
    """A record and when (our monotonic clock) it was first seen as it is."""

    record: Record
    seen_at: float


def observe(previous: Observation | None, record: Record, now: float) -> Observation:
    """The observation after reading ``record`` at ``now``: unchanged, the first sighting's time is kept (the
    holder did not renew meanwhile); changed, the clock starts again."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def expired(observation: Observation, now: float) -> bool:
    """The holder has not renewed for the record's own lease duration on our clock (client-go: not
    isLeaseValid). The record's duration, not ours: a released Lease carries 1 s."""
    return now >= observation.seen_at + observation.record.duration


class Action(Enum):
    CREATE = "create"  # no Lease yet
    TAKE = "take"  # free, released or expired: update it for us, transitions + 1
    RENEW = "renew"  # ours: update it, keeping acquireTime and transitions
    WAIT = "wait"  # another holder's, still valid


def decide(observation: Observation | None, identity: str, now: float) -> Action:
    """What a replica does with the Lease it just read (``None``: there is none)."""
    if observation is None:
        return Action.CREATE
    record = observation.record
    if record.holder == identity:
        return Action.RENEW
    if record.holder and not expired(observation, now):
        return Action.WAIT
    return Action.TAKE


def next_look(observation: Observation, now: float, jittered: float) -> float:
    """How long a waiting candidate sleeps: its jittered retry period, or less when the holder's lease runs out
    sooner (then it looks exactly when it may take the Lease; client-go would look up to a jittered period later).
    Candidates waking together are decided by the resourceVersion: one update wins, the others get 409."""
    return max(0.0, min(jittered, observation.seen_at + observation.record.duration - now))


def leading_until(sent_at: float, timing: LeaseTiming) -> float:
    """Until when a leader may act after a successful create, take or renewal sent at ``sent_at``."""
    return sent_at + timing.renew_deadline


def renewed_in_time(sent_at: float, answered_at: float, timing: LeaseTiming) -> bool:
    """A renewal keeps the leader leading if its answer came before the deadline it sets (sent + renew
    deadline), even after the previous one had passed (a slow API server: the fence was closed meanwhile, and
    reopens). Safe: the update was guarded by the resourceVersion of our previous renewal, so no one took the
    Lease in between, and a candidate's count starts again from this renewal. A leader whose loop found its
    deadline passed *before* sending (stopped, starved) never sends one: it stops for good (elector.py)."""
    return answered_at < leading_until(sent_at, timing)


def claim(action: Action, previous: Record | None, identity: str, duration: int, stamp: str) -> Record:
    """The record a replica writes for ``action`` (client-go's tryAcquireOrRenew, step 4): a renewal keeps
    acquireTime and leaseTransitions; taking the Lease from anyone else (a released Lease included) counts one
    transition more; a new Lease starts at 0."""
    if previous is None or action is Action.CREATE:
        return Record(identity, duration, 0, stamp, stamp)
    if action is Action.RENEW:
        return Record(identity, duration, previous.transitions, previous.acquire_time, stamp)
    return Record(identity, duration, previous.transitions + 1, stamp, stamp)
