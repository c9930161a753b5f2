"""What an upgrade may not do: the refusals checked before anything is rendered (pure).

Each tenant's status records the release its databases reached (``status.tenants[].release``, written by the
reconcile pass once the release serves: reconcile/rollout.py). Against that record a spec is refused when it
- skips a release an upgrade must stop at (``requiresSteppingThrough`` in api/releases.yaml),
- asks for a Synapse whose SCHEMA_VERSION is below the compat version its database reached: that Synapse refuses to
  start (synapse/storage/prepare_database.py, "Cannot use this database as it is too new for the server to
  understand"); refused here instead of crash-looping,
- changes the major version of an embedded PostgreSQL: the new server cannot read the old data directory, and the
  embedded mode has no pg_upgrade nor dump/restore step (CloudNativePG has its own major upgrades).
"""

from __future__ import annotations

import re
from typing import Any

from .common import FieldProblem as Problem
from .derived_names import namespace_of
from .models import SovereignSuite, Tenant
from .releases import Catalogue, catalogue

_MAJOR_RE = re.compile(r":v?([0-9]+)(?:[.-][^:/@]*)?(?:@|$)")


def image_major(image: str) -> int | None:
    """The major version of an image's tag (``postgres:17.6-bookworm`` -> 17), None without a numeric tag."""
    m = _MAJOR_RE.search(image)
    return int(m.group(1)) if m else None


def _component_path(tenant: Tenant, index: int, component: str, *field: str) -> str:
    cur: Any = tenant.components.get(component)
    for f in field:
        if not isinstance(cur, dict) or f not in cur:
            return ".".join(["spec.components", component, *field])
        cur = cur[f]
    return ".".join([f"spec.tenants[{index}].components", component, *field])


def _release_path(tenant: Tenant, index: int) -> str:
    return f"spec.tenants[{index}].release" if tenant.release else "spec.release"


def upgrade_problems(suite: SovereignSuite, recorded: dict[str, dict[str, Any]],
                     cat: Catalogue | None = None) -> list[Problem]:
    """The refusals for ``suite`` given what each tenant namespace's databases reached (``recorded``: namespace ->
    its status.tenants[].release; a tenant without a record is new, or predates the record: nothing to compare)."""
    from .validation import effective_components, tenant_release  # validation imports this module's callers

    cat = cat or catalogue()
    out: list[Problem] = []
    for i, tenant in enumerate(suite.spec.tenants):
        rec = recorded.get(namespace_of(suite, tenant)) or {}
        if not rec.get("name"):
            continue
        have, want = rec["name"], tenant_release(suite, tenant)
        rpath = _release_path(tenant, i)
        if have in cat.names and cat.index(want.name) > cat.index(have) + 1:
            stops = [r.name for r in cat.releases[cat.index(have) + 1:cat.index(want.name)]
                     if r.requires_stepping_through]
            if stops:
                out.append(Problem(rpath, f"{want.name} skips release {stops[0]}, which an upgrade from {have} must "
                                          f"stop at (its migrations and records come first): set {stops[0]}, let "
                                          f"it finish (status.tenants[{i}].release), then {want.name}"))
        comps = effective_components(suite, tenant)
        compat = rec.get("synapseCompatVersion")
        if comps.matrix.enabled and compat is not None:
            target = cat.by_synapse_image(comps.matrix.image)
            if target is not None and target.synapse.schema_version < int(compat):
                explicit = "image" in (tenant.components.get("matrix") or {}) or \
                    "image" in suite.spec.components.matrix.model_fields_set
                path = _component_path(tenant, i, "matrix", "image") if explicit else rpath
                out.append(Problem(path, f"Synapse {comps.matrix.image.rsplit(':', 1)[-1]} (schema "
                                         f"{target.synapse.schema_version}) cannot run on tenant {tenant.country}'s "
                                         f"database: release {have} migrated it to schema "
                                         f"{rec.get('synapseSchemaVersion')}, which no Synapse below schema {compat} "
                                         "may use (Synapse would refuse to start). A downgrade goes through a "
                                         "backup taken before the upgrade, restored into a new tenant"))
        majors = rec.get("postgresMajor") or {}
        for name in ("matrix", "docs"):
            comp = getattr(comps, name)
            if not comp.enabled or comp.postgres.mode != "embedded" or majors.get(name) is None:
                continue
            new = image_major(comp.postgres.image)
            if new is not None and new != int(majors[name]):
                out.append(Problem(_component_path(tenant, i, name, "postgres", "image"),
                                   f"PostgreSQL {majors[name]} -> {new}: the embedded database's data directory is "
                                   f"PostgreSQL {majors[name]}'s and the embedded mode has no dump/restore step; keep "
                                   f"major {majors[name]} (minor versions upgrade in place), or move the data with a "
                                   "backup restored into a tenant on the new major, or use cloudnative-pg"))
    return out
