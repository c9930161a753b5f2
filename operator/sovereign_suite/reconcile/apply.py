"""The writing stages of a pass: tenant namespaces (create-only), generated Secrets, then every child by
server-side apply, phase by phase, skipping what is in sync (converge.py).

``Applier`` belongs to one pass and one cluster. Applies of one phase run in parallel on that cluster's apply
pool (pools.py); each returns its result to the calling thread, which alone updates ``live`` (nothing shared is
mutated across threads). A cluster that does not answer (``Unreachable``) ends its applies for this pass: the
next phases are not sent, nor is anything once the pass stopped waiting (``cancel``).
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from ..components.base import LABEL_SUITE, LABEL_SUITE_NS, SecretSpec
from ..render import phase_of
from .cache import strip_child
from .context import OperatorContext
from .converge import FIELD_MANAGER, out_of_sync, takeover_patch
from .kube import ApiError
from .problems import UNREACHABLE, ObjectKey, Problem, SuiteKey, degraded, from_api_error, stalled
from .secrets import ensure_generated
from .targets import Target

log = logging.getLogger(__name__)

ANN_AFTER_JOB = "sovereignsuite.io/after-job"


@dataclass
class Outcome:
    """What one write attempt did (returned from a pool thread)."""

    key: ObjectKey
    live: dict[str, Any] | None = None  # the stripped object after the write (None: unchanged or failed)
    writes: int = 0
    problem: Problem | None = None


@dataclass
class Applier:
    ctx: OperatorContext
    target: Target  # the cluster written to: the operator's own, or a member's
    suite: SuiteKey
    live: dict[ObjectKey, dict[str, Any]]  # the suite's children, updated with what this pass writes
    writes: int = 0
    problems: list[Problem] = field(default_factory=list)
    applied: set[ObjectKey] = field(default_factory=set)
    written: dict[ObjectKey, str] = field(default_factory=dict)  # key -> resourceVersion after our write
    cancel: threading.Event = field(default_factory=threading.Event)  # set: the pass no longer waits; send nothing

    def stopped(self) -> bool:
        """The pass gave this cluster up, or the cluster did not answer a request (of this pass or another):
        write no more."""
        return self.cancel.is_set() or self.target.unanswered() or any(p.reason == UNREACHABLE
                                                                       for p in self.problems)

    def _record(self, out: Outcome) -> None:
        self.writes += out.writes
        if out.problem is not None:
            self.problems.append(out.problem)
        if out.live is not None:
            self.live[out.key] = out.live
            self.written[out.key] = out.live["metadata"].get("resourceVersion", "")
            if out.writes:
                self.applied.add(out.key)

    # ---- namespaces: created, never taken over --------------------------------------------------
    def ensure_namespace(self, desired: dict[str, Any]) -> bool:
        """Create the tenant namespace if it does not exist (a create, never an apply: two suites must not fight
        over one name). False when it exists and is not this suite's (Stalled, NamespaceConflict)."""
        key = ObjectKey.of(desired)
        name = key.name
        if self.stopped():
            return False
        current = self.live.get(key) or self.target.cache.tenant_namespaces.get("", name)
        if current is not None:
            labels = current["metadata"].get("labels") or {}
            if (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) != (self.suite.namespace, self.suite.name):
                self._conflict(name, labels)
                return False
            return True
        try:
            created = self.target.kube.create(desired)
        except ApiError as err:
            if err.status != 409:
                self.problems.append(from_api_error(err, key))
                return False
            other = self.target.kube.get("v1", "Namespace", name) or {"metadata": {}}
            labels = other["metadata"].get("labels") or {}
            if (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) != (self.suite.namespace, self.suite.name):
                self._conflict(name, labels)
                return False
            self._record(Outcome(key, strip_child(other)))
            return True
        writes = 1
        # The create made the operator's manager an "Update" owner; hand its fields to the apply entry at once,
        # so that later applies own (and can remove) them.
        patch = takeover_patch(created)
        if patch:
            try:
                created = self.target.kube.json_patch("v1", "Namespace", name, None, patch)
                writes += 1
            except ApiError as err:
                log.info("namespace %s: ownership hand-over deferred: %s", name, err)
        self._record(Outcome(key, strip_child(created), writes))
        return True

    def _conflict(self, name: str, labels: dict[str, str]) -> None:
        owner = f"{labels.get(LABEL_SUITE_NS, '?')}/{labels.get(LABEL_SUITE, '?')}" if labels else "nobody"
        self.problems.append(stalled(
            "NamespaceConflict", f"exists and is not this suite's (its labels name {owner}); a tenant namespace "
            f"is <suite>-<country>: rename the suite or free the namespace", ObjectKey("", "Namespace", "", name)))

    # ---- generated Secrets ------------------------------------------------------------------------
    def ensure_secrets(self, specs: list[SecretSpec]) -> None:
        for spec in specs:
            if self.stopped():
                return
            key = ObjectKey("", "Secret", spec.namespace, spec.name)
            current = self.live.get(key)
            if current is not None and all(k in (current.get("data") or {}) for k in spec.keys):
                continue
            try:
                full = self.target.kube.get("v1", "Secret", spec.name, spec.namespace) if current is not None else None
                written = ensure_generated(self.target.kube, spec, full, self.suite)
            except ApiError as err:
                self.problems.append(from_api_error(err, key))
                continue
            if written is not None:
                self._record(Outcome(key, strip_child({"apiVersion": "v1", "kind": "Secret", **written}), 1))

    # ---- server-side apply ------------------------------------------------------------------------
    def apply_one(self, obj: dict[str, Any]) -> Outcome:
        """Runs on a pool thread: reads ``live``, never writes it."""
        key = ObjectKey.of(obj)
        if self.cancel.is_set() or self.target.unanswered():  # queued behind requests that got no answer
            return Outcome(key, problem=degraded(UNREACHABLE, "not sent: the cluster stopped answering", key))
        current = self.live.get(key)
        if obj["kind"] == "Job" and current is not None:
            return Outcome(key)  # a Job's template is immutable: its name changes with what it runs
        why = out_of_sync(current, obj)
        if why is None:
            return Outcome(key)
        writes = 0
        try:
            if current is not None and why.startswith("edited by"):
                full = self.target.kube.get(obj["apiVersion"], obj["kind"], key.name, key.namespace or None)
                patch = takeover_patch(full) if full else None
                if patch:
                    self.target.kube.json_patch(obj["apiVersion"], obj["kind"], key.name, key.namespace or None, patch)
                    writes += 1
            log.info("apply %s: %s", key, why)
            applied = self.target.kube.apply(obj, FIELD_MANAGER)
        except ApiError as err:
            if err.status == 404 and "does not serve" not in err.message:
                self.target.kube.forget_api(obj["apiVersion"])
            return Outcome(key, None, writes, from_api_error(err, key))
        return Outcome(key, strip_child(applied), writes + 1)

    def apply_phase(self, objs: list[dict[str, Any]]) -> None:
        for out in self.target.pools.map(self.apply_one, objs):
            self._record(out)

    def apply_all(self, desired: list[dict[str, Any]], ready_jobs: set[tuple[str, str]]) -> list[str]:
        """Apply phase by phase. An object annotated ``after-job`` waits until its Job is Complete (``ready_jobs``:
        (namespace, name) of those). Returns what still waits."""
        waiting: list[str] = []
        for _, group in itertools.groupby(desired, key=phase_of):
            if self.stopped():
                break
            now = []
            for obj in group:
                job = (obj["metadata"].get("annotations") or {}).get(ANN_AFTER_JOB)
                if job and (obj["metadata"]["namespace"], job) not in ready_jobs:
                    waiting.append(f"{ObjectKey.of(obj)} waits for Job {job}")
                    continue
                now.append(obj)
            self.apply_phase(now)
        return waiting

