"""API discovery of one cluster for its client (kube.py's ``Kube`` inherits ``Discovery``): which resource
serves a kind, cached per group/version, one request per group at a time, and the watches waiting for a group
woken when it starts serving a kind (unserved.py). Apart from kube.py to keep each file to one concern.

What a ``Discovery`` needs from the class it is mixed into: ``request`` (kube.py's transport), ``_lock``,
``_groups``, ``_asking``, ``discovery_ttl`` and ``waiters``, all set by ``Kube.__init__``."""

from __future__ import annotations

import threading
import time

from .kinds import ApiError, Kind


class Discovery:
    def kind(self, api_version: str, kind: str) -> Kind | None:
        """The resource of a kind, or None when the cluster does not serve it (e.g. no CNPG installed).

        A kind found not served is asked again after ``discovery_ttl`` seconds (CloudNativePG or the Prometheus
        Operator installed after start are seen within it by a pass that needs the kind); a served kind is kept
        until a request on one of its group's kinds gets a 404 (a CRD deleted), which drops the group
        (``forget_api``). An answer that finds kinds the last one lacked wakes the watches waiting for the group
        (``waiters``: their own retries back off, unserved.py)."""
        with self._lock:
            asking = self._asking.setdefault(api_version, threading.Lock())
        # one request per group at a time: the watches of a group's kinds wake together (unserved.py), and those
        # waiting here are answered by the first one's request
        with asking:
            return self._kind(api_version, kind)

    def _kind(self, api_version: str, kind: str) -> Kind | None:
        with self._lock:
            cached = self._groups.get(api_version)
            # a kind found is kept until a request on its group gets a 404; a kind not found is asked again after
            # the TTL, also in a group that serves other kinds (its CRDs are established one by one: a group
            # read between two of them would otherwise lack the second for ever)
            if cached is not None and (kind in cached[1] or time.monotonic() - cached[0] < self.discovery_ttl):
                return cached[1].get(kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        try:
            doc = self.request("GET", base, what=f"discovery {api_version}")
            resources = {
                r["kind"]: Kind(api_version, r["kind"], r["name"], r["namespaced"])
                for r in doc.get("resources", [])
                if "/" not in r["name"]
            }
        except ApiError as err:
            if err.status != 404:
                raise
            resources = {}
        with self._lock:
            before = self._groups.get(api_version)
            self._groups[api_version] = (time.monotonic(), resources)
        if resources.keys() - (before[1].keys() if before is not None else set()):
            self.waiters.found(api_version)
        return resources.get(kind)

    def known(self, api_version: str, kind: str) -> bool:
        """Whether the last discovery answer found the kind (no request)."""
        with self._lock:
            return kind in self._groups.get(api_version, (0.0, {}))[1]

    def forget_api(self, api_version: str) -> None:
        with self._lock:
            self._groups.pop(api_version, None)

    def require(self, api_version: str, kind: str) -> Kind:
        k = self.kind(api_version, kind)
        if k is None:
            raise ApiError(404, "NotFound", f"the cluster does not serve {kind}.{api_version}", kind)
        return k
