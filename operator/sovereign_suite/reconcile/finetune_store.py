"""The FineTunes as last seen (Kopf's watch), their work-queue key and what the operator remembers of each.

FineTunes share the suites' work queue and workers (worker.py dispatches on the key's type): leadership, sharding
and shutdown then apply to them with nothing added. Their key is a class of its own, never equal to a
``SuiteKey`` of the same namespace and name (a frozen dataclass compares its class; two NamedTuples of equal
fields would be equal, and one key would stand for both).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from ..components.finetune import LABEL_FINETUNE, LABEL_FINETUNE_NS
from .own_writes import with_own_status
from .problems import SuiteKey


@dataclass(frozen=True)
class FineTuneKey:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"FineTune {self.namespace}/{self.name}"


def finetune_of(obj: dict[str, Any] | None) -> FineTuneKey | None:
    """The FineTune a training Job, its pod or its NetworkPolicy belongs to (components/finetune labels)."""
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    if LABEL_FINETUNE in labels and LABEL_FINETUNE_NS in labels:
        return FineTuneKey(labels[LABEL_FINETUNE_NS], labels[LABEL_FINETUNE])
    return None


def suite_of_body(body: dict[str, Any]) -> SuiteKey | None:
    """The suite a FineTune names (spec.suite; its namespace defaults to the FineTune's), read without parsing."""
    ref = (body.get("spec") or {}).get("suite") or {}
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    namespace = ref.get("namespace") or body["metadata"].get("namespace") or ""
    return SuiteKey(namespace, ref["name"]) if isinstance(namespace, str) else None


@dataclass
class FineTuneMemory:
    last_status: dict[str, Any] | None = None  # the status last written (the watch may not show it yet)
    status_version: str = ""  # the FineTune's resourceVersion that write made
    # the pod of the ended Job of that uid, as listed once: the pod cache keeps no ended pod, and an ended Job's pod
    # no longer changes, so a converged FineTune's passes list nothing
    ended_pod: tuple[str, dict[str, Any] | None] | None = None
    # whether the adapters ConfigMap at that resourceVersion (the watch cache's) lists (name, uri): read once per
    # version of the ConfigMap, not once per pass
    served: tuple[tuple[str, str, str], bool] | None = None


class FineTunes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[FineTuneKey, dict[str, Any]] = {}
        self._memory: dict[FineTuneKey, FineTuneMemory] = {}

    def set(self, key: FineTuneKey, body: dict[str, Any]) -> None:
        with self._lock:
            self._bodies[key] = body

    def get(self, key: FineTuneKey) -> dict[str, Any] | None:
        with self._lock:
            return self._bodies.get(key)

    def current(self, key: FineTuneKey) -> dict[str, Any] | None:
        """The FineTune as a pass must see it: with the status this operator wrote last while the watch has not
        shown that write yet (own_writes.with_own_status, as for suites)."""
        with self._lock:
            body, mem = self._bodies.get(key), self._memory.get(key)
        return body if mem is None else with_own_status(body, mem)

    def bodies(self) -> list[dict[str, Any]]:
        return [b for b in (self.current(k) for k in self.keys()) if b is not None]

    def keys(self) -> list[FineTuneKey]:
        with self._lock:
            return sorted(self._bodies, key=lambda k: (k.namespace, k.name))

    def of_suite(self, suite: SuiteKey) -> list[FineTuneKey]:
        with self._lock:
            return sorted((k for k, b in self._bodies.items() if suite_of_body(b) == suite),
                          key=lambda k: (k.namespace, k.name))

    def memory(self, key: FineTuneKey) -> FineTuneMemory:
        with self._lock:
            return self._memory.setdefault(key, FineTuneMemory())

    def forget(self, key: FineTuneKey) -> None:
        with self._lock:
            self._bodies.pop(key, None)
            self._memory.pop(key, None)
