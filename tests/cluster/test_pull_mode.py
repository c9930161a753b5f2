"""Sovereign pull mode on real local control planes: France's and Germany's clusters each hold the same
SovereignSuite (as each country's own GitOps would sync it) and run their own operator started with
``--local-cloud`` for their cloud only. No cluster holds a credential of another; each applies its own tenant and
reports the other as remote."""

from __future__ import annotations

import json
import os

import pytest
from kubernetes import client, config

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.members import join
from sovereign_suite.reconcile.kube import Kube

from sovereign_suite.components import finetune as renderer

from ..finetune_fixtures import MISTRAL, STORAGE, STORAGE_CIDR
from .conftest import wait_for
from .test_finetune_job import chart_priority_class
from .test_finetune_operator import (ADAPTERS_CM, CLOUD, FT, conditions, finetune, job_name, pods_of, status_of,
                                     storage_credentials, write_result)
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


def test_a_finetune_trains_in_its_countrys_cluster_and_the_other_copy_leaves_it_to_that_operator(countries):
    """The same suite and FineTune synced to both countries' clusters (as each country's GitOps would): France's
    operator trains and serves it in France's cluster; Germany's copy says RemoteCloud and nothing of it is applied
    in Germany (docs/llm-finetuning.md, "The controller"). The fine-tuning PriorityClass is the chart's, as the
    country's own operator chart installs it."""
    ft_docs, suite_docs, admin = {}, {}, "pull-admin"
    for country, (c, _, k) in countries.items():
        for ns in ("suites", admin):
            if k.get("v1", "Namespace", ns) is None:
                k.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        storage_credentials(k, "suites")
        if k.get("scheduling.k8s.io/v1", "PriorityClass", renderer.PRIORITY_CLASS) is None:
            k.create(chart_priority_class())
        k.merge_patch(*CLOUD, CLOUDS["FR"], None, {"spec": {"objectStorage": STORAGE, "network": {"egress": {
            "objectStorage": [{"cidrs": [STORAGE_CIDR], "ports": [{"port": 443}]}]}}}})
        suite = {"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": {"name": "euft", "namespace": "suites"},
                 "spec": {"domain": "ft.example.eu", "deletionPolicy": "Delete",
                          "tenants": [{"country": "FR", "cloud": CLOUDS["FR"], "fineTuneNamespaces": [admin]}],
                          "components": {"matrix": {"enabled": False}, "jitsi": {"enabled": False},
                                         "docs": {"enabled": False},
                                         "llm": {"enabled": True, "models": [{**MISTRAL, "replicas": 0}]}}}}
        k.create(suite)
        suite_docs[country] = suite
        doc = finetune({"suite": "euft", "suite_ns": "suites", "admin": admin}, "pull-run")
        k.create(doc)
        ft_docs[country] = doc
    _, _, fr = countries["FR"]
    _, _, de = countries["DE"]
    name, ns = job_name(ft_docs["FR"]), "euft-fr"
    wait_for(lambda: fr.get("batch/v1", "Job", name, ns), timeout=120, what="the Job in France's cluster")
    st = wait_for(lambda: (s := status_of(fr, ft_docs["FR"])).get("phase") == "NotPromoted" and s, timeout=90,
                  what="NotPromoted in France")
    uri = f"s3://{STORAGE['bucket']}/fine-tuning/{admin}/pull-run/adapter/"
    (pod,) = pods_of(fr, ns, name)
    assert pod["spec"]["priorityClassName"] == renderer.PRIORITY_CLASS
    write_result(fr, pod, {"phase": "Succeeded", "step": 100, "totalSteps": 100, "loss": 1.1, "baseEvalLoss": 2.0,
                           "evalLoss": 1.4, "tokensPerSecond": 900.0, "durationSeconds": 42.0, "adapterUri": uri})
    st = wait_for(lambda: (s := status_of(fr, ft_docs["FR"])).get("phase") == "Ready" and s, timeout=120,
                  what="Ready in France: the adapter served")
    assert st["servedName"] == f"{admin}-pull-run"
    config_map = fr.get("v1", "ConfigMap", ADAPTERS_CM, ns)
    assert [a["name"] for a in json.loads(config_map["data"]["config.json"])["adapters"]] == [f"{admin}-pull-run"]
    # Germany's copy: left to France's operator, nothing of it in Germany's cluster
    st = wait_for(lambda: (s := status_of(de, ft_docs["DE"])).get("conditions") and s, timeout=90,
                  what="a status on Germany's copy")
    assert any(r == "RemoteCloud" for _, r, _ in conditions(st).values()), conditions(st)
    assert st.get("phase") != "Ready" and "job" not in st
    labels = f"{renderer.LABEL_FINETUNE}=pull-run,{renderer.LABEL_FINETUNE_NS}={admin}"
    for kind in (("batch/v1", "Job"), ("networking.k8s.io/v1", "NetworkPolicy"), ("v1", "Pod")):
        assert de.list(*kind, label_selector=labels) == [], f"{kind[1]} in Germany"
    assert de.get("v1", "Namespace", ns) is None
    # deletion: France's operator deletes its Job, then the finalizer; Germany's copy goes too
    for country, (_, _, k) in countries.items():
        k.delete(ft_docs[country])
    for country, (_, _, k) in countries.items():
        wait_for(lambda k=k: k.get(*FT, "pull-run", admin) is None, timeout=90, what=f"{country}'s FineTune gone")
    assert fr.get("batch/v1", "Job", name, ns) is None and pods_of(fr, ns, name) == []
    for country, (_, _, k) in countries.items():
        k.delete(suite_docs[country])
