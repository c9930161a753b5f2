"""A tenant created from a backup, on the local control plane with the operator as a real process and a real S3
server (moto) holding a backup the real backup program wrote (the tenant's generated Secrets, age-encrypted).

kwok's nodes run no container: the restore Job's pod "runs" as kwok plays it (Succeeded on a node of the tenant's
region; Pending forever where the region has no node). What is checked here is the operator's order and refusals:

- the operator resolves ``latest``, re-creates the generated Secrets from the backup (the same values, annotated
  with the backup id: nothing regenerated) and applies the database and the restore Job, and NO application,
  CronJob or route before the Job has succeeded; then the applications, status Restored with the id used; the Job
  deleted afterwards is never run again (the record);
- a backup that does not exist: Stalled RestoreSourceMissing, no Secret generated, no database, no application;
- a restore Job that fails (its deadline expires: the Job controller marks it Failed): Stalled RestoreFailed, the
  applications stay stopped, nothing regenerated.

The restore program itself (databases, media, refusals) runs for real in tests/test_backup_restore.py and
tests/test_disaster_recovery.py (real PostgreSQL and Synapse).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from sovereign_suite.api.models import NationalCloud
from sovereign_suite.api.validation import parse_suite
from sovereign_suite.render import render_suite
from sovereign_suite.secretgen import missing_keys

from ..test_backup_program import ACCESS, ROOT, SECRET, _identity, s3_server  # noqa: F401
from .conftest import wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets, get_suite, suite_doc
from .test_backup_live import cloud, referenceable

APPS = (("apps/v1", "Deployment", "synapse"), ("apps/v1", "Deployment", "element-web"),
        ("batch/v1", "CronJob", "backup"), ("networking.k8s.io/v1", "Ingress", "synapse"))


def _suite(namespace: str, cloud_name: str, backup: str) -> dict:
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete",
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False}},
        "backups": {"enabled": True, "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"},
                    "restoreFrom": {"backup": backup,
                                    "identitySecretRef": {"name": "fr-identity", "key": "identity"}}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": cloud_name}]
    return doc


def _backup(tmp: Path, s3, doc: dict, fr_cloud: dict, recipient: str,
            capabilities: frozenset[str] = frozenset()) -> tuple[str, dict[str, dict[str, str]]]:
    """A backup of the tenant's generated Secrets (values made as the operator makes them) by the real backup
    program, under the prefix the operator renders; (its id, the Secrets)."""
    result = render_suite(parse_suite(doc), {fr_cloud["metadata"]["name"]: NationalCloud.model_validate(fr_cloud)},
                          capabilities, operator_namespace=doc["metadata"]["namespace"])
    values = {s.name: missing_keys(s, None) for s in result.secrets}
    for name, keys in values.items():
        (tmp / "secrets" / name).mkdir(parents=True)
        for k, v in keys.items():
            (tmp / "secrets" / name / k).write_text(v)
    (tmp / "s3").mkdir()
    (tmp / "s3/AWS_ACCESS_KEY_ID").write_text(ACCESS)
    (tmp / "s3/AWS_SECRET_ACCESS_KEY").write_text(SECRET)
    (tmp / "recipient").write_text(recipient)
    cfg = {"prefix": f"{doc['metadata']['namespace']}/{doc['metadata']['name']}/fr/", "retentionDays": 7,
           "workDir": str(tmp), "s3": {"endpoint": s3.endpoint, "bucket": "fr-backups", "region": "eu-west-3",
                                       "credentialsDir": str(tmp / "s3")},
           "databases": [], "directories": [],
           "secrets": {"recipientFile": str(tmp / "recipient"),
                       "dirs": {n: str(tmp / "secrets" / n) for n in values}}}
    (tmp / "config.json").write_text(json.dumps(cfg))
    run = subprocess.run([sys.executable, "-m", "sovereign_suite.backup.program", str(tmp / "config.json")],
                         env={**os.environ, "PYTHONPATH": str(ROOT / "operator"),
                              "TERMINATION_LOG": "/nonexistent/x"}, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["id"], values


def _setup(core, kube, namespace: str, s3, tmp: Path, regions: list[str] | None = None):
    tag = uuid.uuid4().hex[:5]
    fr_cloud = cloud(f"fr-rs-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3")
    fr_cloud["spec"]["objectStorage"].update(endpoint=s3.endpoint, region="eu-west-3")
    if regions is not None:  # a region with no node: every pod of the tenant stays Pending
        fr_cloud["spec"]["regions"] = regions
    create_referenced_secrets(core, namespace)
    ident_path, recipient = _identity(tmp, f"fr-{tag}")
    referenceable(core, namespace, "fr-s3", {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET})
    referenceable(core, namespace, "backup-recipient", {"recipient": recipient})
    referenceable(core, namespace, "fr-identity", {"identity": ident_path.read_text()})
    kube.create(fr_cloud)
    return fr_cloud, recipient


def _restore_status(kube, doc) -> dict:
    tenants = ((get_suite(kube, doc) or {}).get("status") or {}).get("tenants") or []
    return (tenants[0].get("restore") or {}) if tenants else {}


def _secret(kube, ns: str, name: str) -> dict[str, str] | None:
    s = kube.get("v1", "Secret", name, ns)
    return None if s is None else {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}


def _stalled(kube, doc, reason: str, timeout: float = 90) -> dict:
    def match():
        c = condition(get_suite(kube, doc), "Stalled")
        return c if c and c["status"] == "True" and c["reason"] == reason else None
    return wait_for(match, timeout=timeout, what=f"Stalled {reason}")


def _cleanup(kube, doc, fr_cloud) -> None:
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="the suite deleted")
    kube.delete(fr_cloud)


def test_the_restore_job_runs_before_any_application_then_never_again(operator, kube, core, namespace, s3_server,
                                                                      tmp_path):
    fr_cloud, recipient = _setup(core, kube, namespace, s3_server, tmp_path)
    doc = _suite(namespace, fr_cloud["metadata"]["name"], "latest")
    fr = f"{doc['metadata']['name']}-fr"
    bid, values = _backup(tmp_path, s3_server, doc, fr_cloud, recipient)
    job_name = f"restore-{bid.lower()}"
    try:
        kube.create(doc)
        job = wait_for(lambda: kube.get("batch/v1", "Job", job_name, fr), timeout=120, what="the restore Job")
        # the Secrets came from the backup, before the database that reads them; nothing was generated
        for name, keys in values.items():
            assert _secret(kube, fr, name) == keys, name
            ann = kube.get("v1", "Secret", name, fr)["metadata"].get("annotations") or {}
            assert ann.get("sovereignsuite.io/restored-from") == bid
        assert kube.get("apps/v1", "StatefulSet", "matrix-postgres", fr) is not None
        assert job["spec"]["template"]["spec"]["containers"][0]["command"][-3:] == [bid, "-", "/backup/work/out"]

        def restored():
            entry = _restore_status(kube, doc)
            return entry if entry.get("phase") == "Restored" else None

        assert wait_for(restored, timeout=180, what="status Restored") == {"phase": "Restored", "backupId": bid}
        job = kube.get("batch/v1", "Job", job_name, fr)
        done = job["status"]["completionTime"]
        for api, kind, name in APPS:
            obj = wait_for(lambda: kube.get(api, kind, name, fr), timeout=120, what=f"{kind} {name}")
            # applied only after the Job had succeeded (RFC 3339 UTC seconds compare as strings)
            assert obj["metadata"]["creationTimestamp"] >= done, (kind, name, obj["metadata"]["creationTimestamp"],
                                                                  done)
        for name, keys in values.items():
            assert _secret(kube, fr, name) == keys, name  # still the backup's values

        # the record: the Job deleted, restoreFrom still set: never restored again over the live tenant
        kube.delete(job, propagation="Foreground")
        wait_for(lambda: kube.get("batch/v1", "Job", job_name, fr) is None, timeout=60, what="the Job deleted")
        time.sleep(10)  # three drift passes
        assert kube.get("batch/v1", "Job", job_name, fr) is None
        assert _restore_status(kube, doc) == {"phase": "Restored", "backupId": bid}
    finally:
        _cleanup(kube, doc, fr_cloud)


def test_a_missing_backup_or_a_failed_restore_keeps_the_applications_stopped(operator, kube, core, namespace,
                                                                             s3_server, tmp_path):
    fr_cloud, recipient = _setup(core, kube, namespace, s3_server, tmp_path, regions=["nowhere-1"])
    doc = _suite(namespace, fr_cloud["metadata"]["name"], "20200101T000000Z")
    fr = f"{doc['metadata']['name']}-fr"
    bid, values = _backup(tmp_path, s3_server, doc, fr_cloud, recipient)
    try:
        kube.create(doc)
        c = _stalled(kube, doc, "RestoreSourceMissing")
        assert "backup 20200101T000000Z not found" in c["message"], c
        assert _restore_status(kube, doc)["phase"] == "Failed"
        assert kube.get("v1", "Namespace", fr) is not None
        for name in values:  # nothing generated in place of the backup's Secrets
            assert kube.get("v1", "Secret", name, fr) is None, name
        assert kube.get("apps/v1", "StatefulSet", "matrix-postgres", fr) is None
        assert not kube.list("batch/v1", "Job", namespace=fr)
        for api, kind, name in APPS:
            assert kube.get(api, kind, name, fr) is None, (kind, name)

        # the right backup: the Job is applied; its pod stays Pending (no node in the region); it fails
        kube.merge_patch(*SUITES, doc["metadata"]["name"], namespace,
                         {"spec": {"backups": {"restoreFrom": {"backup": bid}}}})
        job = wait_for(lambda: kube.get("batch/v1", "Job", f"restore-{bid.lower()}", fr), timeout=120,
                       what="the restore Job")
        wait_for(lambda: _restore_status(kube, doc) == {"phase": "Restoring", "backupId": bid}, timeout=60,
                 what="status Restoring")
        for api, kind, name in APPS:
            assert kube.get(api, kind, name, fr) is None, (kind, name)
        for name, keys in values.items():
            assert _secret(kube, fr, name) == keys, name
        kube.merge_patch("batch/v1", "Job", job["metadata"]["name"], fr, {"spec": {"activeDeadlineSeconds": 1}})
        c = _stalled(kube, doc, "RestoreFailed")
        assert f"restore Job restore-{bid.lower()} failed" in c["message"] and "DeadlineExceeded" in c["message"], c
        assert condition(get_suite(kube, doc), "Ready")["status"] == "False"
        time.sleep(6)  # two more drift passes: still nothing started, nothing regenerated, the Job not re-run
        for api, kind, name in APPS:
            assert kube.get(api, kind, name, fr) is None, (kind, name)
        for name, keys in values.items():
            assert _secret(kube, fr, name) == keys, name
        assert kube.get("batch/v1", "Job", f"restore-{bid.lower()}", fr)["metadata"]["uid"] == job["metadata"]["uid"]
    finally:
        _cleanup(kube, doc, fr_cloud)
