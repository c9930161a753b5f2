"""Generates docs/api.md (the API reference) from the pydantic models, like the CRDs: one source of truth.

Run: ``python -m sovereign_suite.api.docgen > docs/api.md`` (``make crds`` does it).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from . import finetune_models as ft
from . import models as m

ROOTS = (m.SovereignSuiteSpec, m.SovereignSuiteStatus, m.NationalCloudSpec, ft.FineTuneSpec, ft.FineTuneStatus)


def _type_name(t: Any) -> str:
    origin = get_origin(t)
    if origin is typing.Annotated:
        return _type_name(get_args(t)[0])
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in get_args(t) if a is not type(None)]
        if {p for p in parts} == {str, int}:
            return "quantity (string or integer)"
        return " or ".join(_type_name(p) for p in parts)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in get_args(t))
    if origin is list:
        return f"list of {_type_name(get_args(t)[0])}"
    if origin is dict:
        return "map"
    if isinstance(t, type) and issubclass(t, BaseModel):
        return f"[{t.__name__}](#{t.__name__.lower()})"
    return getattr(t, "__name__", str(t))


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined and field.default is not None:
        d = field.default
        if isinstance(d, BaseModel):
            return ""
        return f"`{d}`" if d not in ("", [], {}) else ""
    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return ""
        if isinstance(value, BaseModel) or value in ([], {}):
            return ""
        if isinstance(value, list) and value and isinstance(value[0], BaseModel):
            return ""
        return f"`{value}`"
    return "required" if field.is_required() else ""


def _nested(t: Any) -> list[type[BaseModel]]:
    out = []
    for a in (get_args(t) or ()):
        out += _nested(a)
    if isinstance(t, type) and issubclass(t, BaseModel):
        out.append(t)
    return out


def generate() -> str:
    lines = [
        "# API reference: sovereignsuite.io/v1alpha1",
        "",
        "Generated from `operator/sovereign_suite/api/models.py` by `make crds`; do not edit. Field names are",
        "the YAML (camelCase) names. Defaults are applied by the operator when it reads a suite (the CRDs carry",
        "no defaults), so what you apply is what the API server stores.",
        "",
        "Kinds: `SovereignSuite` (namespaced, short name `suite`) with [SovereignSuiteSpec](#sovereignsuitespec)",
        "and [SovereignSuiteStatus](#sovereignsuitestatus); `NationalCloud` (cluster-scoped, short name `ncloud`)",
        "with [NationalCloudSpec](#nationalcloudspec); `FineTune` (namespaced, short name `ft`) with",
        "[FineTuneSpec](#finetunespec) and [FineTuneStatus](#finetunestatus) (docs/llm-finetuning.md). All are in",
        "the category `sovereign-suite`: `kubectl get sovereign-suite` lists a namespace's suites and FineTunes and",
        "every cloud; `kubectl get sovereignsuite NAME` (or `suite NAME`) gets one suite.",
        "",
    ]
    seen: set[type[BaseModel]] = set()
    queue = list(ROOTS)
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += [f"## {model.__name__}", ""]
        doc = (model.__doc__ or "").strip()
        if doc and not doc.startswith(("Usage docs", "A base class")):
            lines += [" ".join(doc.split()), ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            alias = field.alias or name
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{alias}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
            queue += [n for n in _nested(field.annotation) if n not in seen]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(generate(), end="")
