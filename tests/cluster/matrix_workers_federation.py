"""FR's federation with DE across a change of its writer set (test_matrix_workers_real.py), with real Synapse.

Why a message to DE could wait, found with the lab's processes (docs/components/matrix.md, "Real Synapse"): with
``outbound_federation_restricted_to`` every FR process's federation request goes through a federation sender's
replication listener, and Synapse's retry limiter wraps the whole request (synapse/http/matrixfederationclient.py,
``get_retry_limiter``; synapse/util/retryutils.py at v1.163.2). Main's user directory refreshes a remote user's
stale profile 10 s after it starts (synapse/handlers/user_directory.py: ``kick_off_remote_profile_refresh_process``
``call_later(10 s)``, ``get_profile(ignore_backoff=False)``, a 10 s timeout, so no retry); when no sender listens
yet, the connection is refused and DE itself is backed off (``destinations.retry_interval``, Synapse's default
first interval 10 minutes). The federation sender then holds every transaction to DE, logging only at DEBUG
(synapse/federation/sender/per_destination_queue.py, ``NotRetryingDestination``), until the backoff ends or DE
contacts FR ("Marking origin ... as up", synapse/federation/transport/server/_base.py). Nothing is lost: the event
stays queued and in ``destination_rooms`` (catch-up). The operator renders a 30 s first backoff for a topology
with senders (components/matrix/workers.py, DESTINATION_MIN_RETRY_INTERVAL), which bounds the wait.
"""

from __future__ import annotations

import re
import time
from typing import Any

from .matrix_lab import Applied, Lab
from .matrix_workers_lab import Workers, sql
from .matrix_workers_roll import log_after, shard

# The bound on a message's wait for DE after a change (from its send; the backoff may have begun before):
BACKOFF_S = 30  # the first backoff the operator renders (destination_min_retry_interval; asserted below)
WAKEUP_S = 60 + 5  # the sender wakes destinations with events to catch up every minute, 5 s apart
# (synapse/federation/sender/__init__.py at v1.163.2: WAKEUP_RETRY_PERIOD, WAKEUP_INTERVAL_BETWEEN_DESTINATIONS),
# skipping those still backed off (filter_destinations_by_retry_limiter)
SLACK_S = 30  # a loaded 2-core machine: processing the wake-up, the transaction, DE persisting it, the poll
DELIVERY_BOUND_S = BACKOFF_S + WAKEUP_S + SLACK_S


def sent_to(domain: str) -> re.Pattern[str]:
    """A transaction that reached ``domain`` (synapse/http/matrixfederationclient.py, "Completed request")."""
    return re.compile(rf"Completed request: 200 .* - PUT matrix-federation://{re.escape(domain)}(:\d+)?"
                      r"/_matrix/federation/v1/send/")


def backed_off(log: str, domain: str) -> list[str]:
    """The lines where a process backed ``domain`` off (synapse/util/retryutils.py, RetryDestinationLimiter
    ``__exit__``: "Connection to <destination> was unsuccessful (...); backoff now <ms>")."""
    return re.findall(rf"^.*Connection to {re.escape(domain)} was unsuccessful .*$", log, re.M)


def profile_refresh_due(lab: Lab, app: Applied, user: str) -> None:
    """Make the remote ``user``'s profile due for the user directory's refresh, the row Synapse itself writes a
    minute after a remote user joins a private room (synapse/storage/databases/main/user_directory.py,
    ``set_remote_user_profile_in_user_dir_stale``), so that main's start-up refresh asks the user's server."""
    server = user.split(":", 1)[1]
    sql(lab, "fr", app, "INSERT INTO user_directory_stale_remote_users (user_id, user_server_name, next_try_at_ts, "
                        f"retry_counter) VALUES ('{user}', '{server}', 0, 0) "
                        "ON CONFLICT (user_id) DO UPDATE SET next_try_at_ts = 0")


def federation_state(lab: Lab, app: Applied, domain: str) -> str:
    """What FR's database and logs say about sending to ``domain`` (for a failure's message): its
    ``destinations`` row (failure_ts, retry_last_ts, retry_interval, last_successful_stream_ordering), the
    senders' stream positions, and every process's lines about the destination's backoff."""
    rows = sql(lab, "fr", app, "SELECT destination, failure_ts, retry_last_ts, retry_interval, "
                               "last_successful_stream_ordering FROM destinations")
    positions = sql(lab, "fr", app, "SELECT type, instance_name, stream_id FROM federation_stream_position")
    lines = [f"{name}: {line}" for name in lab.procs if name.startswith("synapse-")
             for line in lab.log(name).splitlines()
             if domain in line and re.search(r"unsuccessful|Not retrying|Marking origin|wrong worker", line)]
    return f"destinations {rows}; federation_stream_position {positions}; backoff lines:\n" + "\n".join(lines)


def delivered(lab: Lab, app: Applied, de: Any, bob_token: str, room: str, sends: dict[str, float]) -> dict:
    """Each message of ``sends`` (text -> when its wait starts) read on DE within DELIVERY_BOUND_S of that time;
    the seconds each took. A message not there names FR's federation state in the failure."""
    took = {}
    for text, since in sends.items():
        try:
            de.wait_message(bob_token, room, text, timeout=max(1.0, since + DELIVERY_BOUND_S - time.monotonic()))
        except AssertionError as err:
            raise AssertionError(f"{err}\n{federation_state(lab, app, de.domain)}") from None
        took[text] = round(time.monotonic() - since)
    return took


def check_federation(lab: Lab, workers: Workers, new: Applied, offsets: dict[str, int], fr: Any, de: Any,
                     tokens: tuple[str, str], room: str, sends: dict[str, float]) -> dict[str, float]:
    """After a writer set change (``offsets``: the logs' sizes once the old processes stopped), FR and DE still
    talk both ways. Each message of ``sends`` (text -> when it was sent) reaches DE within DELIVERY_BOUND_S of
    its send; the new processes' transactions leave FR from the one federation sender Synapse's sharding over the
    new ``federation_sender_instances`` picks for DE (the same sha256 as the rooms', synapse/config/_base.py at
    v1.163.2; FederationSender queues only the destinations its instance handles,
    synapse/federation/sender/__init__.py); DE's answer reaches FR. ``tokens``: alice's (FR), bob's (DE).
    Returns each message's seconds from its send to DE showing it."""
    alice, bob = tokens
    assert new.homeserver["federation"]["destination_min_retry_interval"] == f"{BACKOFF_S}s"
    took = delivered(lab, new, de, bob, room, sends)
    senders = new.homeserver["federation_sender_instances"]
    assert workers.pods["synapse-federation-sender"] == senders
    owner, sent = shard(de.domain, senders), sent_to(de.domain)
    assert sent.search(log_after(workers, owner, offsets)), (owner, log_after(workers, owner, offsets)[-3000:])
    others = ["synapse-fr", *[p for pods in workers.pods.values() for p in pods if p != owner]]
    assert not [p for p in others if sent.search(log_after(workers, p, offsets))], others
    answer = f"Bien reçu ({len(senders)} senders)"
    de.send(bob, room, answer)
    fr.wait_message(alice, room, answer)
    return took
