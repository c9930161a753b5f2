"""Every watch of every cluster on one event loop, every list on a few shared threads (docs/architecture.md,
"Watches"; docs/performance.md, "27 members").

A thread per watch made the operator's thread count grow with kinds × clusters (about 20 per member: 540 at 27
members). A watch spends its life waiting for bytes, which an event loop does for any number of them on one
thread: here each informer's list-and-watch loop is a coroutine on the ``WatchLoop``'s loop, each cluster's
watches share an aiohttp session (a connection each, HTTP/1.1), and the events are decoded and handed to the
caches on that thread (their handlers index an object and enqueue a key: quick).

A list is different: its pages are decoded and stripped (CPU, tens of milliseconds for a page of 100), and it
goes through ``Kube.request``'s retries. Lists run on ``lists``, a ``FairPool`` of ``LIST_THREADS`` threads shared by
every cluster, at most ``LISTS_PER_CLUSTER`` of one cluster at once. This is the throttle on a new or recovering
member: 27 members starting at once (about 20 lists each) list ``LIST_THREADS`` at a time over the whole
fleet, in round robin, instead of 540 at once; a member that hangs holds at most ``LISTS_PER_CLUSTER`` of them,
each until its read deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Coroutine, TypeVar

import aiohttp

from .fairpool import FairPool
from .kube import Kube
from .watchstream import session_for

log = logging.getLogger(__name__)

R = TypeVar("R")
# The read buffer of one TLS connection of the loop. asyncio's SSLProtocol allocates 256 KiB per connection
# (CPython 3.11 Lib/asyncio/sslproto.py: ``max_size = 256 * 1024``, ``self._ssl_buffer =
# bytearray(self.max_size)``), all of it resident: 540 watch connections at 27 members held 135 MiB of buffers
# (measured: the operator's RSS was 288 MiB with 27 members and 7 suites, docs/performance.md). A smaller buffer
# only means more reads for a large event: the bytes not read yet wait in the socket or in OpenSSL's own record
# buffer, and sslproto.py reads again until nothing is left. 4 KiB instead of 16 (a TLS record's most, RFC 8446,
# 5.1) cut an idle watch connection from 62 to 51 KiB (docs/performance.md, "Without the kubernetes package").
TLS_READ_BUFFER = 4 * 1024
LIST_THREADS = 6  # lists at once over all clusters
LISTS_PER_CLUSTER = 2  # lists of one cluster at once (a hung member holds no more list threads than this)


class _WatchEventLoop(asyncio.SelectorEventLoop):
    """The event loop, with TLS read buffers of ``TLS_READ_BUFFER`` instead of asyncio's 256 KiB."""

    def _make_ssl_transport(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        transport = super()._make_ssl_transport(*args, **kwargs)  # type: ignore[misc]
        shrink_tls_buffer(getattr(transport, "_ssl_protocol", None))
        return transport


def shrink_tls_buffer(protocol: Any) -> None:
    """Give an asyncio SSLProtocol a read buffer of ``TLS_READ_BUFFER`` (its ``get_buffer`` and its copied reads
    use the instance's ``max_size``: CPython 3.11 Lib/asyncio/sslproto.py). An object without those attributes
    (another Python's implementation) is left as it is."""
    if protocol is None or not hasattr(protocol, "_ssl_buffer") or not hasattr(protocol, "max_size"):
        return
    protocol.max_size = TLS_READ_BUFFER
    protocol._ssl_buffer = bytearray(TLS_READ_BUFFER)
    protocol._ssl_buffer_view = memoryview(protocol._ssl_buffer)


class WatchLoop:
    """An asyncio loop on a thread of its own (started with its first watch), the clusters' sessions, and the list
    pool. Thread-safe: informers are started and stopped from any thread."""

    def __init__(self, name: str = "watches", list_threads: int = LIST_THREADS,
                 lists_per_cluster: int = LISTS_PER_CLUSTER):
        self.name = name
        self.lists = FairPool(f"{name}-list", list_threads, lists_per_cluster)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sessions: dict[int, tuple[Kube, aiohttp.ClientSession, int]] = {}  # id(kube) -> (kube, session, users)

    # ---- the loop -----------------------------------------------------------------------------
    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = _WatchEventLoop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def spawn(self, coro: Callable[[], Coroutine[Any, Any, Any]]) -> concurrent.futures.Future[Any]:
        """Run ``coro()`` on the loop; cancelling the returned future cancels it."""
        return asyncio.run_coroutine_threadsafe(coro(), self._ensure())

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, once started (None before its first watch)."""
        return self._loop

    def in_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    async def run_list(self, kube: Kube, fn: Callable[[], R]) -> R:
        """``fn()`` (a listing of ``kube``'s cluster) on the list pool, its turn given by the pool's rules."""
        return await asyncio.wrap_future(self.lists.submit(id(kube), fn))

    # ---- sessions (on the loop) -------------------------------------------------------------------
    def acquire(self, kube: Kube) -> aiohttp.ClientSession:
        """The cluster's session, made by its first watch; called on the loop."""
        key = id(kube)
        entry = self._sessions.get(key)
        if entry is None:
            entry = (kube, session_for(kube), 0)
        self._sessions[key] = (entry[0], entry[1], entry[2] + 1)
        return entry[1]

    async def release(self, kube: Kube) -> None:
        """A watch of the cluster ended: its last one closes the session (its connections)."""
        key = id(kube)
        k, session, users = self._sessions[key]
        if users > 1:
            self._sessions[key] = (k, session, users - 1)
            return
        del self._sessions[key]
        await session.close()

    def sessions(self) -> int:
        """Clusters with a watch running (their sessions open)."""
        return len(self._sessions)

    def stop(self) -> None:
        """The list pool stops; the loop keeps running for the watches still told to stop (they end themselves)."""
        self.lists.shutdown()


_shared: WatchLoop | None = None
_shared_lock = threading.Lock()


def shared() -> WatchLoop:
    """The process's loop, for an informer or cache made without one (the operator passes its own:
    context.py)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = WatchLoop()
        return _shared
