"""Backups on the local control plane, with the operator as a real process.

kwok's nodes run no container, so the backup job itself is tested as a program elsewhere
(tests/test_backup_program.py: real PostgreSQL, a real S3 server, age). Here: a suite whose tenant would back up
into another country's object storage is Stalled with the field named and nothing applied; once the target is the
tenant's own country, the API server accepts the CronJob (Pod Security "restricted" admission of the tenant
namespace included), its ConfigMap and the backup pod's NetworkPolicies, and the suite's status reports the
tenant's backup schedule from the live CronJob. With CloudNativePG's Cluster CRD (v1.27.1, hack/fetch-test-crds.sh),
the Cluster the operator renders with the Barman Cloud plugin's WAL archiver (``spec.plugins``) is accepted by
the real schema (strict field validation), and so is the Cluster a restore creates. The plugin's ObjectStore and
CloudNativePG's ScheduledBackup are applied against their real CRDs by tests/cluster/test_restore_cnpg_live.py
(the ``cnpg-backup`` set of hack/fetch-test-crds.sh).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.components.backup import generated_secrets
from sovereign_suite.components.backup.restore_job import LABEL_RESTORE, job_name
from sovereign_suite.components.base import BARMAN_API, CNPG_API, build_contexts
from sovereign_suite.reconcile import restore_pass
from sovereign_suite.reconcile.problems import ObjectKey
from sovereign_suite.reconcile.restore import ANN_RESTORED_FROM
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


@pytest.fixture(scope="module")
def cnpg_crd(cluster, kube):
    """Applied once for the module's two CloudNativePG tests, deleted at its end (the next module starts
    without them)."""
    with serving_test_crds(cluster, kube) as crds:
        yield crds


def dry_run(kube, obj: dict[str, Any]) -> dict[str, Any]:
    """A server-side apply of ``obj`` as the operator sends it, stored nowhere, unknown fields refused."""
    k = kube.require(obj["apiVersion"], obj["kind"])
    return kube.request("PATCH", k.path(obj["metadata"]["namespace"], obj["metadata"]["name"]), body=obj,
                        query={"fieldManager": "sovereign-suite-tests", "force": "true", "dryRun": "All",
                               "fieldValidation": "Strict"},
                        content_type="application/apply-patch+yaml", what=ref(obj))


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


def test_the_cluster_a_restore_creates_fits_cloudnative_pgs_schema(kube, core, namespace, cnpg_crd):
    """The Cluster a pass renders for a tenant restored to a point in time (bootstrap.recovery from an
    externalClusters[] entry of the Barman Cloud plugin, its own archive under another server name), and the same
    Cluster once restoreFrom is removed, are accepted by CloudNativePG v1.27.1's schema with strict field
    validation, every field kept. No CloudNativePG controller runs here: its webhook and the recovery itself are
    not exercised (docs/operations.md says what is proven)."""
    tag = uuid.uuid4().hex[:5]
    fr_cloud = cloud(f"fr-rs-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3")
    clouds = {fr_cloud["metadata"]["name"]: NationalCloud.model_validate(fr_cloud)}
    caps = frozenset({CNPG_API, BARMAN_API})
    bid, pit = "20261203T020000Z", "2026-12-03T14:30:00Z"

    def pass_cluster(restore_from: dict | None, recorded: dict) -> dict[str, Any]:
        backups = {"enabled": True, "include": {"secrets": False},
                   **({"restoreFrom": restore_from} if restore_from else {})}
        doc = suite_doc("two-countries", namespace, name=f"rs{tag}", patch={
            "components": {"docs": {"enabled": False}, "matrix": {"postgres": {"mode": "cloudnative-pg"}}},
            "backups": backups})
        doc["spec"]["tenants"] = [{"country": "FR", "cloud": fr_cloud["metadata"]["name"]}]
        suite = parse_suite(doc)
        result = render_suite(suite, clouds, caps, operator_namespace=namespace)
        (ctx,) = build_contexts(suite, clouds, caps)
        ns = ctx.namespace
        # the pass as it runs once the restore Job exists and the Secrets are there: the bucket is not read
        live = {ObjectKey("batch", "Job", ns, job_name(bid)): {"metadata": {
            "name": job_name(bid), "namespace": ns, "labels": {LABEL_RESTORE: bid}}, "status": {}},
            **{ObjectKey("", "Secret", ns, n): {"metadata": {"annotations": {ANN_RESTORED_FROM: bid}}}
               for n in generated_secrets(ctx)}}
        out = restore_pass.plan([ctx], result, live, recorded, lambda _ns: True, lambda _ns, _j: [],
                                lambda _ns, _n: None, namespace)
        assert out.problems == [], out.problems
        (cluster_obj,) = [o for o in result.manifests if o["kind"] == "Cluster"]
        return cluster_obj

    recovering = pass_cluster({"backup": bid, "pointInTime": pit}, {})
    assert recovering["spec"]["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": pit}
    restored = pass_cluster(None, {recovering["metadata"]["namespace"]: {"phase": "Restored", "backupId": bid}})
    assert restored["spec"]["plugins"][0]["parameters"]["serverName"] == "matrix-postgres-20261203t020000z"
    fr = recovering["metadata"]["namespace"]
    core.create_namespace({"metadata": {"name": fr}})
    try:
        for obj in (recovering, restored):
            answer = dry_run(kube, obj)
            # every field kept (not pruned as unknown); the schema only defaults the plugins' `enabled` (and, for
            # the external cluster's, `isWALArchiver: false`: it is read from, never archived into)
            spec = answer["spec"]
            assert spec["bootstrap"] == obj["spec"]["bootstrap"]
            assert spec.get("externalClusters", []) == [
                {**e, "plugin": {**e["plugin"], "enabled": True, "isWALArchiver": False}}
                for e in obj["spec"].get("externalClusters", [])]
            assert spec["plugins"] == [{**p, "enabled": True} for p in obj["spec"]["plugins"]]
            assert answer["metadata"]["annotations"][ANN_RESTORED_FROM] == bid
    finally:
        core.delete_namespace(fr)
