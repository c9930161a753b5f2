"""The Lease object: read it as a ``Record``, create it, and replace it guarded by its resourceVersion.

As client-go's ``resourcelock.LeaseLock`` (v0.37.2, ``tools/leaderelection/resourcelock/leaselock.go``): ``Get``,
``Create``, and ``Update`` sending the whole Lease with the resourceVersion last read, so that of two replicas
updating the same version one gets 409 Conflict (optimistic concurrency: no write is lost or merged).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

from ..reconcile.kube import ApiError, Kube
from .timing import Record

LEASE = ("coordination.k8s.io/v1", "Lease")


def micro_time(now: dt.datetime) -> str:
    """A metav1.MicroTime as the API server writes it (RFC 3339, microseconds, UTC)."""
    return now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def record_of(lease: dict) -> Record:
    spec = lease.get("spec") or {}
    return Record(holder=spec.get("holderIdentity") or "", duration=int(spec.get("leaseDurationSeconds") or 0),
                  transitions=int(spec.get("leaseTransitions") or 0), acquire_time=spec.get("acquireTime") or "",
                  renew_time=spec.get("renewTime") or "")


def spec_of(record: Record) -> dict:
    return {"holderIdentity": record.holder, "leaseDurationSeconds": record.duration,
            "leaseTransitions": record.transitions, "acquireTime": record.acquire_time,
            "renewTime": record.renew_time}


@dataclass(frozen=True)
class Read:
    record: Record
    resource_version: str


class LeaseStore:
    """One Lease, through a client of its own (short deadlines, no retries inside a request: the elector decides
    when to try again, and must never wait past its renew deadline). ``wall``: the clock written into
    acquireTime/renewTime, for people and tools only (no replica compares them)."""

    def __init__(self, kube: Kube, namespace: str, name: str, wall: Callable[[], dt.datetime] = utc_now,
                 component: str = "leader-election"):
        """``component``: the Lease's app.kubernetes.io/component label (sharding lists its heartbeats by it)."""
        self.kube, self.namespace, self.name, self.wall = kube, namespace, name, wall
        self.component = component

    def describe(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def stamp(self) -> str:
        return micro_time(self.wall())

    def get(self, timeout: float | None = None) -> Read | None:
        try:
            lease = self._send("GET", None, timeout)
        except ApiError as err:
            if err.status == 404:
                return None
            raise
        return Read(record_of(lease), lease["metadata"]["resourceVersion"])

    def create(self, record: Record, timeout: float | None = None) -> str:
        body = {"apiVersion": LEASE[0], "kind": LEASE[1], "spec": spec_of(record), "metadata": self._metadata()}
        return self._send("POST", body, timeout)["metadata"]["resourceVersion"]

    def update(self, record: Record, resource_version: str, timeout: float | None = None) -> str:
        """Replace the Lease's spec if it is still at ``resource_version`` (else ApiError 409)."""
        body = {"apiVersion": LEASE[0], "kind": LEASE[1], "spec": spec_of(record),
                "metadata": {**self._metadata(), "resourceVersion": resource_version}}
        return self._send("PUT", body, timeout)["metadata"]["resourceVersion"]

    def _metadata(self) -> dict:
        """The labels go with every update too: a PUT replaces the whole object, and sharding finds the replicas'
        heartbeats by their component label."""
        return {"name": self.name, "namespace": self.namespace,
                "labels": {"app.kubernetes.io/name": "sovereign-suite-operator",
                           "app.kubernetes.io/component": self.component}}

    def _send(self, method: str, body: dict | None, timeout: float | None) -> dict:
        """``timeout``: seconds to connect and to wait for the answer (None: the client's deadlines)."""
        kind = self.kube.require(*LEASE)
        path = kind.path(self.namespace, None if method == "POST" else self.name)
        limit = (max(0.1, timeout), max(0.1, timeout)) if timeout is not None else None
        return self.kube.request(method, path, body, what=self.describe(), timeout=limit)


def is_conflict(err: ApiError) -> bool:
    return err.status == 409
