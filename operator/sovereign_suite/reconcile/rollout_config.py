"""A rollout's configuration (pure): the ConfigMaps a release move keeps at the previous release with the workloads
that read them, and the check Job's own copies of the new ones.

Without this, the tenant's ConfigMaps took the new release's content when the move started (the check Job read
the new configuration from them), so a rollout stopped at a failed step left the previous version's pods mounting
the new configuration, read at their next start. Now a ConfigMap moves at the step of the first workload that
reads it, and the check Job reads copies named after itself, pruned with it once the move is done or set back.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator

from .problems import ObjectKey
from .rollout import category

POD_OWNERS = ("Deployment", "StatefulSet", "Job", "CronJob")


def _pod_template(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return spec.get("template") or {}


def _refs(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every ConfigMap reference of a pod spec, as the dict whose ``name`` names it: volumes (plain and
    projected) and environment (valueFrom, envFrom)."""
    for v in spec.get("volumes") or []:
        if v.get("configMap"):
            yield v["configMap"]
        for src in (v.get("projected") or {}).get("sources") or []:
            if src.get("configMap"):
                yield src["configMap"]
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
            if ref:
                yield ref
        for e in c.get("envFrom") or []:
            if e.get("configMapRef"):
                yield e["configMapRef"]


def configmaps_read(obj: dict[str, Any]) -> set[str]:
    """The ConfigMaps a workload's pods read."""
    return {ref["name"] for ref in _refs(_pod_template(obj).get("spec") or {})}


def held_configuration(objs: Iterable[dict[str, Any]], hold: Iterable[str]) -> set[ObjectKey]:
    """The ConfigMaps of one tenant's ``objs`` that only workloads of the held categories read (a ConfigMap that
    a rolling or unrolled workload reads, e.g. the backup CronJob's, or that no workload reads, moves at once)."""
    objs, hold = list(objs), set(hold)
    readers: dict[str, list[str | None]] = {}
    for o in objs:
        if o["kind"] in POD_OWNERS:
            for name in configmaps_read(o):
                readers.setdefault(name, []).append(category(o))
    return {ObjectKey.of(o) for o in objs if o["kind"] == "ConfigMap"
            and readers.get(o["metadata"]["name"]) and all(c in hold for c in readers[o["metadata"]["name"]])}


def with_config_copies(job: dict[str, Any], configmaps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The check Job reading copies of the new configuration (``configmaps``: name -> the desired ConfigMap),
    each named ``<job>-<configmap>`` and labelled as the Job: [copies..., the Job]."""
    job = copy.deepcopy(job)
    ns, prefix = job["metadata"]["namespace"], job["metadata"]["name"]
    copies: dict[str, dict[str, Any]] = {}

    def renamed(name: str) -> str:
        source = configmaps.get(name)
        if source is None:  # not one of the tenant's rendered ConfigMaps: read as it is
            return name
        new = f"{prefix}-{name}"
        copies[new] = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": new, "namespace": ns, "labels": dict(job["metadata"]["labels"]),
                                    "annotations": {"sovereignsuite.io/upgrade-step": "CheckConfig"}},
                       **{k: copy.deepcopy(source[k]) for k in ("data", "binaryData") if k in source}}
        return new

    for ref in _refs(job["spec"]["template"]["spec"]):
        ref["name"] = renamed(ref["name"])
    return [copies[k] for k in sorted(copies)] + [job]
