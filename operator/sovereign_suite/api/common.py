"""Building blocks of the API shared by the SovereignSuite and NationalCloud models: the group, name and
quantity types, the base model (camelCase on the wire, unknown fields rejected), Secret references,
resources, tolerations, and the upper bounds of lists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .fieldtypes import LabelKey
from .kubenames import LABEL_VALUE_PATTERN

GROUP = "sovereignsuite.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# The operator's namespace when nothing says otherwise (`run --operator-namespace`, the chart's release namespace):
# the chart's and `cloud join --secret-namespace`'s default.
OPERATOR_NAMESPACE = "sovereign-suite-system"

DNS_NAME_RE = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
EXTENDED_RESOURCE_PATTERN = r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+$"
# Kubernetes' quantity grammar (resource.Quantity: a number, then one binary-SI, decimal-SI or exponent
# suffix), without the leading "-": every quantity here is a size or an amount. The looser pattern of
# Kubernetes' OpenAPI accepted "+.TKeG-6" and "-5261073", which the API server refuses (found by
# tests/cluster/test_input_property_dryrun.py).
QUANTITY_PATTERN = r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?$"
HOST_PORT_PATTERN = r"^[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?:[0-9]{1,5}$"

# ISO 3166-1 alpha-2 codes of the countries that can host a tenant (EU/EEA, Switzerland, the UK).
# Kept explicit so a typo ("FRA", "UK") is an error, not a new tenant.
COUNTRIES = (
    "AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LI LT LU LV MT NL NO PL PT RO SE SI SK"
).split()

def _quantity(value: str | int) -> str | int:
    """The pattern above is in the schema only (json_schema_extra): checked here, for strings and integers."""
    if (isinstance(value, int) and value < 0) or (isinstance(value, str) and value.startswith("-")):
        raise ValueError(f"{value}: a quantity here is a size or an amount, never negative")
    if isinstance(value, str) and not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r}: not a Kubernetes quantity (e.g. 500m, 2, 10Gi)")
    return value


Quantity = Annotated[
    str | int,
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
    AfterValidator(_quantity),
]
Country = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}$",
        json_schema_extra={"maxLength": 2},  # for the CRD's CEL cost estimate; the pattern gives the clearer error
        description="ISO 3166-1 alpha-2 country code, upper case (FR, DE, LU, SE, ...).",
    ),
]
DnsName = Annotated[
    str,
    Field(
        max_length=253,
        pattern=DNS_NAME_RE.pattern,
        description="A fully qualified DNS name in lower case (RFC 1123), e.g. suite.example.eu.",
    ),
]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def wire(self) -> dict[str, Any]:
        """The object as it is written on the wire (camelCase, without unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------------------------------
# Shared building blocks


class SecretKeyRef(Model):
    """A key of a Secret in the suite's namespace."""

    name: ObjectName
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Resources(Model):
    """Container resources, as in a Kubernetes container (quantities as strings or integers)."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


# Upper bounds of lists and maps (maxItems/maxProperties in the CRD): far above any real use, low enough that
# one object cannot make a pass render thousands of objects or the API server's CEL cost estimate explode.
# docs/security.md lists them.
MAX_MODELS = 16
MAX_EXTRA_ARGS = 64
MAX_GPU_PRODUCTS = 16
MAX_GPU_PRODUCTS_PER_CLOUD = 32  # NationalCloud gpu.productMemoryMiB
MAX_STUN_SERVERS = 8
MAX_EXTRA_DOMAINS = 256
MAX_SCOPES = 16
MAX_REGIONS = 32
MAX_SUITE_NAMESPACES = 64
MAX_TOLERATIONS = 16
MAX_NODE_SELECTOR = 16
MAX_CERTIFICATIONS = 16
MAX_EXTRA_ENV = 128  # extraConfig of Jitsi and Docs (environment variables)

# A label value that may be empty (a toleration's value with operator Exists).
OptionalLabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


class Toleration(Model):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: OptionalLabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


def resources(requests: dict[str, str], limits: dict[str, str]) -> Resources:
    return Resources(requests=dict(requests), limits=dict(limits))


@dataclass(frozen=True, order=True)
class FieldProblem:
    """A field path of the input and what is wrong there (validation.py, egress_checks.py)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
