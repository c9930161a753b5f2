"""spec.network.egress (api/network.py): declared CIDRs are validated, the metadata address is refused, and each
purpose opens egress for its own pods only (the full matrix is in tests/test_network_matrix.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sovereign_suite.api.network import Egress, Network
from sovereign_suite.api.validation import parse_suite
from sovereign_suite.render import render_suite

from .helpers import example_dict, load_example


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
    doc = example_dict("four-countries")
    doc["spec"]["network"] = {"egress": {"modelHub": [{"cidrs": ["203.0.113.0/24"], "ports": [{"port": 443}]}]}}
    objs = render_suite(parse_suite(doc), without_cloud_egress()).manifests
    egress = [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].startswith("allow-egress-")
              and "ipBlock" in str(o)]
    assert egress and {o["metadata"]["name"] for o in egress} == {"allow-egress-model-hub"}
    for o in egress:
        assert o["spec"]["podSelector"] == {"matchExpressions": [
            {"key": "app.kubernetes.io/name", "operator": "In", "values": ["vllm"]}]}
        assert o["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                                        "ports": [{"protocol": "TCP", "port": 443}]}]


def test_nothing_leaves_the_cluster_by_default():
    doc = example_dict("two-countries")
    doc["spec"].pop("network")  # the example declares its OIDC issuer and S3
    objs = render_suite(parse_suite(doc), without_cloud_egress()).manifests
    assert "ipBlock" not in str([o for o in objs if o["kind"] == "NetworkPolicy"
                                 and "Egress" in o["spec"]["policyTypes"]])


def without_cloud_egress():
    """The example clouds without their declared egress (they declare Hugging Face for modelHub)."""
    _, clouds = load_example("four-countries")
    return {n: c.model_copy(update={"spec": c.spec.model_copy(update={"network": c.spec.network.model_copy(
        update={"egress": Egress()})})}) for n, c in clouds.items()}
