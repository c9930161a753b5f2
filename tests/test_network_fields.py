"""spec.network.egress (api/network.py): declared CIDRs are validated, the metadata address is refused, and each
purpose opens egress for its own pods only (the full matrix is in tests/test_network_matrix.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sovereign_suite.api.network import Network
from sovereign_suite.render import render_suite

from .helpers import load_example, suite_with


@pytest.mark.parametrize("cidr,message", [
    ("169.254.0.0/16", "metadata"),
    ("0.0.0.0/0", "metadata"),
    ("::/0", "metadata"),
    ("10.0.0.1/8", "canonical"),  # host bits set: strict parsing refuses it
    ("example.com/32", "canonical"),
])
def test_bad_cidrs_are_refused(cidr, message):
    with pytest.raises(ValidationError, match=message):
        Network.model_validate({"egress": {"s3": [{"cidrs": [cidr]}]}})


def test_a_declared_purpose_opens_egress_for_its_pods_only():
    suite = suite_with("four-countries", {"network": {"egress": {"modelHub": [
        {"cidrs": ["203.0.113.0/24"], "ports": [{"port": 443}]}]}}})
    _, clouds = load_example("four-countries")
    objs = render_suite(suite, clouds).manifests
    egress = [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].startswith("allow-egress-")
              and "ipBlock" in str(o)]
    assert egress and {o["metadata"]["name"] for o in egress} == {"allow-egress-model-hub"}
    for o in egress:
        assert o["spec"]["podSelector"] == {"matchExpressions": [
            {"key": "app.kubernetes.io/name", "operator": "In", "values": ["vllm"]}]}
        assert o["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                                        "ports": [{"protocol": "TCP", "port": 443}]}]


def test_nothing_leaves_the_cluster_by_default():
    suite, clouds = load_example("two-countries")
    assert "ipBlock" not in str([o for o in render_suite(suite, clouds).manifests if o["kind"] == "NetworkPolicy"
                                 and "Egress" in o["spec"]["policyTypes"]])
