"""A tenant whose database is cloudnative-pg, created from a backup to a point in time, on the local control plane
with the operator as a real process, a real S3 server (moto) holding the tenant's Secrets as the real backup
program wrote them, and the CRDs of CloudNativePG v1.27.1 (Cluster, ScheduledBackup) and of its Barman Cloud
plugin v0.15.0 (ObjectStore) served (hack/fetch-test-crds.sh).

No CloudNativePG controller runs here (nor its webhook): the Cluster's ``Ready`` condition is written by the test
through the status subresource, as CloudNativePG's controller writes it (api/v1/cluster_types.go,
ConditionClusterReady "Ready", v1.27.1). What is checked is the operator's side:

- the Cluster is created by recovery (bootstrap.recovery from an externalClusters[] entry of the Barman Cloud
  plugin, recoveryTarget.targetTime = pointInTime), archiving under its own server name;
- the restore Job restores the media only; once kwok has completed it, the applications still wait, the status
  says they wait for CloudNativePG's recovery (with the Cluster's own words), until the Cluster is Ready;
- then the applications are applied and the tenant is Restored.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from sovereign_suite.components.base import BARMAN_API, CNPG_API

from ..test_backup_program import s3_server  # noqa: F401
from .conftest import serving_test_crds, wait_for
from .test_restore_live import APPS, _backup, _cleanup, _restore_status, _setup, _suite

CLUSTER = ("postgresql.cnpg.io/v1", "Cluster", "matrix-postgres")


@pytest.fixture(scope="module")
def cnpg_backup_crds(cluster, kube):
    """Before the operator starts (fixture order): it discovers the three APIs at once."""
    with serving_test_crds(cluster, kube, ("cnpg", "cnpg-backup")) as crds:
        yield crds


def _set_ready(kube, ns: str, status: str, reason: str, message: str) -> None:
    k = kube.require(CLUSTER[0], CLUSTER[1])
    kube.request("PATCH", k.path(ns, CLUSTER[2]) + "/status", body={"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": reason, "message": message,
         "lastTransitionTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}]}},
        content_type="application/merge-patch+json", what=f"Cluster/{ns}/{CLUSTER[2]} status")


def test_a_cloudnative_pg_tenant_is_recovered_to_a_point_in_time_and_its_applications_wait_for_it(
        cnpg_backup_crds, operator, kube, core, namespace, s3_server, tmp_path):
    fr_cloud, recipient = _setup(core, kube, namespace, s3_server, tmp_path)
    doc = _suite(namespace, fr_cloud["metadata"]["name"], "latest")
    doc["spec"]["components"]["matrix"] = {"postgres": {"mode": "cloudnative-pg"}}
    pit = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["spec"]["backups"]["restoreFrom"]["pointInTime"] = pit
    fr = f"{doc['metadata']['name']}-fr"
    bid, values = _backup(tmp_path, s3_server, doc, fr_cloud, recipient, frozenset({CNPG_API, BARMAN_API}))
    assert "matrix-postgres" not in values  # CloudNativePG makes its own -app Secret
    try:
        kube.create(doc)
        job = wait_for(lambda: kube.get("batch/v1", "Job", f"restore-{bid.lower()}", fr), timeout=120,
                       what="the restore Job")
        cluster_obj = kube.get(*CLUSTER[:2], CLUSTER[2], fr)
        spec = cluster_obj["spec"]
        assert spec["bootstrap"]["recovery"] == {"source": "backup", "database": "matrix", "owner": "matrix",
                                                 "recoveryTarget": {"targetTime": pit}}
        assert [e["plugin"]["parameters"] for e in spec["externalClusters"]] == [
            {"barmanObjectName": "matrix-postgres-backup", "serverName": "matrix-postgres"}]
        assert spec["plugins"][0]["parameters"]["serverName"] == f"matrix-postgres-{bid.lower()}"
        assert cluster_obj["metadata"]["annotations"]["sovereignsuite.io/restored-from"] == bid
        assert kube.get("barmancloud.cnpg.io/v1", "ObjectStore", "matrix-postgres-backup", fr) is not None
        # the Job restores the media only (no database to wait for, no database Secret mounted)
        mounts = [m["mountPath"] for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]]
        assert "/backup/media" in mounts and not any(m.startswith("/backup/secrets/") for m in mounts)

        def waiting():
            entry = _restore_status(kube, doc)
            return entry if "waiting for CloudNativePG's recovery" in entry.get("message", "") else None

        entry = wait_for(waiting, timeout=180, what="Restoring, waiting for the recovery")
        assert entry["phase"] == "Restoring" and "matrix-postgres (no Ready condition yet)" in entry["message"]
        assert kube.get("batch/v1", "Job", job["metadata"]["name"], fr)["status"].get("succeeded") == 1
        _set_ready(kube, fr, "False", "ClusterIsNotReady", "Cluster Is Not Ready")
        wait_for(lambda: "ClusterIsNotReady: Cluster Is Not Ready" in _restore_status(kube, doc).get("message", ""),
                 timeout=60, what="CloudNativePG's words in the status")
        time.sleep(6)  # two drift passes: still nothing started
        for api, kind, name in APPS:
            assert kube.get(api, kind, name, fr) is None, (kind, name)

        ready_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # before: same clock, whole seconds
        _set_ready(kube, fr, "True", "ClusterIsReady", "Cluster is Ready")
        assert wait_for(lambda: _restore_status(kube, doc).get("phase") == "Restored" and _restore_status(kube, doc),
                        timeout=120, what="status Restored") == {"phase": "Restored", "backupId": bid}
        for api, kind, name in APPS:
            obj = wait_for(lambda: kube.get(api, kind, name, fr), timeout=120, what=f"{kind} {name}")
            # applied only once the recovered database was Ready (RFC 3339 UTC seconds compare as strings)
            assert obj["metadata"]["creationTimestamp"] >= ready_at, (kind, name, obj["metadata"]["creationTimestamp"])
        # the restored database is backed up again by CloudNativePG: its ScheduledBackup, accepted by the real CRD
        scheduled = wait_for(lambda: kube.get("postgresql.cnpg.io/v1", "ScheduledBackup", "matrix-postgres", fr),
                             timeout=60, what="the ScheduledBackup")
        assert scheduled["spec"]["method"] == "plugin" and scheduled["spec"]["cluster"] == {"name": "matrix-postgres"}
    finally:
        _cleanup(kube, doc, fr_cloud)
