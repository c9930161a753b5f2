"""Backups on the local control plane, with the operator as a real process.

kwok's nodes run no container, so the backup job itself is tested as a program elsewhere
(tests/test_backup_program.py: real PostgreSQL, a real S3 server, age). Here: a suite whose tenant would back up
into another country's object storage is Stalled with the field named and nothing applied; once the target is the
tenant's own country, the API server accepts the CronJob (Pod Security "restricted" admission of the tenant
namespace included), its ConfigMap and the backup pod's NetworkPolicies, and the suite's status reports the
tenant's backup schedule from the live CronJob.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sovereign_suite.devcluster.cluster import dev_clouds

from .conftest import wait_for
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
        # the reason the pipeline gives every problem about a NationalCloud (as for a tenant's own cloud in
        # another country, reconcile/pipeline.py); the message names the field
        assert c["reason"] == "UnknownCloud", c
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
