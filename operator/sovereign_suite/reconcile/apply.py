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
from typing import Any, Callable

from ..components.base import LABEL_SUITE, LABEL_SUITE_NS, SecretSpec
from ..render import phase_of
from .cache import strip_child
from .context import OperatorContext
from .converge import (ANN_HASH, ANN_OWNER, FIELD_MANAGER, PENDING, fields_digest, foreign_entries, out_of_sync,
                       own_entry, stamp, takeover_patch, with_fields_digest)
from .kube import ApiError
from .problems import UNREACHABLE, ObjectKey, Problem, SuiteKey, degraded, from_api_error, stalled
from .secrets import ensure_generated
from .targets import Target
from ..tlsgen import TlsStateError

log = logging.getLogger(__name__)

ANN_AFTER_JOB = "sovereignsuite.io/after-job"
TAKEOVER_ATTEMPTS = 3  # reads and patches of an object changing under the take-over before it is a Conflict


def stale_patch(err: ApiError) -> bool:
    """Whether the take-over patch failed its resourceVersion ``test``: the object changed since it was read (a
    conflict, not an invalid object). The API server answers any JSON patch that cannot be applied with a
    generic 422 ("the server rejected our request due to an error in our request"; k8s.io/apiserver
    pkg/endpoints/handlers/patch.go, applyJSPatch), the reason only in its causes; the take-over patch holds
    nothing else that can fail (invalid managedFields are reset by the API server, never refused)."""
    return err.status == 422


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
    uid: str = ""  # the suite's UID (stamped on a namespace the operator created)
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
    def ensure_namespace(self, desired: dict[str, Any]) -> dict[str, Any] | None:
        """Create the tenant namespace if it does not exist (a create, never an apply: two suites must not fight
        over one name). Returns the namespace as it is to be applied: it carries the suite's UID only when the
        operator created it, decided from the namespace as the API server has it when the cache did not know it
        (a namespace a platform team made, found by the create's 409, is adopted, never stamped deletable).
        None when it exists and is not this suite's (Stalled, NamespaceConflict) or cannot be created."""
        key = ObjectKey.of(desired)
        name = key.name
        if self.stopped():
            return False
        current = self.live.get(key) or self.target.cache.tenant_namespaces.get("", name)
        if current is not None:
            labels = current["metadata"].get("labels") or {}
            if (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) != (self.suite.namespace, self.suite.name):
                self._conflict(name, labels)
                return None
            return self._as_found(desired, current)
        try:
            created = self.target.kube.create(desired)
        except ApiError as err:
            if err.status != 409:
                self.problems.append(from_api_error(err, key))
                return None
            other = self.target.kube.get("v1", "Namespace", name) or {"metadata": {}}
            labels = other["metadata"].get("labels") or {}
            if (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) != (self.suite.namespace, self.suite.name):
                self._conflict(name, labels)
                return None
            self._record(Outcome(key, strip_child(other)))
            return self._as_found(desired, other)
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
        return desired

    def _as_found(self, desired: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
        """``desired`` stamped with the suite's UID only if the namespace found carries one (the operator created
        it, or a suite of this name before it that retained it)."""
        created_by_us = bool((found["metadata"].get("annotations") or {}).get(ANN_OWNER))
        if created_by_us == bool((desired["metadata"].get("annotations") or {}).get(ANN_OWNER)):
            return desired
        meta = dict(desired["metadata"])
        meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                               if k not in (ANN_OWNER, ANN_HASH)}
        return stamp({**desired, "metadata": meta}, self.uid if created_by_us else None)

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
            except TlsStateError as err:  # half a stored CA or certificate: the operator never overwrites it
                self.problems.append(stalled("IncompleteTlsSecret", str(err), key))
                continue
            if written is not None:
                self._record(Outcome(key, strip_child({"apiVersion": "v1", "kind": "Secret", **written}), 1))

    def record_secret(self, written: dict[str, Any]) -> None:
        """A Secret written outside ensure_secrets (restored from a backup, reconcile/restore_secrets.py)."""
        key = ObjectKey("", "Secret", written["metadata"]["namespace"], written["metadata"]["name"])
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
        kube = self.target.kube
        writes = 0
        try:
            log.info("apply %s: %s", key, why)
            # the field set this apply gives the operator, from a dry run of the same configuration (converge.py)
            trial = kube.apply(with_fields_digest(obj, PENDING), FIELD_MANAGER, dry_run=True)
            wanted = (own_entry(trial.get("metadata") or {}) or {}).get("fieldsV1") or {}
            if current is not None and foreign_entries(current):
                taken = self._take_over(obj, key, wanted)
                if isinstance(taken, Problem):
                    return Outcome(key, None, writes, taken)
                writes += taken
            applied = kube.apply(with_fields_digest(obj, fields_digest(wanted)), FIELD_MANAGER)
        except ApiError as err:
            if err.status == 404 and "does not serve" not in err.message:
                kube.forget_api(obj["apiVersion"])
            return Outcome(key, None, writes, from_api_error(err, key))
        return Outcome(key, strip_child(applied), writes + 1)

    def _take_over(self, obj: dict[str, Any], key: ObjectKey, wanted: dict[str, Any]) -> int | Problem:
        """Hand the rendered fields other writers hold to the operator's apply entry (converge.takeover_patch):
        the number of writes, or a Conflict when the object kept changing under the patch's resourceVersion
        test (the suite is retried with its backoff, like a 409)."""
        kube = self.target.kube
        for _ in range(TAKEOVER_ATTEMPTS):
            full = kube.get(obj["apiVersion"], obj["kind"], key.name, key.namespace or None)
            patch = takeover_patch(full, wanted) if full else None
            if not patch:
                return 0
            try:
                kube.json_patch(obj["apiVersion"], obj["kind"], key.name, key.namespace or None, patch)
                return 1
            except ApiError as err:
                if not stale_patch(err):
                    raise
                log.info("take-over of %s: changed meanwhile (%s), reading it again", key, err.message)
        return degraded("Conflict", f"changed by another writer while the operator took its rendered fields over "
                        f"({TAKEOVER_ATTEMPTS} attempts); retried", key)

    def apply_phase(self, objs: list[dict[str, Any]]) -> None:
        for out in self.target.pools.map(self.apply_one, objs):
            self._record(out)

    def apply_all(self, desired: list[dict[str, Any]], ready_jobs: set[tuple[str, str]],
                  hold: Callable[[dict[str, Any]], str | None] | None = None,
                  held: set[ObjectKey] | None = None) -> list[str]:
        """Apply phase by phase. An object annotated ``after-job`` waits until its Job is Complete (``ready_jobs``:
        (namespace, name) of those); one ``hold`` gives a reason for waits too (a tenant being restored,
        reconcile/restore.py); one in ``held`` keeps its live version (a release rollout has not reached its step:
        reconcile/rollout.py). Returns what still waits."""
        waiting: list[str] = []
        for _, group in itertools.groupby(desired, key=phase_of):
            if self.stopped():
                break
            now = []
            for obj in group:
                why = hold(obj) if hold is not None else None
                if not why and held and ObjectKey.of(obj) in held:
                    why = "waits for its step of the upgrade"
                if why:
                    waiting.append(f"{ObjectKey.of(obj)} {why}")
                    continue
                job = (obj["metadata"].get("annotations") or {}).get(ANN_AFTER_JOB)
                if job and (obj["metadata"]["namespace"], job) not in ready_jobs:
                    waiting.append(f"{ObjectKey.of(obj)} waits for Job {job}")
                    continue
                now.append(obj)
            self.apply_phase(now)
        return waiting

