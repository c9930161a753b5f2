"""The declared egress (api/network.py) against the cluster's own networks and against what the suite needs.

- ``overlap_problems`` (issue 22, item 14): a range the suite declares may not overlap the pod or Service networks
  of a tenant's cluster, as its NationalCloud declares them (``spec.network.podCIDRs``, ``serviceCIDRs``) or as
  the operator reads them there (the Nodes' ``spec.podCIDRs``); a cloud's own ranges are checked against its own
  declared networks when it is parsed (``CloudNetwork``), and against the networks read from its cluster here.
  Errors: the suite is refused, naming the field.
- ``missing_egress`` (item 15): an enabled component that calls an endpoint outside the cluster, with no range
  declared for that purpose by the suite or the tenant's cloud, cannot work (egress is denied by default). A
  warning, not an error: the endpoint may be reached another way the operator does not see (an egress proxy,
  a CNI policy of the platform team's), and a suite is valid while the platform team adds the range.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic.alias_generators import to_camel

from .common import FieldProblem
from .models import Components, NationalCloud, SovereignSuite
from .network import POD, ClusterNetwork, cluster_overlap, egress_cidrs, merged


EgressFinding = FieldProblem  # a field path and what is wrong there, as validation.Problem


def node_pod_networks(nodes: list[dict[str, Any]]) -> list[ClusterNetwork]:
    """The pod networks the Nodes of a cluster were given (``spec.podCIDRs``: kube-controller-manager's node IPAM,
    or the CNI's), merged where adjacent; each names a Node that holds it. Empty with CNIs that leave the field
    unset: the NationalCloud's ``spec.network.podCIDRs`` covers those."""
    owner: dict[Any, str] = {}
    for node in nodes:
        for cidr in (node.get("spec") or {}).get("podCIDRs") or []:
            try:
                owner.setdefault(ipaddress.ip_network(cidr, strict=False), node["metadata"]["name"])
            except ValueError:
                continue  # the API server validates the field; nothing to learn from a value it would refuse
    out: list[ClusterNetwork] = []
    for version in (4, 6):
        nets = sorted(n for n in owner if n.version == version)
        for merged_net in ipaddress.collapse_addresses(nets):
            first = next(n for n in nets if n.subnet_of(merged_net))
            out.append((merged_net, POD, f"spec.podCIDRs of Node {owner[first]}"
                        + (" and others" if merged_net != first else "")))
    return out


def overlap_problems(suite: SovereignSuite, clouds: dict[str, NationalCloud],
                     discovered: dict[str, list[ClusterNetwork]] | None = None) -> list[EgressFinding]:
    """Every declared range that overlaps a tenant's cluster networks. ``discovered``: cloud name -> the networks
    read from its cluster (absent: the declared ones only, as ``validate`` does offline)."""
    found: dict[str, EgressFinding] = {}
    seen_clouds: set[str] = set()
    for tenant in suite.spec.tenants:
        cloud = clouds.get(tenant.cloud)
        if cloud is None or cloud.name in seen_clouds:
            continue  # an unknown cloud is check_suite's problem
        seen_clouds.add(cloud.name)
        read = [(net, kind, f"{where}, in the cluster of NationalCloud {cloud.name}")
                for net, kind, where in (discovered or {}).get(cloud.name, [])]
        networks = cloud.spec.network.cluster_networks(f"NationalCloud {cloud.name} spec.network.") + read
        for purpose, path, cidr in egress_cidrs(suite.spec.network):
            why = cluster_overlap(cidr, purpose, networks)
            if why:
                found.setdefault(f"spec.network.{path}", EgressFinding(f"spec.network.{path}", why))
        for purpose, path, cidr in egress_cidrs(cloud.spec.network):
            why = cluster_overlap(cidr, purpose, read)  # its own declared networks: checked when it is parsed
            if why:
                key = f"NationalCloud/{cloud.name}.spec.network.{path}"
                found.setdefault(key, EgressFinding(key, why))
    return sorted(found.values())


# What a component cannot do without a purpose's endpoint, in a warning.
CANNOT = {
    "oidc": "sign users in",
    "s3": "store documents' media",
    "model_hub": "download the models' weights",
    "matrix_federation": "federate with those homeservers",
    "stun_turn": "learn the bridges' public address",
    "databases": "connect to the database",
    "api_server": "run the database's instances",
    "object_storage": "upload its backups",
}


def needed_purposes(suite: SovereignSuite, comps: Components) -> dict[str, str]:
    """purpose -> the component that needs it and why, for a tenant with these effective components."""
    out: dict[str, str] = {}
    if comps.docs.enabled:
        if suite.spec.identity.oidc is not None:
            out["oidc"] = f"docs needs it to reach {suite.spec.identity.oidc.issuer}"
        if comps.docs.s3 is not None:
            out["s3"] = f"docs needs it to reach {comps.docs.s3.endpoint}"
    if comps.llm.enabled:
        hub = sorted({m.model_id for m in comps.llm.models if not m.model_id.startswith("/")})
        if hub:  # an absolute path is a model already in the cache: nothing to download
            out["model_hub"] = f"llm needs it to download {', '.join(hub[:3])}{' ...' if len(hub) > 3 else ''}"
    if comps.matrix.enabled and comps.matrix.federation.enabled and comps.matrix.federation.extra_domains:
        domains = comps.matrix.federation.extra_domains
        out["matrix_federation"] = (f"matrix needs it to federate with {', '.join(domains[:3])}"
                                    f"{' ...' if len(domains) > 3 else ''}")
    if comps.jitsi.enabled and comps.jitsi.stun_servers:
        out["stun_turn"] = f"jitsi needs it to reach {', '.join(comps.jitsi.stun_servers[:3])}"
    modes = {name: c.postgres.mode for name, c in (("matrix", comps.matrix), ("docs", comps.docs)) if c.enabled}
    external = sorted(n for n, m in modes.items() if m == "external")
    if external:
        out["databases"] = f"{' and '.join(external)} need it to reach their external PostgreSQL"
    cnpg = sorted(n for n, m in modes.items() if m == "cloudnative-pg")
    if cnpg:
        out["api_server"] = (f"{' and '.join(cnpg)} need it: CloudNativePG's instances watch their Cluster through "
                             "the API server")
    return out


def missing_egress(suite: SovereignSuite, clouds: dict[str, NationalCloud]) -> list[EgressFinding]:
    """One warning per purpose an enabled component needs and no range is declared for, naming the field to set,
    the component and the countries concerned."""
    from .validation import effective_components  # validation imports this module's overlap check

    missing: dict[str, tuple[str, list[str]]] = {}  # purpose -> (why, ["FR (NationalCloud fr-...)", ...])
    from .validation import effective_backups

    for tenant in suite.spec.tenants:
        cloud = clouds.get(tenant.cloud)
        declared = merged(cloud.spec.network if cloud else None, suite.spec.network)
        needed = needed_purposes(suite, effective_components(suite, tenant))
        backups = effective_backups(suite, tenant)
        target = clouds.get(backups.cloud or tenant.cloud)
        if backups.enabled and target and target.spec.object_storage:
            needed["object_storage"] = f"the backup job needs it to reach {target.spec.object_storage.endpoint}"
        for purpose, why in needed.items():
            if not declared[purpose]:
                entry = missing.setdefault(purpose, (why, []))
                entry[1].append(f"{tenant.country} (NationalCloud {tenant.cloud})")
    out = []
    for purpose, (why, where) in sorted(missing.items()):
        field = to_camel(purpose)
        out.append(EgressFinding(
            f"spec.network.egress.{field}",
            f"{why}, and no range is declared for {', '.join(where)}: egress is denied by default, so it cannot "
            f"{CANNOT[purpose]}; declare the endpoint in the suite's spec.network.egress.{field} "
            f"or the NationalCloud's"))
    return out
