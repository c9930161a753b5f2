"""Declared egress against the cluster's own networks (issue 22, item 14) and against what the enabled components
need (item 15): api/egress_checks.py, reconcile/egress.py. No cluster (the Cyclonus matrix is in
tests/test_network_matrix.py, the CLI in tests/test_cli.py)."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from sovereign_suite.api.egress_checks import missing_egress, node_pod_networks, overlap_problems
from sovereign_suite.api.validation import InputError, parse_cloud, parse_suite
from sovereign_suite.reconcile.conditions import Findings, conditions
from sovereign_suite.reconcile.egress import add_warnings
from sovereign_suite.render import render_suite

from .helpers import example_dict, load_example


def suite_with_network(egress: dict, name: str = "four-countries", components: dict | None = None):
    doc = copy.deepcopy(example_dict(name))
    doc["spec"]["network"] = {"egress": egress}
    for comp, patch in (components or {}).items():
        doc["spec"]["components"].setdefault(comp, {}).update(patch)
    return parse_suite(doc)


def cloud_doc(network: dict) -> dict:
    return {"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "NationalCloud", "metadata": {"name": "it-sovereign"},
            "spec": {"country": "IT", "provider": "Aruba", "regions": ["it-mil"], "network": network}}


# ---- item 14: ranges over the cluster's networks ------------------------------------------------------

def test_a_range_over_the_declared_pod_and_service_networks_is_refused_naming_the_field():
    _, clouds = load_example("four-countries")  # podCIDRs 10.244.0.0/16, 10.245.0.0/24; Services 10.96.0.0/16
    suite = suite_with_network({"modelHub": [{"cidrs": ["203.0.113.0/24", "10.0.0.0/8"]}]})
    with pytest.raises(InputError) as err:
        render_suite(suite, clouds)
    [problem] = err.value.problems
    assert problem.path == "spec.network.egress.modelHub[0].cidrs[1]"
    assert "10.0.0.0/8 contains the cluster's pod network 10.244.0.0/16" in problem.message
    assert "Service network 10.96.0.0/16 (NationalCloud fr-secnumcloud spec.network.serviceCIDRs[0])" in problem.message


@pytest.mark.parametrize("purpose,cidr,refused", [
    ("s3", "10.96.0.10/32", True),          # one Service address (kube-dns's): refused for any purpose but apiServer
    ("apiServer", "10.96.0.1/32", False),   # the kubernetes Service's ClusterIP: what CNPG's instances dial
    ("apiServer", "10.96.0.0/24", True),    # a range of the Service network: refused even for apiServer
    ("apiServer", "10.244.3.7/32", True),   # a pod address: refused even for apiServer
    ("oidc", "10.244.3.0/24", True),        # inside the pod network
    ("oidc", "10.97.0.0/16", False),        # beside the Service network: outside the cluster
    ("oidc", "10.0.0.0/10", False),         # 10.0-10.63: outside both
    ("oidc", "10.64.0.0/10", True),         # 10.64-10.127 holds 10.96.0.0/16
])
def test_what_overlaps_and_what_does_not(purpose, cidr, refused):
    _, clouds = load_example("four-countries")
    found = overlap_problems(suite_with_network({purpose: [{"cidrs": [cidr]}]}), clouds)
    assert bool(found) == refused, found
    if refused:
        assert found[0].path.startswith(f"spec.network.egress.{purpose}[0].cidrs[0]")


def test_a_clouds_own_range_over_its_own_networks_is_refused_when_it_is_parsed():
    with pytest.raises(InputError) as err:
        parse_cloud(cloud_doc({"podCIDRs": ["fd00:10:244::/56"], "serviceCIDRs": ["172.17.0.0/16"],
                               "egress": {"s3": [{"cidrs": ["192.0.2.0/24", "fd00:10::/32"]}],
                                          "oidc": [{"cidrs": ["172.17.0.5/32"]}]}}))
    [problem] = err.value.problems
    assert problem.path == "NationalCloud/it-sovereign.spec.network"
    assert "egress.s3[0].cidrs[1]: fd00:10::/32 contains the cluster's pod network fd00:10:244::/56" in problem.message
    assert "egress.oidc[0].cidrs[0]: 172.17.0.5/32 lies in the cluster's Service network" in problem.message
    assert "192.0.2.0/24" not in problem.message


def test_cluster_networks_must_be_canonical_cidrs():
    with pytest.raises(InputError, match="podCIDRs.0.*canonical|canonical"):
        parse_cloud(cloud_doc({"podCIDRs": ["10.244.0.1/16"]}))


def test_pod_networks_read_from_the_nodes():
    nodes = [{"metadata": {"name": f"n{i}"}, "spec": {"podCIDRs": [f"10.244.{i}.0/24", f"fd00:1:0:{i}::/64"]}}
             for i in range(4)] + [{"metadata": {"name": "bare"}, "spec": {}}]
    nets = node_pod_networks(nodes)
    assert [str(n) for n, _, _ in nets] == ["10.244.0.0/22", "fd00:1::/62"]
    assert nets[0][2] == "spec.podCIDRs of Node n0 and others"
    assert node_pod_networks([]) == []


def test_a_range_over_a_nodes_pod_network_is_refused_naming_the_node():
    """The cluster says more than the cloud: a cloud that declares no networks, a Node with 10.250.7.0/24."""
    _, clouds = load_example("two-countries")
    bare = {name: c.model_copy(update={"spec": c.spec.model_copy(update={"network": type(c.spec.network)()})})
            for name, c in clouds.items()}
    suite = suite_with_network({"oidc": [{"cidrs": ["10.250.0.0/16"]}]}, "two-countries")
    assert overlap_problems(suite, bare) == []  # offline: nothing declared, nothing to compare with
    read = {"fr-secnumcloud": node_pod_networks([{"metadata": {"name": "fr-gpu-1"},
                                                  "spec": {"podCIDRs": ["10.250.7.0/24"]}}])}
    [found] = overlap_problems(suite, bare, read)
    assert found.path == "spec.network.egress.oidc[0].cidrs[0]"
    assert "10.250.7.0/24 (spec.podCIDRs of Node fr-gpu-1, in the cluster of NationalCloud fr-secnumcloud)" \
        in found.message
    exact = suite_with_network({"oidc": [{"cidrs": ["10.250.7.0/24"]}]}, "two-countries")
    assert overlap_problems(exact, bare, read)[0].message.startswith("10.250.7.0/24 is the cluster's pod network")


# ---- item 15: warnings for what a component needs and nobody declared ----------------------------------

def test_the_examples_declare_what_they_use():
    for name in ("two-countries", "four-countries"):
        suite, clouds = load_example(name)
        assert missing_egress(suite, clouds) == []


def test_each_undeclared_purpose_is_one_warning_naming_field_component_and_countries():
    suite, clouds = load_example("four-countries")
    doc = copy.deepcopy(suite.wire())
    doc["spec"].pop("network")
    bare = {n: c.model_copy(update={"spec": c.spec.model_copy(update={"network": type(c.spec.network)()})})
            for n, c in clouds.items()}
    warnings = {w.path: w.message for w in missing_egress(parse_suite(doc), bare)}
    assert set(warnings) == {"spec.network.egress.oidc", "spec.network.egress.s3",
                             "spec.network.egress.modelHub", "spec.network.egress.matrixFederation"}
    assert warnings["spec.network.egress.oidc"].startswith(
        "docs needs it to reach https://id.workplace.example.eu/realms/suite, and no range is declared for "
        "FR (NationalCloud fr-secnumcloud), DE (NationalCloud de-c5)")
    assert "cannot sign users in" in warnings["spec.network.egress.oidc"]
    assert "matrix needs it to federate with matrix.org" in warnings["spec.network.egress.matrixFederation"]
    assert warnings["spec.network.egress.modelHub"].startswith("llm needs it to download ")
    # the cloud's declaration is enough: modelHub declared on the clouds only
    assert "spec.network.egress.modelHub" not in {w.path for w in missing_egress(parse_suite(doc), clouds)}


@pytest.mark.parametrize("components,purpose", [
    ({"jitsi": {"stunServers": ["stun.example.eu:3478"]}}, "stunTurn"),
    ({"docs": {"postgres": {"mode": "external", "host": "pg.example.eu",
                            "passwordSecretRef": {"name": "pg", "key": "password"}}}}, "databases"),
    ({"matrix": {"postgres": {"mode": "cloudnative-pg"}}}, "apiServer"),
])
def test_other_purposes(components, purpose):
    suite, clouds = load_example("two-countries")
    warned = {w.path for w in missing_egress(suite_with_network({}, "two-countries", components), clouds)}
    assert f"spec.network.egress.{purpose}" in warned


def test_nothing_to_download_for_a_model_already_in_the_cache():
    doc = copy.deepcopy(example_dict("two-countries"))
    doc["spec"]["components"]["llm"] = {"enabled": True, "models": [
        {"name": "local", "modelId": "/models/llama", "gpusPerReplica": 1,
         "gpuProducts": ["NVIDIA-A100-SXM4-80GB"]}]}
    _, clouds = load_example("two-countries")
    bare = {n: c.model_copy(update={"spec": c.spec.model_copy(update={"network": type(c.spec.network)()})})
            for n, c in clouds.items()}
    assert "spec.network.egress.modelHub" not in {w.path for w in missing_egress(parse_suite(doc), bare)}


def test_warnings_go_to_the_status_and_an_event_once_never_to_the_conditions():
    suite, clouds = load_example("two-countries")
    warnings = missing_egress(suite_with_network({}, "two-countries"), clouds)
    assert warnings
    status: dict = {}
    events = add_warnings(status, {}, warnings)
    assert status["warnings"] == [{"reason": "EgressNotDeclared", "field": w.path, "message": w.message}
                                  for w in warnings]
    assert [e[:2] for e in events] == [("Warning", "EgressNotDeclared")] * len(warnings)
    assert add_warnings({}, status, warnings) == []  # already reported: no second Event
    cleared: dict = {}
    assert add_warnings(cleared, status, []) == [] and cleared["warnings"] == []
    kept: dict = {}
    add_warnings(kept, status, None)  # the spec could not be read this time: the last warnings stay
    assert kept["warnings"] == status["warnings"]
    # Ready is decided from problems and health only; warnings are not an input to it
    assert "warnings" not in Findings.__dataclass_fields__
    assert conditions(Findings(1)).ready


def test_ipaddress_semantics_the_checks_rely_on():
    """strict canonical parsing and overlap across versions (ipaddress never says two versions overlap)."""
    assert not ipaddress.ip_network("10.0.0.0/8").overlaps(ipaddress.ip_network("fd00::/8"))


def test_no_rendered_ip_block_overlaps_the_cluster_networks():
    """The rendered policy (no engine: tests/test_network_matrix.py has Cyclonus' verdicts): with every purpose
    declared as wide as the check accepts, no ipBlock of any tenant reaches into the example clouds' pod or
    Service networks, except the kubernetes Service's address for CloudNativePG's instances."""
    _, clouds = load_example("four-countries")
    cluster = [ipaddress.ip_network(c) for c in ("10.244.0.0/16", "10.245.0.0/24", "10.96.0.0/16")]
    rest = [ipaddress.ip_network("10.0.0.0/8")]
    for net in cluster:
        rest = [piece for r in rest for piece in (r.address_exclude(net) if net.subnet_of(r) else [r])]
    widest = [{"cidrs": [str(n) for n in sorted(rest)[i:i + 16]]} for i in range(0, len(rest), 16)]
    purposes = ("oidc", "s3", "modelHub", "stunTurn", "matrixFederation", "databases")
    egress = {p: widest for p in purposes}
    egress["apiServer"] = [{"cidrs": ["10.96.0.1/32"], "ports": [{"port": 443}]}]
    suite = suite_with_network(egress, components={"matrix": {"postgres": {"mode": "cloudnative-pg"}},
                                                   "jitsi": {"stunServers": ["stun.example.eu:3478"]}})
    objs = render_suite(suite, clouds).manifests
    blocks = [(o["metadata"]["namespace"], o["metadata"]["name"], ipaddress.ip_network(peer["ipBlock"]["cidr"]))
              for o in objs if o["kind"] == "NetworkPolicy" for rule in o["spec"].get("egress") or []
              for peer in rule.get("to") or [] if "ipBlock" in peer]
    assert {name for _, name, _ in blocks} >= {"allow-egress-model-hub", "allow-egress-oidc", "allow-egress-api-server"}
    inside = [(ns, name, str(net)) for ns, name, net in blocks for c in cluster
              if net.version == c.version and net.overlaps(c)]
    assert {(name, net) for _, name, net in inside} == {("allow-egress-api-server", "10.96.0.1/32")}
