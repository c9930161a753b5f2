"""Storage that cannot change once created (issue 22, item 11): an embedded database's volumeClaimTemplates, and a
PersistentVolumeClaim's storage class.

The API server refuses any change to a StatefulSet's ``volumeClaimTemplates`` (kubernetes v1.37.2
pkg/apis/apps/validation/validation.go, ValidateStatefulSetUpdate: ``ValidateImmutableField`` on
``spec.volumeClaimTemplates``; a 422 "spec.volumeClaimTemplates: Invalid value: ...: field is immutable" from the
pinned API server) and to a PVC's class (pkg/apis/core/validation/validation.go, ValidatePersistentVolumeClaimUpdate:
"spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims").
Sent anyway, the 422 failed the whole apply, and a pass that did not apply everything prunes nothing: one edited
size held back every other change of the suite for good.

So a change of ``postgres.storage`` (or of the cloud's ``storageClass``) on an object that exists is held back: the
object is applied with the values it has (the rest of its spec still follows the render: image, resources...),
and the suite is Stalled with ``ImmutableStorage``, naming the field to set back. Everything else of the pass
(other components, pruning) goes on. How to really grow an embedded database's disk: docs/components/postgres.md.
A database in ``cloudnative-pg`` mode is CloudNativePG's to resize (it expands every PVC when the StorageClass
allows it: cloudnative-pg docs/src/storage.md, "Volume expansion", v1.27.1): nothing is held there.

The live values come from the watch cache, which keeps exactly these fields of StatefulSets and PVCs
(``strip_child`` in cache.py).
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.derived_names import namespace_of
from ..api.models import NationalCloud, SovereignSuite
from ..components.base import LABEL_COMPONENT
from .problems import ObjectKey, Problem, stalled
from .quantity import parse_quantity

REASON = "ImmutableStorage"


def claim_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """What the cache keeps of a claim's spec (a PVC's, or a volumeClaimTemplate's)."""
    return {"storageClassName": spec.get("storageClassName"),
            "storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage")}


def _same_size(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(str(a)) == parse_quantity(str(b))
    except ValueError:
        return str(a) == str(b)


class _Where:
    """Field paths of a suite's tenants, for the messages."""

    def __init__(self, suite: SovereignSuite, clouds: dict[str, NationalCloud]):
        self.suite = suite
        self.tenant = {namespace_of(suite, t): (i, t) for i, t in enumerate(suite.spec.tenants)}
        self.clouds = clouds

    def storage(self, namespace: str, component: str) -> str:
        i, tenant = self.tenant[namespace]
        own = ((tenant.components.get(component) or {}).get("postgres") or {})
        if "storage" in own:
            return f"spec.tenants[{i}].components.{component}.postgres.storage"
        return f"spec.components.{component}.postgres.storage"

    def storage_class(self, namespace: str) -> str:
        return f"NationalCloud {self.tenant[namespace][1].cloud} spec.storageClass"


def _held_claim(desired: dict[str, Any], live: dict[str, Any], what: str, storage_path: str | None,
                class_path: str) -> list[str]:
    """Sets ``desired`` (a claim spec) back to ``live``'s immutable values; returns what was held back."""
    held = []
    want, have = claim_fields(desired), live
    if want["storageClassName"] is None and have.get("storageClassName") is not None:
        # No class rendered (the cloud names none): the claim keeps the one it has, set by us before or by the
        # DefaultStorageClass admission plugin. Not a change to report, but sent as it is: an apply without a
        # field the operator owned would remove it, which the API server refuses like any other change.
        desired["storageClassName"] = have["storageClassName"]
    elif want["storageClassName"] is not None and want["storageClassName"] != have.get("storageClassName"):
        created = have.get("storageClassName") or "the default"
        held.append(f"{class_path}: {what} was created with storage class {created}, and a claim's class cannot "
                    f"change (wanted {want['storageClassName']})")
        if have.get("storageClassName") is None:
            desired.pop("storageClassName", None)
        else:
            desired["storageClassName"] = have["storageClassName"]
    if storage_path and want["storage"] is not None and have.get("storage") is not None \
            and not _same_size(want["storage"], have["storage"]):
        held.append(f"{storage_path}: {what} was created with {have['storage']}, and a StatefulSet's "
                    f"volumeClaimTemplates cannot change (wanted {want['storage']}); set it back to "
                    f"{have['storage']}, or grow the volume as docs/components/postgres.md says")
        desired.setdefault("resources", {}).setdefault("requests", {})["storage"] = have["storage"]
    return held


def hold_immutable_storage(manifests: list[dict[str, Any]], live: dict[ObjectKey, dict[str, Any]],
                           suite: SovereignSuite, clouds: dict[str, NationalCloud]
                           ) -> tuple[list[dict[str, Any]], list[Problem]]:
    """``manifests`` with the immutable storage fields of existing objects as they are, and one Stalled problem per
    object held back. Objects not changed are returned as they were (the renderers' dicts are not modified)."""
    where = _Where(suite, clouds)
    out, problems = [], []
    for obj in manifests:
        key = ObjectKey.of(obj)
        current = live.get(key)
        ns = key.namespace
        if current is None or obj["kind"] not in ("StatefulSet", "PersistentVolumeClaim") or ns not in where.tenant:
            out.append(obj)
            continue
        obj = copy.deepcopy(obj)
        if obj["kind"] == "StatefulSet":
            have = {t.get("name"): t for t in (current.get("spec") or {}).get("volumeClaimTemplates") or []}
            component = obj["metadata"].get("labels", {}).get(LABEL_COMPONENT, "")
            held = []
            for template in obj["spec"].get("volumeClaimTemplates") or []:
                name = template["metadata"]["name"]
                if name in have:
                    held += _held_claim(template["spec"], have[name], f"StatefulSet {key.name}'s volume {name}",
                                        where.storage(ns, component), where.storage_class(ns))
        else:
            held = _held_claim(obj["spec"], (current.get("spec") or {}), f"PersistentVolumeClaim {key.name}", None,
                               where.storage_class(ns))
        problems += [stalled(REASON, h, key) for h in held]
        out.append(obj)
    return out, problems
