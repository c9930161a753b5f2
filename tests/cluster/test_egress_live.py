"""The egress checks in the operator's pass, on the real local control plane (issue 22, items 14 and 15).

- A range over the pod network the cluster's Nodes hold (``spec.podCIDRs``: 10.244.N.0/24, given by
  devcluster/seed.py) is refused even when the NationalCloud declares no network: Stalled, naming the field and a
  Node, and nothing written.
- A valid suite whose Docs has no declared egress is Ready, with ``status.warnings`` naming the field and a Warning
  Event; declaring the range clears the warning.
"""

from __future__ import annotations

import uuid

from .conftest import wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets, get_suite, suite_doc, wait_ready

CLOUDS = ("sovereignsuite.io/v1alpha1", "NationalCloud")


def test_a_range_over_the_nodes_pod_network_is_refused_before_anything_is_written(operator, kube, namespace):
    cloud = f"fr-nonet-{uuid.uuid4().hex[:5]}"  # a cloud that declares no network: only the Nodes tell
    kube.create({"apiVersion": CLOUDS[0], "kind": CLOUDS[1], "metadata": {"name": cloud},
                 "spec": {"country": "FR", "provider": "test", "regions": ["eu-west-2"], "storageClass": "standard",
                          "suiteNamespaces": [namespace]}})
    doc = suite_doc("two-countries", namespace, patch={"network": {"egress": {"s3": [{"cidrs": ["10.244.0.0/16"]}]}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": cloud}]
    try:
        kube.create(doc)

        def stalled():
            c = condition(get_suite(kube, doc), "Stalled")
            return c if c and c["status"] == "True" else None

        c = wait_for(stalled, timeout=60, what="Stalled")
        assert c["reason"] == "InvalidSpec"
        assert "spec.network.egress.s3[0].cidrs[0]: 10.244.0.0/16 contains the cluster's pod network" in c["message"]
        assert "spec.podCIDRs of Node" in c["message"] and f"in the cluster of NationalCloud {cloud}" in c["message"]
        assert kube.get("v1", "Namespace", f"{doc['metadata']['name']}-fr") is None  # nothing written
    finally:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=60, what="suite deleted")
        kube.delete({"apiVersion": CLOUDS[0], "kind": CLOUDS[1], "metadata": {"name": cloud}})


def test_undeclared_egress_is_a_warning_in_the_status_not_a_condition(operator, kube, core, namespace):
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={"components": {"matrix": {"enabled": False},
                                                                      "jitsi": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-secnumcloud"}]
    doc["spec"]["network"]["egress"].pop("oidc")  # Docs cannot sign users in
    name = doc["metadata"]["name"]
    kube.create(doc)
    suite = wait_ready(kube, doc, timeout=180)  # a warning never holds Ready back
    [warning] = suite["status"]["warnings"]
    assert warning["reason"] == "EgressNotDeclared" and warning["field"] == "spec.network.egress.oidc"
    assert "docs needs it to reach https://id.workplace.example.eu/realms/suite" in warning["message"]
    assert "FR (NationalCloud fr-secnumcloud)" in warning["message"]
    events = wait_for(lambda: [e for e in kube.list("v1", "Event", namespace=namespace,
                                                     field_selector=f"involvedObject.name={name}")
                               if e["reason"] == "EgressNotDeclared"], timeout=30, what="the Warning Event")
    assert events[0]["type"] == "Warning" and "spec.network.egress.oidc" in events[0]["message"]

    kube.merge_patch(*SUITES, name, namespace, {"spec": {"network": {"egress": {"oidc": [
        {"cidrs": ["192.0.2.10/32"]}]}}}})
    wait_for(lambda: (get_suite(kube, doc)["status"].get("observedGeneration") == get_suite(kube, doc)["metadata"][
        "generation"] and get_suite(kube, doc)["status"].get("warnings") == []), timeout=60,
        what="the warning cleared once the range is declared")
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")
