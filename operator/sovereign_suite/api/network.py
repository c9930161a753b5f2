"""Declared egress: the addresses outside the cluster that tenant pods may reach (issue 14, network lockdown).

Every tenant namespace denies egress by default; the operator cannot know where a cloud's OIDC issuer, S3
service, model hub mirror or STUN/TURN servers are, so the platform team (NationalCloud ``spec.network``) and
the suite editor (SovereignSuite ``spec.network``) declare them as CIDRs and ports. Both lists are merged;
none is declared by default, so nothing leaves the cluster until someone says where to.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .common import Model

MAX_EGRESS_RULES = 16  # per purpose; far above a real cloud, low enough to keep a policy small
MAX_PORTS = 8

# Link-local cloud metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS over IPv6: fd00:ec2::254).
# They hand out node credentials: no declared CIDR may contain them, and every "anywhere" rule excepts them.
METADATA_NETWORKS = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"))


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR in canonical form (e.g. 192.0.2.0/24, 2001:db8::/32): {exc}") from None
    for meta in METADATA_NETWORKS:
        if meta.version == net.version and meta.subnet_of(net):
            raise ValueError(f"{value} contains the cloud metadata address {meta.network_address}, which no pod may reach")
    return value


Cidr = Annotated[
    str,
    AfterValidator(_cidr),
    Field(min_length=4, max_length=43, json_schema_extra={"pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}),
]


MAX_SOURCE_RANGES = 32


def _source_range(value: str) -> str:
    """A client network allowed through an Ingress allow-list: canonical, and narrower than the whole internet."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR in canonical form (e.g. 192.0.2.0/24, 2001:db8::/32): {exc}") from None
    if net.prefixlen == 0:
        raise ValueError(f"{value} is every address: an allow-list of the whole internet is no allow-list")
    return value


SourceRange = Annotated[
    str,
    AfterValidator(_source_range),
    Field(min_length=4, max_length=43, json_schema_extra={"pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}),
]


class EgressPort(Model):
    port: int = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP"] = "TCP"


class EgressRule(Model):
    """Addresses and ports one group of pods may reach outside the cluster."""

    cidrs: list[Cidr] = Field(min_length=1, max_length=MAX_EGRESS_RULES, description="Destination networks.")
    ports: list[EgressPort] = Field(
        default_factory=lambda: [EgressPort(port=443)], min_length=1, max_length=MAX_PORTS,
        description="Destination ports (default 443/TCP).",
    )


class Egress(Model):
    """External endpoints per purpose; each purpose opens egress for the pods that need it only."""

    oidc: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="The OIDC issuer (Docs' backend, the one component that signs users in through it).",
    )
    s3: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="Object storage (Docs' backend, worker and media proxy).",
    )
    model_hub: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="Hugging Face or a mirror of it (the vLLM pods download weights).",
    )
    stun_turn: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="STUN/TURN servers (JVB discovers its public address; jitsi.stunServers).",
    )
    matrix_federation: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="Homeservers outside the suite (matrix.federation.extraDomains); the suite's own tenants "
        "are reached through the ingress controller without a declaration.",
    )
    databases: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="External PostgreSQL servers (postgres.mode external), for the component's pods that use them.",
    )
    api_server: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="The Kubernetes API server, for CloudNativePG's instance manager only (no other pod the "
        "operator renders calls it).",
    )


class Network(Model):
    egress: Egress = Field(default_factory=Egress)


PURPOSES = tuple(Egress.model_fields)


def merged(*sources: Network | None) -> dict[str, list[EgressRule]]:
    """purpose -> the rules of every source, in order (the cloud's first)."""
    out: dict[str, list[EgressRule]] = {p: [] for p in PURPOSES}
    for src in sources:
        if src is None:
            continue
        for p in PURPOSES:
            out[p] += getattr(src.egress, p)
    return out
