"""How the operator reaches an API server: its deadlines, no retry hidden in the client, and what counts as a
server that does not answer (docs/multi-cluster.md, "When a member hangs").

The kubernetes client hands requests to urllib3, whose pools retry on their own unless told not to: with
``Configuration.retries`` unset, ``RESTClientObject`` gives the pools urllib3's default, ``Retry(3)``, which
re-sends a request whose connection failed and, for GET, PUT and DELETE (``Retry.DEFAULT_ALLOWED_METHODS``), one
whose answer timed out (kubernetes==37.0.2 kubernetes/client/rest.py: ``if configuration.retries is not None:
pool_args['retries'] = configuration.retries``; urllib3==2.8.0 urllib3/util/retry.py: ``Retry.DEFAULT =
Retry(3)``). Against a server that accepts connections and never answers, every read then waited four times its
timeout. ``retries = False`` makes urllib3 raise the first error as it is (retry.py, ``increment``: ``if
self.total is False and error: raise``); ``Kube.request`` alone decides what is tried again.

A server stopped (SIGSTOP) or behind a black-holed route keeps its TCP connections open, and the kernel of a
stopped server still acknowledges keepalive probes: only a read timeout notices it. A watch asks the server to end
it after ``watch`` seconds (``timeoutSeconds``), so a quiet but healthy watch ends cleanly before its read
timeout (``watch + read``); no byte in that time means the server does not answer. TCP keepalive
(``keepalive_socket_options``) still closes idle pooled connections to a host that vanished, so that no request
is sent on a dead one.

The operator's own clusters are reached through apiclient.py (urllib3 with these settings, without the
``kubernetes`` package); the CLI commands that keep the official client get the same rules from
``transport_error``, which also reads its ``ApiException``.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import urllib3

from .apiclient import ClientConfig

log = logging.getLogger(__name__)

# Connections kept per cluster: one per watch (about 20 per cluster) besides the workers' and the apply pool's.
# The kubernetes client's default (5 per core: 10 here) made urllib3 drop and reopen TLS connections all the time
# ("Connection pool is full").
CONNECTION_POOL = 64
# Idle pooled connections are probed after 15 s and dropped after 3 probes 5 s apart go unanswered (30 s in all),
# so a connection to a host that vanished is not kept for the next request.
KEEPALIVE = (15, 5, 3)


@dataclass(frozen=True)
class Deadlines:
    """How long the operator waits for one cluster. ``connect``: a TCP and TLS connection; ``read``: an answer
    (urllib3 applies it to each read of the socket, the response's headers and each part of its body);
    ``watch``: a watch's ``timeoutSeconds``. A watch's read timeout is ``watch + read``."""

    connect: float
    read: float
    watch: int

    @property
    def watch_read(self) -> float:
        return self.watch + self.read

    @property
    def request(self) -> tuple[float, float]:
        return self.connect, self.read  # the (connect, read) pair of the client's _request_timeout


# The operator's own cluster: the values it always used (a hub that does not answer stops everything anyway).
HUB = Deadlines(connect=10.0, read=60.0, watch=300)
# A member cluster (settings SOVEREIGN_SUITE_MEMBER_*): a member that does not answer is noticed by a pass within
# ``read`` seconds, by its watches within ``watch + read`` (60 s). 15 s leaves room for an admission webhook at
# its default 10 s timeout; a member behind slower webhooks needs a longer read deadline.
MEMBER = Deadlines(connect=5.0, read=15.0, watch=45)


def keepalive_socket_options(idle: int, interval: int, count: int) -> list[tuple[int, int, int]]:
    """urllib3 socket options turning TCP keepalive on, as client-go asks the kernel for it and as
    kubernetes==37.0.2 kubernetes/utils/keepalive.py builds them: urllib3's own defaults (Nagle off) first,
    because urllib3 replaces its defaults with the list it is given; options the platform lacks left out."""
    options = list(urllib3.connection.HTTPConnection.default_socket_options)
    options.append((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def client_configuration(pool: int = CONNECTION_POOL) -> ClientConfig:
    """A client configuration with no hidden retry, a connection pool of ``pool`` and TCP keepalive. Set before
    the ApiClient is built: its pool manager reads it once (apiclient.py)."""
    return ClientConfig(retries=False, connection_pool_maxsize=pool, socket_options=keepalive_socket_options(
        *KEEPALIVE))


class Cause(NamedTuple):
    """Why an API server gave no HTTP answer."""

    message: str
    retriable: bool  # worth one more try at once (a connection refused or reset); a timeout or TLS failure is not


def transport_error(exc: BaseException) -> Cause | None:
    """The cause when ``exc`` means the server gave no HTTP answer (timeout, connection refused or reset, TLS
    failure such as an expired or wrong certificate, broken HTTP); None for anything else (a bug: raised as is)."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # a client built elsewhere, with urllib3's retries on
    official = sys.modules.get("kubernetes.client.exceptions")  # never imported here: only loaded can it be raised
    if official is not None and isinstance(exc, official.ApiException):
        # the official client (CLI commands) wraps urllib3's SSLError: ApiException(status=0, reason="SSLError\n...")
        # (kubernetes==37.0.2 kubernetes/client/rest.py)
        reason = str(exc.reason or "")
        if exc.status == 0 and reason.startswith("SSLError"):
            return Cause("TLS: " + " ".join(reason.split("\n", 1)[-1].split())[:300], False)
        return None
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # refused, unreachable host, DNS
        return Cause(text, True)  # (checked first: urllib3 2 derives it from ConnectTimeoutError)
    if isinstance(exc, (urllib3.exceptions.TimeoutError, socket.timeout)):
        return Cause(f"no answer in time: {text}", False)
    if isinstance(exc, (urllib3.exceptions.SSLError, ssl.SSLError)):
        return Cause(f"TLS: {text}", False)
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException)):
        return Cause(text, True)
    return None


class Reachability:
    """Whether a cluster answers. A request with no HTTP answer marks it down; an answer (of any status, a watch's
    event included) to a request sent after that marks it up again (an answer sent before the server froze and
    read later says nothing about now). ``on_change`` runs on each change, on the thread that saw it (a member's:
    enqueue the suites using it). ``name``: the cluster, for the log."""

    def __init__(self, on_change: Callable[[], None] | None = None, name: str = "the operator's cluster"):
        self.on_change = on_change
        self.name = name
        self._lock = threading.Lock()
        self._failure: str | None = None
        self._failed_at = 0.0  # time.monotonic() when marked down

    def failure(self) -> str | None:
        """Why the last request got no answer; None while it answers."""
        return self._failure

    def failed(self, message: str) -> None:
        with self._lock:
            changed, self._failure, self._failed_at = self._failure is None, message, time.monotonic()
        if changed:
            log.warning("%s does not answer: %s", self.name, message)
            if self.on_change is not None:
                self.on_change()

    def answered(self, sent: float) -> None:
        """An answer to a request sent at ``sent`` (time.monotonic())."""
        if self._failure is None:  # the usual case, without the lock: this runs on every answer
            return
        with self._lock:
            changed = self._failure is not None and sent > self._failed_at
            if changed:
                self._failure = None
        if changed:
            log.info("%s answers again", self.name)
            if self.on_change is not None:
                self.on_change()
