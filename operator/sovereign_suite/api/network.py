"""Declared egress: the addresses outside the cluster that tenant pods may reach (issue 14, network lockdown).

Every tenant namespace denies egress by default; the operator cannot know where a cloud's OIDC issuer, S3
service, model hub mirror or STUN/TURN servers are, so the platform team (NationalCloud ``spec.network``) and
the suite editor (SovereignSuite ``spec.network``) declare them as CIDRs and ports. Both lists are merged;
none is declared by default, so nothing leaves the cluster until someone says where to.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Callable, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic.alias_generators import to_camel

from .common import Model

MAX_EGRESS_RULES = 16  # per purpose; far above a real cloud, low enough to keep a policy small
MAX_PORTS = 8

# Link-local cloud metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS over IPv6: fd00:ec2::254).
# They hand out node credentials: no declared CIDR may contain them, and every "anywhere" rule excepts them.
METADATA_NETWORKS = (ipaddress.ip_network("169.254.169.254/32"), ipaddress.ip_network("fd00:ec2::254/128"))


def _canonical_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR in canonical form (e.g. 192.0.2.0/24, 2001:db8::/32): {exc}") from None


def _cidr(value: str) -> str:
    net = _canonical_network(value)
    for meta in METADATA_NETWORKS:
        if meta.version == net.version and meta.subnet_of(net):
            raise ValueError(f"{value} contains the cloud metadata address {meta.network_address}, which no pod may reach")
    return value


def _cidr_type(check: Callable[[str], str]) -> Any:
    """A CIDR string type: ``check`` in Python, a length and a pattern in the CRD's schema."""
    return Annotated[
        str,
        AfterValidator(check),
        Field(min_length=4, max_length=43, json_schema_extra={"pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}),
    ]


Cidr = _cidr_type(_cidr)


MAX_SOURCE_RANGES = 32


def _source_range(value: str) -> str:
    """A client network allowed through an Ingress allow-list: canonical, and narrower than the whole internet."""
    net = _canonical_network(value)
    if net.prefixlen == 0:
        raise ValueError(f"{value} is every address: an allow-list of the whole internet is no allow-list")
    return value


SourceRange = _cidr_type(_source_range)


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
    object_storage: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="The NationalCloud's objectStorage (the backup jobs' pods, and CloudNativePG's instances when "
        "they archive to it).",
    )
    api_server: list[EgressRule] = Field(
        default_factory=list, max_length=MAX_EGRESS_RULES,
        description="The Kubernetes API server, for CloudNativePG's instance manager only (no other pod the "
        "operator renders calls it).",
    )


class Network(Model):
    egress: Egress = Field(default_factory=Egress)


MAX_CLUSTER_NETWORKS = 8  # dual-stack, plus a few ranges added later (ServiceCIDR objects, extra pod pools)


def _cluster_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR in canonical form (e.g. 10.244.0.0/16, fd00:10:244::/56): {exc}") from None
    return value


ClusterCidr = Annotated[
    str,
    AfterValidator(_cluster_cidr),
    Field(min_length=4, max_length=43, json_schema_extra={"pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"}),
]


# (network, what it is, where it was declared or read), e.g. (10.96.0.0/16, "Service", "serviceCIDRs[0]")
ClusterNetwork = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str]
POD, SERVICE = "pod", "Service"


def egress_cidrs(network: Network) -> list[tuple[str, str, str]]:
    """(purpose, field path under the network, CIDR) of every declared egress CIDR."""
    return [(p, f"egress.{to_camel(p)}[{i}].cidrs[{j}]", cidr) for p in PURPOSES
            for i, rule in enumerate(getattr(network.egress, p)) for j, cidr in enumerate(rule.cidrs)]


def cluster_overlap(cidr: str, purpose: str, networks: list[ClusterNetwork]) -> str | None:
    """Why ``cidr``, declared for ``purpose``, may not be opened, or None: it overlaps one of the cluster's own
    networks. An ipBlock is matched against the address a packet is sent to: a range over the pod network lets
    the pods of the purpose reach every pod (kube-system's, the ingress controller's, the operator's) wherever
    the CNI applies ipBlocks to pod addresses, and one over the Service network the Services' addresses (the API
    server's among them) wherever it checks before the Service's address is translated. Refused rather than
    carved out with ``except``: a range inside a cluster network cannot be carved (``except`` must be a strict
    subset of the ``cidr``: kubernetes v1.37.2 pkg/apis/networking/validation/validation.go, ValidateIPBlock), and one
    rule for every case reads more plainly in a review. The one exception: the apiServer purpose may name single
    addresses of the Service network, the ``kubernetes`` Service's ClusterIP its clients dial."""
    net = ipaddress.ip_network(cidr)
    hits = []
    for other, kind, where in networks:
        if other.version != net.version or not net.overlaps(other):
            continue
        if kind == SERVICE and purpose == "api_server" and net.num_addresses == 1:
            continue
        what = ("is" if net == other else "lies in" if net.subnet_of(other) else "contains" if other.subnet_of(net)
                else "overlaps")
        hits.append(f"{what} the cluster's {kind} network {other} ({where})")
    if not hits:
        return None
    return (f"{cidr} {', and '.join(hits)}: the pods of this purpose would reach the cluster's own pods or "
            "Services through it; declare the endpoint's own, narrower range")


def parse_networks(cidrs: list[str], kind: str, where: str) -> list[ClusterNetwork]:
    return [(ipaddress.ip_network(c), kind, f"{where}[{i}]") for i, c in enumerate(cidrs)]


class CloudNetwork(Network):
    """A NationalCloud's network: the endpoints outside the cluster its tenants may reach, and the cluster's own
    networks, which no declared endpoint may overlap (api/egress_checks.py)."""

    pod_cidrs: list[ClusterCidr] = Field(
        default_factory=list, alias="podCIDRs", max_length=MAX_CLUSTER_NETWORKS,
        description="The cluster's pod networks (kube-controller-manager --cluster-cidr, or the CNI's IP pools). "
        "No egress range of this cloud or of a suite on it may overlap them: an ipBlock over pod addresses "
        "opens kube-system's pods and the ingress controller. The operator also reads the Nodes' spec.podCIDRs; "
        "declare the whole range, which covers nodes not added yet and CNIs that leave spec.podCIDRs empty.",
    )
    service_cidrs: list[ClusterCidr] = Field(
        default_factory=list, alias="serviceCIDRs", max_length=MAX_CLUSTER_NETWORKS,
        description="The cluster's Service networks (kube-apiserver --service-cluster-ip-range, or the ServiceCIDR "
        "objects). No egress range may overlap them (the API server's Service address is in them), except single "
        "addresses (/32, /128) of the apiServer purpose: the kubernetes Service's ClusterIP, which CloudNativePG's "
        "instances dial.",
    )

    def cluster_networks(self, where: str = "") -> list[ClusterNetwork]:
        """The networks declared here; ``where`` prefixes the field names in messages."""
        return (parse_networks(self.pod_cidrs, POD, f"{where}podCIDRs")
                + parse_networks(self.service_cidrs, SERVICE, f"{where}serviceCIDRs"))

    @model_validator(mode="after")
    def _egress_outside_the_cluster(self) -> "CloudNetwork":
        networks = self.cluster_networks()
        problems = [f"{path}: {why}" for purpose, path, cidr in egress_cidrs(self)
                    if (why := cluster_overlap(cidr, purpose, networks))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


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
