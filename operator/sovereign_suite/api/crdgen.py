"""Generates the CustomResourceDefinitions from the pydantic models.

pydantic's JSON schema is turned into a structural OpenAPI v3 schema: references inlined, ``Optional`` collapsed
to its type, ``Literal`` to ``enum``, titles and defaults dropped (defaults are applied by the operator, see
models.py), and the ``x-kubernetes-*`` extensions kept. Cross-field rules the API server must enforce are added
as CEL ``x-kubernetes-validations``.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .finetune_models import FineTuneSpec, FineTuneStatus
from .models import GROUP, VERSION, NationalCloudSpec, SovereignSuiteSpec, SovereignSuiteStatus

_DROP = {"title", "default", "examples"}
# `kubectl get sovereign-suite` lists the suites and the clouds. A category must not be a resource's name: kubectl
# expands a category before it looks names up (k8s.io/cli-runtime v0.37.2, pkg/resource/builder.go,
# Builder.replaceAliases), so the former category `sovereignsuite`, SovereignSuite's singular, turned
# `kubectl get sovereignsuite NAME` into two resources and the error "you must specify only one resource"
# (visitByName). The API server requires a DNS-1035 label (apiextensions validation: names.categories).
CATEGORY = "sovereign-suite"
TENANT_DOMAIN_RULE = "has(oldSelf.domain) == has(self.domain) && (!has(self.domain) || self.domain == oldSelf.domain)"


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        target = defs[schema["$ref"].split("/")[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(options) == 1:
            return _structural({**options[0], **rest}, defs)
        types = {o.get("type") for o in options}
        if schema.get("x-kubernetes-int-or-string") or types == {"string", "integer"}:
            out = {k: v for k, v in rest.items() if k not in _DROP}
            out["x-kubernetes-int-or-string"] = True
            out.pop("pattern", None)  # a pattern cannot apply to an integer
            return out
        raise ValueError(f"cannot express union {options} structurally")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "const":
            out["enum"] = [value]
            out.setdefault("type", "string")
        elif key == "properties":
            out["properties"] = {k: _structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue  # structural schemas forbid unknown fields by pruning/strict decoding
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out["additionalProperties"] = _structural(value, defs)
        elif key == "exclusiveMinimum" and isinstance(value, (int, float)):
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum" and isinstance(value, (int, float)):
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "$defs":
            continue
        elif key in ("propertyNames", "patternProperties"):
            # Not part of Kubernetes' structural subset: a map's values keep their schema (additionalProperties),
            # its keys (extraConfig, nodeSelector) are checked by the operator, which reports the field path (a
            # CEL rule per map would need a bound on every key's length for its cost estimate).
            if key == "patternProperties":
                (value_schema,) = value.values()
                out["additionalProperties"] = _structural(value_schema, defs)
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "properties" not in out:
        out["type"] = "object"
        out.pop("additionalProperties", None)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def schema_of(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}))


def _suite_spec_schema() -> dict[str, Any]:
    spec = schema_of(SovereignSuiteSpec)
    spec["x-kubernetes-validations"] = [
        {"rule": "self.domain == oldSelf.domain", "message": "spec.domain is immutable (it names every Matrix server)"},
    ]
    tenants = spec["properties"]["tenants"]
    # One tenant per country: the country is the list's key, so the API server rejects duplicates and
    # server-side apply merges tenants by country.
    tenants["x-kubernetes-list-type"] = "map"
    tenants["x-kubernetes-list-map-keys"] = ["country"]
    tenants["x-kubernetes-validations"] = [
        {
            "rule": "self.all(t, self.exists_one(u, u.country == t.country))",
            "message": "each country may appear only once in spec.tenants",
        },
        {
            "rule": "self.all(t, !has(t.domain) || self.exists_one(u, has(u.domain) && u.domain == t.domain))",
            "message": "tenant domains must be unique",
        },
    ]
    tenant = tenants["items"]
    tenant["x-kubernetes-validations"] = [
        {
            "rule": "self.cloud == oldSelf.cloud",
            "message": "a tenant's cloud is immutable: its data stays where it is (remove and re-add the tenant to move it)",
        },
        {
            # Both directions: adding a domain to a tenant that had none changes its domain as surely as
            # editing it (from the default <country>.<spec.domain>), and Synapse's server_name must never change.
            "rule": TENANT_DOMAIN_RULE,
            "message": "a tenant's domain is immutable: it may not be added, removed or changed (it is the Matrix "
            "server_name; without it the tenant's domain is <country>.<spec.domain>)",
        },
    ]
    return spec


def _printer(name: str, path: str, type_: str = "string", priority: int = 0, desc: str = "") -> dict[str, Any]:
    col = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        col["priority"] = priority
    if desc:
        col["description"] = desc
    return col


def _crd(kind: str, plural: str, scope: str, short_names: list[str], printers: list[dict[str, Any]],
         description: str, spec: dict[str, Any], status: dict[str, Any],
         metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One CustomResourceDefinition of the group: one version, served and stored, with a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "sovereign-suite"}},
        "spec": {
            "group": GROUP,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printers,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": metadata or {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


# Suite and FineTune names become parts of other objects' names (api/derived_names.py, the training Job's name): a
# longer one is refused by the API server at once.
_SHORT_NAME = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40}}}
_READY = ".status.conditions[?(@.type==\"Ready\")]"


def suite_crd() -> dict[str, Any]:
    return _crd(
        "SovereignSuite", "sovereignsuites", "Namespaced", ["suite", "suites"],
        [
            _printer("Countries", ".status.countries"),
            _printer("Ready", f"{_READY}.status"),
            _printer("Reason", f"{_READY}.reason"),
            _printer("Tenants", ".status.readySummary", priority=1, desc="Ready tenants / tenants"),
            _printer("Components", ".status.componentsSummary", priority=1,
                     desc="Ready/desired replicas per tenant and component"),
            _printer("Message", f"{_READY}.message", priority=1),
            _printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        "A sovereign digital workplace (Matrix, Jitsi, Docs, LLM) for one or more countries.",
        _suite_spec_schema(), schema_of(SovereignSuiteStatus), metadata=_SHORT_NAME,
    )


def cloud_crd() -> dict[str, Any]:
    spec = schema_of(NationalCloudSpec)
    spec["x-kubernetes-validations"] = [
        {"rule": "self.country == oldSelf.country", "message": "spec.country is immutable"},
        # the cluster is said, never implied by the reference (cloud_models.NationalCloudSpec._cluster_is_explicit)
        {"rule": "has(self.kubeconfigSecretRef) == (has(self.cluster) && self.cluster == 'member')",
         "message": "spec.kubeconfigSecretRef is required when spec.cluster is member, and not allowed when it is "
                    "local (the default)"},
    ]
    return _crd(
        "NationalCloud", "nationalclouds", "Cluster", ["ncloud"],
        [
            _printer("Country", ".spec.country"),
            _printer("Provider", ".spec.provider"),
            _printer("Regions", ".spec.regions"),
            _printer("Certifications", ".spec.certifications", priority=1),
            _printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        "A national cloud a country's tenant runs on (data residency, GPUs).",
        spec, {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )


def finetune_crd() -> dict[str, Any]:
    spec = schema_of(FineTuneSpec)
    # What a run trains on is fixed once it started: a changed base model, tenant or suite would be another
    # FineTune (its adapter, its evaluation and its artifacts' place in the bucket belong to these).
    spec["x-kubernetes-validations"] = [
        {"rule": "self.suite == oldSelf.suite && self.country == oldSelf.country && self.baseModel == "
                 "oldSelf.baseModel",
         "message": "spec.suite, spec.country and spec.baseModel are immutable (create another FineTune)"},
    ]
    return _crd(
        "FineTune", "finetunes", "Namespaced", ["ft"],
        [
            _printer("Country", ".spec.country"),
            _printer("Base", ".spec.baseModel"),
            _printer("Phase", ".status.phase"),
            _printer("Progress", ".status.progress"),
            _printer("Ready", f"{_READY}.status"),
            _printer("Eval", ".status.evalLoss", "number", priority=1, desc="The adapter's eval loss"),
            _printer("BaseEval", ".status.baseEvalLoss", "number", priority=1, desc="The base model's eval loss"),
            _printer("Message", f"{_READY}.message", priority=1),
            _printer("Age", ".metadata.creationTimestamp", "date"),
        ],
        "A LoRA adapter of a model a suite's tenant serves, trained on an administration's data in its country's "
        "object storage, and served when it passes its promotion gate.",
        spec, schema_of(FineTuneStatus), metadata=_SHORT_NAME,
    )


CRDS = {"sovereignsuites": suite_crd, "nationalclouds": cloud_crd, "finetunes": finetune_crd}

HEADER = "# Generated from operator/sovereign_suite/api/models.py by `make crds`. Do not edit.\n"


def crd_yaml(name: str) -> str:
    return HEADER + yaml.safe_dump(CRDS[name](), sort_keys=False, width=120)


def all_crds_yaml() -> str:
    return "---\n".join(crd_yaml(n) for n in sorted(CRDS))
