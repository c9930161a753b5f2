"""The plain types of the cluster client (kube.py): an API server's error, and a kind's resource as discovery
found it. Apart from kube.py so that its discovery (discovery.py) can use them without an import cycle; kube.py
re-exports them, where the rest of the operator imports them from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An API server error, with the object it concerned and the server's own message."""

    def __init__(self, status: int, reason: str, message: str, ref: str, method: str = ""):
        self.status, self.reason, self.message, self.ref, self.method = status, reason, message, ref, method
        super().__init__(f"{ref}: {status} {reason}: {message}")


class Unreachable(ApiError):
    """No HTTP answer at all (transport.py: a timeout, a connection refused or reset, a TLS failure): status 0."""

    def __init__(self, message: str, ref: str, method: str = ""):
        super().__init__(0, "Unreachable", message, ref, method)


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def base(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        p = self.base
        if self.namespaced and namespace:
            p += f"/namespaces/{namespace}"
        p += f"/{self.plural}"
        if name:
            p += f"/{name}"
        if sub:
            p += f"/{sub}"
        return p


def ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"
