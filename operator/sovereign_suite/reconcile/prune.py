"""Deleting what the suite no longer renders (pruning), and everything on deletion, following
``deletionPolicy`` (docs/architecture.md, "Children, labels and deletion").

What the operator deletes: an object in one of the suite's tenant namespaces (labelled for the suite, and named
``<suite>-<country>`` after its own country label: a copy restored or made under another name is not one),
labelled for this suite *and* ``app.kubernetes.io/managed-by`` this operator, whose ``sovereignsuite.io/owner-uid``
annotation is this suite's UID. A labelled copy elsewhere (a debug copy in a scratch namespace, a Velero restore
with a namespace mapping, ``sovereign-suite render`` output applied by hand) is never the suite's. The one
exception to the UID: the claims a StatefulSet makes from its volumeClaimTemplates, which get the template's
labels and annotations (no UID: the templates are immutable, and carried none before) and are named
``<template>-<statefulset>-<ordinal>`` (Kubernetes v1.37.2, pkg/controller/statefulset/stateful_set_utils.go,
getPersistentVolumeClaims and getPersistentVolumeClaimName). A Namespace additionally must carry this suite's UID,
written only when the operator itself created it (a namespace a platform team made for the namespace-scoped mode
has none), and must hold nothing the operator did not render (namespace_content.py). The generated Secrets
(signing key, passwords: created once, never applied, secrets.py) carry no UID either; they count as the
suite's by their ``sovereignsuite.io/generated`` label, in its tenant namespaces only.

``Retain`` keeps the data: PersistentVolumeClaims, generated Secrets (keys, passwords), CloudNativePG clusters
(hibernated: CNPG deletes their pods and keeps their PVCs), and the namespaces holding them, all labelled
``sovereignsuite.io/retained=true``. When the same suite renders them again, they are adopted back.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ..components.base import (CNPG_API, LABEL_COMPONENT, LABEL_COUNTRY, LABEL_RETAINED, LABEL_SUITE, LABEL_SUITE_NS,
                               MANAGED_BY)
from ..members.rbac import is_secret_reader_binding
from .converge import ANN_OWNER
from .kube import ApiError
from .namespace_content import namespace_content
from .problems import UNREACHABLE, ObjectKey, Problem, SuiteKey, degraded, from_api_error
from .secrets import LABEL_GENERATED
from .targets import Target

log = logging.getLogger(__name__)

CNPG_HIBERNATION = "cnpg.io/hibernation"  # CloudNativePG's declarative hibernation (pods go, PVCs stay)
CLAIM_NAME = re.compile(r".+-.+-[0-9]+")  # <template>-<statefulset>-<ordinal>


def is_data(obj: dict[str, Any]) -> bool:
    kind = obj["kind"]
    labels = obj["metadata"].get("labels") or {}
    return (kind == "PersistentVolumeClaim"
            or (kind == "Secret" and labels.get(LABEL_GENERATED) == "true")
            or (kind == "Cluster" and obj["apiVersion"] == CNPG_API))


def component_of(obj: dict[str, Any]) -> tuple[str, str | None]:
    return obj["metadata"].get("namespace") or "", (obj["metadata"].get("labels") or {}).get(LABEL_COMPONENT)


@dataclass
class Pruner:
    target: Target  # the cluster deleted from
    suite: SuiteKey
    uid: str
    live: dict[ObjectKey, dict[str, Any]]
    writes: int = 0
    problems: list[Problem] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)  # set: the pass no longer waits; send nothing
    deleted_uids: set[str] = field(default_factory=set)  # what this pruner deleted (its dependents may remain)

    def labelled(self, obj: dict[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return (labels.get(LABEL_SUITE_NS), labels.get(LABEL_SUITE)) == (self.suite.namespace, self.suite.name)

    def tenant_namespace(self, obj: dict[str, Any]) -> bool:
        """A Namespace that is one of the suite's tenants: labelled for it and named after its country."""
        country = (obj["metadata"].get("labels") or {}).get(LABEL_COUNTRY)
        return (obj["kind"] == "Namespace" and self.labelled(obj) and bool(country)
                and obj["metadata"]["name"] == f"{self.suite.name}-{country}")

    def tenant_namespaces(self) -> set[str]:
        return {o["metadata"]["name"] for o in self.live.values() if self.tenant_namespace(o)}

    def ours(self, obj: dict[str, Any], tenants: set[str] | None = None) -> bool:
        """Whether the operator may delete ``obj`` for this suite (module docstring). ``tenants``: the suite's
        tenant namespaces (computed when not given)."""
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        if not self.labelled(obj):
            return False
        owner = (meta.get("annotations") or {}).get(ANN_OWNER)
        if obj["kind"] == "Namespace":
            return owner == self.uid and self.tenant_namespace(obj)
        if meta.get("namespace") not in (self.tenant_namespaces() if tenants is None else tenants):
            return False
        if labels.get("app.kubernetes.io/managed-by") != MANAGED_BY:
            return False
        if owner is None:  # only a StatefulSet's claim and a generated Secret (created, never applied) have none
            return ((obj["kind"] == "PersistentVolumeClaim" and bool(CLAIM_NAME.fullmatch(meta["name"])))
                    or (obj["kind"] == "Secret" and labels.get(LABEL_GENERATED) == "true"))
        return owner == self.uid

    # ---- the stages -----------------------------------------------------------------------------
    def prune(self, wanted: set[ObjectKey], rendered: set[tuple[str, str | None]], retain: bool) -> None:
        """Delete the children no longer rendered. ``rendered``: (namespace, component) still rendered (their
        StatefulSets' claims stay)."""
        tenants = self.tenant_namespaces()
        orphans = [o for k, o in self.live.items() if k not in wanted and self.ours(o, tenants)
                   and not (o["kind"] == "PersistentVolumeClaim" and component_of(o) in rendered)
                   and not (o["kind"] == "Secret" and (o["metadata"].get("labels") or {}).get(LABEL_GENERATED)
                            and component_of(o) in rendered)]
        self.delete(orphans, retain)

    def delete(self, objs: list[dict[str, Any]], retain: bool) -> None:
        """Delete ``objs`` (namespaces last); with ``retain`` keep the data and the namespaces holding it."""
        tenants = self.tenant_namespaces()
        keep_ns = {o["metadata"].get("namespace") for o in self.live.values()
                   if retain and is_data(o) and self.ours(o, tenants)}
        keep_ns |= {o["metadata"].get("namespace") for o in self.live.values()
                    if (o["metadata"].get("labels") or {}).get(LABEL_RETAINED) == "true" and o["kind"] != "Namespace"}
        # namespaces last, but before the operator's Secret-reader binding in a member: what a namespace holds is
        # read (foreign_content) before deciding to delete it
        batch: list[dict[str, Any]] = []  # deleted together, before the next namespace (what it holds goes first)
        for obj in sorted(objs, key=lambda o: (is_secret_reader_binding(o), o["kind"] == "Namespace")):
            if obj["kind"] == "Namespace":
                self._delete_all(batch)
                batch = []
                if self._stopped():  # no namespace's content is listed on a cluster that does not answer
                    return
                name = obj["metadata"]["name"]
                if name in keep_ns:
                    self.mark_retained(obj)
                    continue
                if self.holds_foreign(name):
                    continue
            elif retain and is_data(obj):
                self.mark_retained(obj)
                continue
            batch.append(obj)
        self._delete_all(batch)

    # ---- deletes: in parallel on the cluster's apply pool (pools.py), none sent once it stopped answering ----
    def _delete_all(self, objs: list[dict[str, Any]]) -> None:
        for obj, (key, deleted, problem) in zip(objs, self.target.pools.map(self._delete, objs)):
            if problem is not None:
                self.problems.append(problem)
                continue
            self.writes += deleted
            self.live.pop(key, None)
            self.deleted_uids.add(obj["metadata"].get("uid") or "")

    def _stopped(self) -> bool:
        return self.cancel.is_set() or self.target.unanswered()

    def _delete(self, obj: dict[str, Any]) -> tuple[ObjectKey, bool, Problem | None]:
        """Runs on a pool thread: returns what happened, changes nothing."""
        key = ObjectKey.of(obj)
        if self._stopped():
            return key, False, degraded(UNREACHABLE, "not deleted: the cluster stopped answering", key)
        try:
            return key, self.target.kube.delete(obj), None
        except ApiError as err:
            return key, False, from_api_error(err, key)

    def holds_foreign(self, namespace: str) -> bool:
        """Whether ``namespace`` must be kept: it holds objects that are not the suite's, or what it holds could
        not be fully read (namespace_content.py). Read at deletion, from the API server: the cache holds only the
        operator's own objects. Says why in an Event; a failure that may pass is also a problem (retried)."""
        known = {o["metadata"].get("uid") or "" for o in self.live.values()
                 if o["metadata"].get("namespace") == namespace} | self.deleted_uids
        found = namespace_content(self.target.kube, namespace, self.suite, known)
        if found.foreign:
            self.events.append(("Warning", "NamespaceKept", f"Namespace {namespace} is kept: it holds objects "
                                f"the operator did not render ({', '.join(found.foreign[:5])})"))
        if found.doubts:
            message = (f"Namespace {namespace} is kept: what it holds could not be read in full "
                       f"({'; '.join(found.doubts[:3])})")
            self.events.append(("Warning", "NamespaceKept", message))
            if found.failed:
                self.problems.append(degraded("ApiError", message, ObjectKey("", "Namespace", "", namespace)))
        return bool(found.foreign or found.doubts)

    def mark_retained(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        hibernate = obj["kind"] == "Cluster" and obj["apiVersion"] == CNPG_API
        if (meta.get("labels") or {}).get(LABEL_RETAINED) == "true" and (
                not hibernate or (meta.get("annotations") or {}).get(CNPG_HIBERNATION) == "on"):
            return
        patch: dict[str, Any] = {"metadata": {"labels": {LABEL_RETAINED: "true"}}}
        if hibernate:
            patch["metadata"]["annotations"] = {CNPG_HIBERNATION: "on"}
        try:
            self.target.kube.merge_patch(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), patch)
            self.writes += 1
        except ApiError as err:
            if err.status != 404:
                self.problems.append(from_api_error(err, ObjectKey.of(obj)))

    def readopt(self, rendered: set[tuple[str, str | None]]) -> None:
        """Retained data of a component rendered again is this suite's again: label dropped, UID updated. (Applied
        children drop the label through the apply itself: converge.py hands the label's owner over.)"""
        for key, obj in list(self.live.items()):
            labels = obj["metadata"].get("labels") or {}
            if labels.get(LABEL_RETAINED) != "true" or obj["kind"] not in ("PersistentVolumeClaim", "Secret"):
                continue
            if component_of(obj) not in rendered:
                continue
            patch = {"metadata": {"labels": {LABEL_RETAINED: None}, "annotations": {ANN_OWNER: self.uid}}}
            try:
                self.target.kube.merge_patch(obj["apiVersion"], obj["kind"], key.name, key.namespace, patch)
                self.writes += 1
            except ApiError as err:
                self.problems.append(from_api_error(err, key))
