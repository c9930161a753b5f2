"""Sovereign pull mode on real local control planes: France's and Germany's clusters each hold the same
SovereignSuite (as each country's own GitOps would sync it) and run their own operator started with
``--local-cloud`` for their cloud only. No cluster holds a credential of another; each applies its own tenant and
reports the other as remote."""

from __future__ import annotations

import os

import pytest
from kubernetes import client, config

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join
from sovereign_suite.reconcile.kube import Kube

from .conftest import wait_for
from .operator_fixture import OperatorProcess, condition, create_referenced_secrets, get_suite, suite_doc, wait_ready

CLOUDS = {"FR": "fr-secnumcloud", "DE": "de-c5"}
SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")


@pytest.fixture(scope="module")
def countries(kube):
    """A cluster per country, each with its own operator in pull mode. The other country's NationalCloud is
    synced there too (the suite names it), without any kubeconfig."""
    made: dict[str, tuple[Cluster, OperatorProcess]] = {}
    try:
        for country, cloud in CLOUDS.items():
            c = Cluster(f"{country.lower()}-pull-{os.getpid()}")
            c.up(progress=lambda m, country=country: print(f"[{country}] {m}"), countries=[country])
            k = Kube(config.new_client_from_config(config_file=str(c.kubeconfig)), user_agent="sovereign-suite-tests")
            for other, other_cloud in CLOUDS.items():
                if other != country:
                    k.create({"apiVersion": join.CLOUDS[0], "kind": "NationalCloud",
                              "metadata": {"name": other_cloud}, "spec": kube.get(*join.CLOUDS, other_cloud)["spec"]})
            op = OperatorProcess(c, drift_interval=30.0, tag="pull-operator", args=("--local-cloud", cloud))
            op.start()
            made[country] = (c, op)
        yield {country: (c, op, Kube(config.new_client_from_config(config_file=str(c.kubeconfig)),
                                     user_agent="sovereign-suite-tests")) for country, (c, op) in made.items()}
    finally:
        for c, op in made.values():
            op.stop()
            c.down()


def test_each_country_applies_its_own_tenant_and_reports_the_other_as_remote(countries):
    docs = {}
    for country, (c, _, k) in countries.items():
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(c.kubeconfig)))
        core.create_namespace({"metadata": {"name": "suites"}})
        create_referenced_secrets(core, "suites")
        doc = suite_doc("two-countries", "suites", name="eu", patch={"deletionPolicy": "Delete", "components": {
            "docs": {"enabled": False}, "jitsi": {"enabled": False}}})
        k.create(doc)
        docs[country] = doc
    for country, (c, op, k) in countries.items():
        other = "DE" if country == "FR" else "FR"
        suite = wait_ready(k, docs[country], timeout=240)
        tenants = {t["country"]: t for t in suite["status"]["tenants"]}
        assert (tenants[country]["cluster"], tenants[country]["clusterReachable"]) == ("local", True)
        assert tenants[other]["cluster"] == "remote" and tenants[other]["ready"] is False
        assert suite["status"]["readySummary"] == "1/1"
        assert k.get("apps/v1", "Deployment", "synapse", f"eu-{country.lower()}")
        assert k.get("v1", "Namespace", f"eu-{other.lower()}") is None  # the other country's tenant is not here
        assert not k.list("v1", "Secret", namespace="sovereign-suite-system")  # no credential of any other cluster

    # deleting Germany's copy cleans Germany only
    _, _, de = countries["DE"]
    de.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": docs["DE"]["metadata"]})
    wait_for(lambda: get_suite(de, docs["DE"]) is None and de.get("v1", "Namespace", "eu-de") is None,
             timeout=120, what="Germany's copy deleted")
    _, _, fr = countries["FR"]
    assert condition(get_suite(fr, docs["FR"]), "Ready")["status"] == "True" and fr.get("v1", "Namespace", "eu-fr")
