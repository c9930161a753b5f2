"""Renders a whole suite: every tenant's baseline and enabled components, in apply order.

Pure: (suite, clouds) -> RenderResult. The operator and ``sovereign-suite render`` both call this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .api.models import NationalCloud, SovereignSuite
from .api.validation import InputError, check_suite
from .components import COMPONENT_MODULES, module
from .components.base import RenderContext, SecretSpec, build_contexts

# Apply order (Stackable/CNPG style): the namespace and what isolates it, then configuration and storage,
# then the databases, then the Jobs that must complete before the applications, then the applications,
# then the objects that only route to or watch them.
PHASES = ("namespace", "policy", "config", "data", "jobs", "apps", "routing")
_KIND_PHASE = {
    "Namespace": "namespace",
    "ResourceQuota": "policy",
    "LimitRange": "policy",
    "NetworkPolicy": "policy",
    "Role": "policy",
    "RoleBinding": "policy",
    "ServiceAccount": "policy",
    "Secret": "config",
    "ConfigMap": "config",
    "PersistentVolumeClaim": "config",
    "Service": "config",
    "Cluster": "data",  # CloudNativePG
    "Job": "jobs",
    "Deployment": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "PodDisruptionBudget": "apps",
    "Ingress": "routing",
    "ServiceMonitor": "routing",
    "PodMonitor": "routing",
    "PrometheusRule": "routing",
}
DATA_PARTS = frozenset({"postgres", "redis"})


def phase_of(obj: dict[str, Any]) -> str:
    kind = obj["kind"]
    phase = _KIND_PHASE.get(kind, "apps")
    part = obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")
    if kind in ("StatefulSet", "Deployment") and part in DATA_PARTS:
        return "data"
    return phase


def sort_key(obj: dict[str, Any], tenant_index: int) -> tuple[Any, ...]:
    meta = obj.get("metadata", {})
    return (
        PHASES.index(phase_of(obj)),
        tenant_index,
        obj["apiVersion"],
        obj["kind"],
        meta.get("namespace", ""),
        meta["name"],
    )


@dataclass
class RenderResult:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[SecretSpec] = field(default_factory=list)
    # (country, component) -> manifests of that component, for status and metrics
    by_component: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


def enabled(ctx: RenderContext, name: str) -> bool:
    return name == "tenancy" or bool(getattr(ctx.components, name).enabled)


def render_tenant(ctx: RenderContext) -> tuple[dict[str, list[dict[str, Any]]], list[SecretSpec]]:
    parts: dict[str, list[dict[str, Any]]] = {}
    secrets: list[SecretSpec] = []
    for name in COMPONENT_MODULES:
        if not enabled(ctx, name):
            continue
        mod = module(name)
        parts[name] = mod.render(ctx)
        if hasattr(mod, "secrets"):
            secrets += [
                s if s.labels else dataclasses.replace(s, labels=ctx.labels(s.component)) for s in mod.secrets(ctx)
            ]
    return parts, secrets


def render_suite(
    suite: SovereignSuite,
    clouds: dict[str, NationalCloud],
    capabilities: frozenset[str] = frozenset(),
    placements: dict[str, dict[str, str]] | None = None,
) -> RenderResult:
    """``capabilities``: optional APIs the target cluster serves (see components.base.OPTIONAL_APIS).
    ``placements``: country -> model -> the GPU product chosen for it (reconcile/gpu.py)."""
    problems = check_suite(suite, clouds)
    if problems:
        raise InputError(problems)
    result = RenderResult()
    keyed: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    errors = []
    for index, ctx in enumerate(build_contexts(suite, clouds, capabilities, placements)):
        try:
            parts, secrets = render_tenant(ctx)
        except InputError as err:
            errors += err.problems
            continue
        for name, objs in parts.items():
            result.by_component[(ctx.country, name)] = objs
            keyed += [(sort_key(o, index), o) for o in objs]
        result.secrets += secrets
    if errors:
        raise InputError(list(dict.fromkeys(errors)))  # a suite-level problem is found once per tenant
    keyed.sort(key=lambda kv: kv[0])
    seen: set[tuple[str, str, str, str]] = set()
    for _, obj in keyed:
        ident = (obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if ident in seen:
            raise AssertionError(f"two renderers produced {ident}")  # a bug in a renderer, not bad input
        seen.add(ident)
        result.manifests.append(obj)
    return result


def with_secrets(result: RenderResult, values: dict[tuple[str, str], dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The rendered manifests plus a Secret per declared SecretSpec, in apply order (offline render).

    ``values``: (namespace, name) -> generated values; missing keys get a placeholder.
    """
    from .secretgen import secret_manifest

    order = {ns: i for i, ns in enumerate(dict.fromkeys(o["metadata"]["name"] for o in result.manifests if o["kind"] == "Namespace"))}
    keyed = [(sort_key(o, order.get(o["metadata"].get("namespace", o["metadata"]["name"]), 0)), o) for o in result.manifests]
    for spec in result.secrets:
        obj = secret_manifest(spec, (values or {}).get((spec.namespace, spec.name)))
        keyed.append((sort_key(obj, order.get(spec.namespace, 0)), obj))
    keyed.sort(key=lambda kv: kv[0])
    return [o for _, o in keyed]
