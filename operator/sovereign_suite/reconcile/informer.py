"""A list + watch of one kind (in one namespace or cluster-wide), kept in a small in-memory store.

client-go's reflector, reduced to what the operator needs: list (paginated) then watch from the list's
resourceVersion with bookmarks on; a watch the server ends is resumed from the last version seen; an expired
version (410 Gone) relists; other errors back off, then relist (a working list is what clears ``last_error``:
a re-opened watch may bring no event for minutes). A watch lasts the cluster's ``Deadlines.watch`` unless told
otherwise: the server ends a quiet one then, and one that brings no byte for longer means the server does not
answer (``Unreachable``, a failure like any other: transport.py). Each object is stripped (``strip``) before it
is stored, so the store keeps only what the pipeline reads (no managedFields' field sets, no spec of most kinds:
see cache.py).

No thread of its own: the list-and-watch loop is a coroutine on a ``WatchLoop`` (watchloop.py: one event loop for
every watch of every cluster), its lists run on the loop's shared list pool (a few at once over all clusters).
``on_event(type, old, new)`` runs for every change, including the changes a relist finds, on the loop's thread
(watch events) or a list thread (a listing's differences); it must be quick (the cache indexes the object and
enqueues a suite key) and must not wait for the cluster.

Parking (``park=True``: a member's child kinds, cache.py): a watch whose store is empty, and to which the operator
has written nothing for ``PARK_AFTER`` seconds, stops after its list or at the end of its watch period and holds
no connection (each costs about 50 KiB: docs/performance.md, "Cutting the replica's memory"); ``wake()``, called
before the operator writes an object of its kind (kube.py, ``on_write``), lists and watches again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Callable

from . import watchstream
from .kube import ApiError, Kind, Kube
from .unserved import DEFAULT_BASE, DEFAULT_CAP, UnservedBackoff
from .watchloop import WatchLoop, shared

log = logging.getLogger(__name__)

Strip = Callable[[dict[str, Any]], dict[str, Any]]
OnEvent = Callable[[str, "dict[str, Any] | None", "dict[str, Any] | None"], None]
StoreKey = tuple[str, str]  # (namespace, name)
# Objects per list page. A page is decoded whole before it is stripped, and after a restart every watch of every
# cluster lists at once: small pages keep that burst small (100 NetworkPolicies as sent are about 1.5 MB).
PAGE_SIZE = 100
# How long after the operator last wrote its kind (``wake``) a watch may park. Longer than any write to a member
# takes with its retries (transport.MEMBER: 5 s to connect, 15 s to answer, one more try after up to 2 s: 42 s),
# so that an object written just before a list that did not see it yet is seen by the watch, not parked over.
PARK_AFTER = 120.0


def _key(obj: dict[str, Any]) -> StoreKey:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


class Informer:
    def __init__(self, kube: Kube, api_version: str, kind: str, *, strip: Strip,
                 namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None, on_event: OnEvent | None = None,
                 on_served: Callable[[Informer], None] | None = None,
                 on_health: Callable[[Informer], None] | None = None,
                 unserved_retry: float = DEFAULT_BASE, unserved_retry_max: float = DEFAULT_CAP,
                 watch_timeout: int | None = None,
                 watches: WatchLoop | None = None, park: bool = False, woken_at: float | None = None,
                 park_after: float = PARK_AFTER):
        self.kube, self.api_version, self.kind = kube, api_version, kind
        self.namespace, self.label_selector, self.field_selector = namespace, label_selector, field_selector
        self.strip = strip
        self.on_event = on_event
        self.on_served = on_served  # called when the kind starts or stops being served (a CRD installed, deleted)
        self.on_health = on_health  # called when the list/watch starts failing or works again
        # a kind not served is looked for again after unserved_retry, doubled up to unserved_retry_max (unserved.py)
        self.unserved = UnservedBackoff(unserved_retry, unserved_retry_max)
        self.watch_timeout = watch_timeout or kube.deadlines.watch
        self.watches = watches or shared()  # where its watch runs and its lists are scheduled
        self.synced = threading.Event()  # the first list is in the store (or the kind is not served)
        self.served = True
        self.last_error: str = ""
        self.last_status: int = 0  # the API server's status code of the last error (0: no answer at all)
        self._store: dict[StoreKey, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = threading.Event()  # its loop has ended (stopped)
        self._task: Any = None  # the concurrent future of its coroutine on the loop
        self._kind: Kind | None = None  # the resource, found by the last list (its watch needs no discovery)
        self.park = park  # may stop watching while its store is empty (see the module's docstring)
        self.park_after = park_after
        self.parked = False  # not watching now: listed empty, nothing written since
        # time.monotonic() of the last wake (a write of its kind about to be sent); None: never
        self._woken_at = woken_at
        self._wake: asyncio.Event | None = None  # set on the loop by wake(), made by the coroutine

    def __repr__(self) -> str:
        return f"Informer({self.kind}{' in ' + self.namespace if self.namespace else ''})"

    # ---- reading ------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._store.get((namespace, name))

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._store.values())

    # ---- life ---------------------------------------------------------------------------------
    def start(self) -> Informer:
        self._task = self.watches.spawn(self._run)
        self._task.add_done_callback(lambda _: self.done.set())  # also when cancelled before it began
        return self

    def stop(self) -> None:
        """Its loop ends: a watch waiting for bytes is cancelled at once (its connection closed); a list running
        on a list thread ends by its deadline, its result dropped."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()

    def wake(self) -> None:
        """The operator is about to write an object this informer would hold: watch (list again if parked), and
        do not park for ``park_after``. Any thread; called before the write is sent."""
        self._woken_at = time.monotonic()
        event, loop = self._wake, self.watches.loop()
        if event is not None and loop is not None and not event.is_set():  # (a pass writes many objects)
            loop.call_soon_threadsafe(event.set)

    def _may_park(self) -> bool:
        """Parking is allowed now: only a kind that is served (a kind not served keeps asking discovery), with
        nothing stored and no write of its kind for ``park_after``."""
        with self._lock:
            empty = not self._store
        return (self.park and self.served and empty and not self._stop.is_set()
                and (self._woken_at is None or time.monotonic() - self._woken_at > self.park_after))

    async def _parked(self) -> None:
        """Hold no connection until woken (or stopped: cancelled)."""
        assert self._wake is not None
        self.parked = True
        log.debug("%r: nothing to watch; parked", self)
        try:
            await self._wake.wait()
        finally:
            self.parked = False

    def _failing(self, error: str, status: int) -> None:
        was = bool(self.last_error)
        self.last_error, self.last_status = error, status
        if was != bool(error) and self.on_health is not None:
            try:
                self.on_health(self)
            except Exception:  # noqa: BLE001 - a broken handler must not end the watch
                log.exception("%r: health handler failed", self)

    def _emit(self, type_: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(type_, old, new)
        except Exception:  # noqa: BLE001 - a broken handler must not end the watch
            log.exception("%r: event handler failed", self)

    def _replace(self, items: list[dict[str, Any]]) -> None:
        """The store becomes a fresh listing (stripped already); the differences are emitted as events."""
        fresh = {_key(o): o for o in items}
        with self._lock:
            old, self._store = self._store, fresh
        for k, obj in fresh.items():
            before = old.get(k)
            if before is None or before["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("ADDED" if before is None else "MODIFIED", before, obj)
        for k, before in old.items():
            if k not in fresh:
                self._emit("DELETED", before, None)

    def _apply(self, type_: str, raw: dict[str, Any]) -> None:
        obj = self.strip(raw)
        k = _key(obj)
        with self._lock:
            before = self._store.get(k)
            if type_ == "DELETED":
                self._store.pop(k, None)
            else:
                self._store[k] = obj
        self._emit(type_, before, None if type_ == "DELETED" else obj)

    def _list(self) -> str:
        """List into the store (on a list thread); the list's resourceVersion ("" when the kind is not served).
        The raw listing lives only in this frame: kept in a long-lived one, it would stay referenced while the
        watch runs (for ever), every object unstripped (an operator restarted over 50 suites on four members sat
        at 320 MiB instead of 181: docs/performance.md)."""
        self._kind = self.kube.kind(self.api_version, self.kind)
        items, rv = self.kube.list_rv(self.api_version, self.kind, self.label_selector, self.namespace,
                                      self.field_selector, each=self.strip, page_size=PAGE_SIZE)
        if self._stop.is_set():
            return ""  # stopped while it listed: nothing of it emitted
        served, self.served = self.served, bool(rv)
        self._replace(items)
        self._failing("", 0)  # answered again (a watch may then run for minutes without an event)
        if served != self.served and self.synced.is_set() and self.on_served is not None:
            self.on_served(self)
        self.synced.set()
        return rv

    async def _watch(self, session: Any, rv: str) -> str:
        """Apply the watch's events until the server ends it; the last resourceVersion seen."""
        kind = self._kind
        if kind is None:
            return ""  # served no more: list again (it says so)
        async for ev in watchstream.watch(session, self.kube, kind, rv, self.label_selector, self.namespace,
                                          self.field_selector, self.watch_timeout):
            type_, obj = ev.get("type"), ev.get("object") or {}
            if type_ == "ERROR":
                raise ApiError(int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", ""),
                               f"watch {self.kind}")
            rv = obj.get("metadata", {}).get("resourceVersion") or rv
            if type_ in ("ADDED", "MODIFIED", "DELETED"):
                obj.setdefault("apiVersion", self.api_version)
                obj.setdefault("kind", self.kind)
                self._apply(type_, obj)
            del ev, obj  # not held while waiting for the next event (the store has the stripped copy)
        return rv

    async def _wait_served(self, delay: float) -> None:
        """Sleep ``delay`` (the backoff), or less if a request of this cluster's client (a pass that needs a kind
        of the group) finds the group serving a kind it did not: the list after it then needs no request of its
        own to discovery."""
        loop, woken = asyncio.get_running_loop(), asyncio.Event()
        cancel = self.kube.waiters.add(self.api_version, lambda: loop.call_soon_threadsafe(woken.set))
        try:
            if not self.kube.known(self.api_version, self.kind):  # else found since this watch's list: no wait
                await asyncio.wait_for(woken.wait(), delay)
        except asyncio.TimeoutError:
            pass
        finally:
            cancel()

    async def _run(self) -> None:
        session = self.watches.acquire(self.kube)
        try:
            await self._loop(session)
        except asyncio.CancelledError:
            pass  # stopped
        finally:
            await self.watches.release(self.kube)

    async def _loop(self, session: Any) -> None:
        rv = ""
        delay = 0.5
        self._wake = asyncio.Event()
        while not self._stop.is_set():
            try:
                # cleared before the store is looked at: a wake() after this is not lost (it sets it again)
                self._wake.clear()
                if rv and self._may_park():  # a watch period ended with nothing to watch
                    await self._parked()
                    rv = ""  # what changed meanwhile is not known: list again
                    continue
                if not rv:
                    rv = await self.watches.run_list(self.kube, self._list)
                    if not rv:  # not served (CRD not installed yet): ask discovery again later
                        await self._wait_served(self.unserved.next())
                        continue
                    self.unserved.reset()
                    if self._may_park():  # listed empty: no watch opened at all
                        await self._parked()
                        rv = ""
                        continue
                rv = await self._watch(session, rv)
                delay = 0.5
                self._failing("", 0)
            except asyncio.CancelledError:
                raise
            except ApiError as err:
                if err.status == 410:  # too old: relist (client-go does the same)
                    rv = ""
                    continue
                if err.status == 404:  # the kind stopped being served (CRD deleted)
                    rv = ""
                    continue
                self._failing(str(err), err.status)
                rv = ""  # list again: only a list that works says the watch works again (a watch may stay silent)
                log.warning("%r: %s; retrying in %.1f s", self, err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception as exc:  # noqa: BLE001 - connection dropped, API server restarting...
                self._failing(str(exc), 0)
                rv = ""
                log.warning("%r: %s; retrying in %.1f s", self, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
