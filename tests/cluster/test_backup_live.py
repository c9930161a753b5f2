"""Backups on the local control plane, with the operator as a real process.

kwok's nodes run no container, so the backup job itself is tested as a program elsewhere
(tests/test_backup_program.py: real PostgreSQL, a real S3 server, age). Here: a suite whose tenant would back up
into another country's object storage is Stalled with the field named and nothing applied; once the target is the
tenant's own country, the API server accepts the CronJob (Pod Security "restricted" admission of the tenant
namespace included), its ConfigMap and the backup pod's NetworkPolicies, and the suite's status reports the
tenant's backup schedule from the live CronJob. With CloudNativePG's Cluster CRD (v1.27.1, hack/fetch-test-crds.sh),
the Cluster the operator renders with the Barman Cloud plugin's WAL archiver (``spec.plugins``) is accepted by
the real schema (strict field validation). The plugin's ObjectStore and CloudNativePG's ScheduledBackup CRDs are
not in the test CRD set: those two objects are checked by the unit tests only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.components.base import BARMAN_API, CNPG_API
from sovereign_suite.api.models import NationalCloud
from sovereign_suite.devcluster.cluster import dev_clouds
from sovereign_suite.reconcile.kube import ref
from sovereign_suite.render import render_suite

from .conftest import serving_test_crds, wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets, get_suite, suite_doc

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"  # age's spec example recipient


def cloud(name: str, country_cloud: str, bucket: str, creds: str) -> dict[str, Any]:
    doc = dev_clouds()[country_cloud].wire()  # as the dev cluster holds it: it admits the test's namespace
    doc["metadata"] = {"name": name}
    doc["spec"]["objectStorage"] = {"endpoint": "https://s3.example.test", "bucket": bucket,
                                    "credentialsSecretRef": creds}
    doc["spec"].setdefault("network", {}).setdefault("egress", {})["objectStorage"] = [{"cidrs": ["198.51.100.0/24"]}]
    return doc


def referenceable(core, namespace: str, name: str, data: dict[str, str]) -> None:
    core.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": {
        "sovereignsuite.io/referenceable": "true"}}, "stringData": data})


def test_cross_country_target_is_stalled_then_the_cronjob_is_applied(operator, kube, core, namespace):
    tag = uuid.uuid4().hex[:5]
    fr_cloud, de_cloud = cloud(f"fr-bk-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3"), \
        cloud(f"de-bk-{tag}", "de-c5", "de-backups", "de-s3")
    create_referenced_secrets(core, namespace)
    referenceable(core, namespace, "fr-s3", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"})
    referenceable(core, namespace, "backup-recipient", {"recipient": RECIPIENT})
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete",
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}},
        "backups": {"enabled": True, "cloud": de_cloud["metadata"]["name"], "schedule": "15 1 * * *",
                    "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": fr_cloud["metadata"]["name"]}]
    fr = f"{doc['metadata']['name']}-fr"
    try:
        for c in (fr_cloud, de_cloud):
            kube.create(c)
        kube.create(doc)

        def stalled():
            c = condition(get_suite(kube, doc), "Stalled")
            return c if c and c["status"] == "True" else None

        c = wait_for(stalled, timeout=90, what="Stalled condition")
        # its own reason (reconcile/pipeline.py), not UnknownCloud: the cloud exists, it is in the wrong country;
        # the message names the field
        assert c["reason"] == "BackupOutsideCountry", c
        assert (f"spec.backups.cloud: NationalCloud '{de_cloud['metadata']['name']}' is in DE, not in FR: a "
                "tenant's backups must stay in its own country") in c["message"]
        assert kube.get("v1", "Namespace", fr) is None  # nothing half-applied

        kube.merge_patch(*SUITES, doc["metadata"]["name"], namespace,
                         {"spec": {"backups": {"cloud": fr_cloud["metadata"]["name"]}}})
        cron = wait_for(lambda: kube.get("batch/v1", "CronJob", "backup", fr), timeout=120,
                        what="the backup CronJob applied")
        assert cron["spec"]["schedule"] == "15 1 * * *"
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        cfg = json.loads(kube.get("v1", "ConfigMap", "backup-config", fr)["data"]["config.json"])
        assert cfg["s3"]["bucket"] == "fr-backups" and cfg["prefix"] == f"{namespace}/{doc['metadata']['name']}/fr/"
        assert kube.get("v1", "Secret", "fr-s3", fr) is not None  # the object storage's credentials, copied
        assert kube.get("v1", "Secret", "backup-recipient", fr) is not None
        for name in ("allow-egress-backup-databases", "allow-egress-object-storage"):
            assert kube.get("networking.k8s.io/v1", "NetworkPolicy", name, fr) is not None, name

        def reported():
            s = get_suite(kube, doc)
            tenants = ((s or {}).get("status") or {}).get("tenants") or []
            return tenants and tenants[0].get("backup")

        backup = wait_for(reported, timeout=90, what="status.tenants[0].backup")
        assert backup["schedule"] == "15 1 * * *" and backup["intervalSeconds"] == 86400
        assert backup["enabledSince"] == cron["metadata"]["creationTimestamp"]
        assert "lastSuccessTime" not in backup  # no Job ran: kwok's nodes run no container
        stalled_now = condition(get_suite(kube, doc), "Stalled")
        assert stalled_now is None or stalled_now["status"] == "False"
    finally:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="the suite deleted")
        for c in (fr_cloud, de_cloud):
            kube.delete(c)


@pytest.fixture()
def cnpg_crd(cluster, kube):
    with serving_test_crds(cluster, kube) as crds:
        yield crds


def test_the_cluster_with_the_barman_cloud_wal_archiver_fits_cloudnative_pgs_schema(kube, core, namespace, cnpg_crd):
    tag = uuid.uuid4().hex[:5]
    fr_cloud = cloud(f"fr-bk-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3")
    doc = suite_doc("two-countries", namespace, patch={
        "components": {"docs": {"enabled": False}, "matrix": {"postgres": {"mode": "cloudnative-pg"}}},
        "backups": {"enabled": True, "include": {"secrets": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": fr_cloud["metadata"]["name"]}]
    clouds = {fr_cloud["metadata"]["name"]: NationalCloud.model_validate(fr_cloud)}
    result = render_suite(parse_suite(doc), clouds, frozenset({CNPG_API, BARMAN_API}),
                          operator_namespace=namespace)
    (cluster_obj,) = [o for o in result.manifests if o["kind"] == "Cluster"]
    assert cluster_obj["spec"]["plugins"][0]["isWALArchiver"] is True
    fr = cluster_obj["metadata"]["namespace"]
    core.create_namespace({"metadata": {"name": fr}})
    try:
        k = kube.require(cluster_obj["apiVersion"], "Cluster")
        answer = kube.request("PATCH", k.path(fr, cluster_obj["metadata"]["name"]), body=cluster_obj,
                              query={"fieldManager": "sovereign-suite-tests", "force": "true", "dryRun": "All",
                                     "fieldValidation": "Strict"},
                              content_type="application/apply-patch+yaml", what=ref(cluster_obj))
        # kept, not pruned as unknown; the schema defaults the plugin's `enabled` to true
        assert answer["spec"]["plugins"] == [{**p, "enabled": True} for p in cluster_obj["spec"]["plugins"]]
    finally:
        core.delete_namespace(fr)
