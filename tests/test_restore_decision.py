"""Restoring a tenant from a backup, the operator's pure part: when to restore (reconcile/restore.py), what waits,
what is refused, the restore Job it renders (components/backup/restore_job.py), the validation of restoreFrom, and
a pass's plan (reconcile/restore_pass.py) up to the bucket. The restore itself runs for real in
tests/test_disaster_recovery.py; in a cluster in tests/cluster/test_restore_live.py."""

from __future__ import annotations

import json
import socket

import pytest

from sovereign_suite.api.backups import RestoreFrom
from sovereign_suite.api.validation import check_suite
from sovereign_suite.backup.s3 import Client
from sovereign_suite.components.backup.restore_job import LABEL_RESTORE, job_name
from sovereign_suite.reconcile.problems import ObjectKey
from sovereign_suite.reconcile.restore import (ANN_RESTORED_FROM, Decision, decide, held, holds_data,
                                               restore_job_of)
from sovereign_suite.reconcile.restore_pass import plan
from sovereign_suite.render import render_suite
from sovereign_suite.components.base import build_contexts

from .components.test_backup import BACKUPS, clouds_with_storage, suite

RF = RestoreFrom(backup="latest", identity_secret_ref={"name": "fr-identity", "key": "identity"})
BID = "20261203T020000Z"
NS = "eu-workplace-fr"


def job(state: str | None, bid: str = BID) -> dict:
    conds = [{"type": state, "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the "
              "specified backoff limit"}] if state else []
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(bid), "namespace": NS, "labels": {LABEL_RESTORE: bid}},
            "status": {"conditions": conds, **({"failed": 1} if state == "Failed" else {})}}


def test_a_new_tenant_is_restored_and_its_apps_wait():
    d = decide(RF, None, None, None)
    assert d == Decision("Restoring", None, render_job=True, hold=True, restore_secrets=True)


def test_the_job_decides_running_succeeded_failed():
    running = decide(RF, None, job(None), None)
    assert (running.phase, running.backup_id, running.hold, running.restore_secrets) == ("Restoring", BID, True, True)
    done = decide(RF, None, job("Complete"), None)
    assert (done.phase, done.backup_id, done.hold) == ("Restored", BID, False)
    assert done.entry() == {"phase": "Restored", "backupId": BID}
    failed = decide(RF, None, job("Failed"), None, "restore refused: backup 20261203T020000Z: "
                    "postgres-matrix.dump is corrupt")
    assert failed.phase == "Failed" and failed.hold and failed.backup_id == BID
    assert "postgres-matrix.dump is corrupt" in failed.message and "applications stay stopped" in failed.message
    # no termination message: the Job's own condition says why
    assert "BackoffLimitExceeded" in decide(RF, None, job("Failed"), None).message


def test_never_twice_never_over_live_data():
    recorded = {"phase": "Restored", "backupId": BID}
    again = decide(RF, recorded, None, "Deployment synapse runs")
    assert (again.phase, again.backup_id, again.hold, again.render_job) == ("Restored", BID, False, False)
    # the record stays when restoreFrom is removed afterwards
    assert decide(None, recorded, None, None).entry() == recorded
    refused = decide(RF, None, None, "Secret synapse-keys exists and was not restored")
    assert refused.phase == "Refused" and not refused.hold and not refused.render_job
    assert "never restored over live data" in refused.message
    assert decide(None, None, None, None) == Decision()


def test_what_counts_as_live_data():
    def key(kind, name):
        return ObjectKey("apps" if kind != "Secret" else "", kind, NS, name)

    ours = {key("Secret", "synapse-keys"): {"metadata": {"annotations": {ANN_RESTORED_FROM: BID}}}}
    assert holds_data(ours, NS, {"synapse-keys"}) is None  # restored by the operator: not "live data"
    generated = {key("Secret", "synapse-keys"): {"metadata": {}}}
    assert holds_data(generated, NS, {"synapse-keys"}) == "Secret synapse-keys exists and was not restored"
    assert holds_data(generated, "eu-workplace-de", {"synapse-keys"}) is None
    db = {key("StatefulSet", "matrix-postgres"): {"kind": "StatefulSet", "metadata": {
        "labels": {"app.kubernetes.io/component": "postgres"}}}}
    assert holds_data(db, NS, set()) is None  # the database is started for the restore itself
    app = {key("Deployment", "synapse"): {"kind": "Deployment", "metadata": {"labels": {}}}}
    assert holds_data(app, NS, set()) == "Deployment synapse runs"


def test_what_waits_while_restoring():
    result = render_suite(suite({**BACKUPS, "restoreFrom": RF.wire()}), clouds_with_storage())
    decisions = {NS: Decision("Restoring", BID, render_job=True, hold=True)}
    waits = {(o["kind"], o["metadata"]["name"]) for o in result.manifests
             if o["metadata"].get("namespace") == NS and held(o, decisions)}
    applied = {(o["kind"], o["metadata"]["name"]) for o in result.manifests
               if o["metadata"].get("namespace") == NS and not held(o, decisions)}
    assert {("Deployment", "synapse"), ("CronJob", "backup"), ("Ingress", "synapse")} <= waits
    assert {("StatefulSet", "matrix-postgres"), ("PersistentVolumeClaim", "synapse-media"),
            ("ConfigMap", "backup-config")} <= applied
    assert not waits & {k for k in applied}
    restore = job(None)
    assert held(restore, decisions) is None  # the restore Job itself runs
    other_tenant = next(o for o in result.manifests if o["metadata"].get("namespace") == "eu-workplace-de"
                        and o["kind"] == "Deployment")
    assert held(other_tenant, decisions) is None  # only the restored tenant waits
    assert restore_job_of({ObjectKey("batch", "Job", NS, "x"): job(None, "20261201T000000Z"),
                           ObjectKey("batch", "Job", NS, "y"): job(None)}, NS)["metadata"]["labels"][
        LABEL_RESTORE] == BID


def test_restore_from_validation():
    clouds = clouds_with_storage()
    ok = suite({**BACKUPS, "restoreFrom": RF.wire()})
    assert check_suite(ok, clouds) == []
    no_identity = suite({**BACKUPS, "restoreFrom": {"backup": BID}})
    assert {p.path for p in check_suite(no_identity, clouds)} == {"spec.backups.restoreFrom.identitySecretRef"}
    off = suite({"restoreFrom": RF.wire()})
    assert {p.path: p.message for p in check_suite(off, clouds)} == {
        "spec.backups.restoreFrom": "needs backups.enabled: the restore reads the backups' object storage and "
                                    "configuration, and a restored tenant is backed up again"}
    # a cloudnative-pg database is restored by CloudNativePG's recovery (tests/test_restore_cloudnative_pg.py)
    cnpg = suite({**BACKUPS, "restoreFrom": RF.wire()}, matrix={"postgres": {"mode": "cloudnative-pg"}})
    assert check_suite(cnpg, clouds) == []
    # the source is the backups' storage: another country's is refused as for backups, with the tenant's field
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud"},
               {"country": "DE", "cloud": "de-c5", "backups": {"cloud": "fr-secnumcloud"}}]
    found = {p.path: p.message for p in check_suite(suite({**BACKUPS, "restoreFrom": RF.wire()}, tenants=tenants),
                                                    clouds)}
    assert "must stay in its own country" in found["spec.tenants[1].backups.cloud"]
    with pytest.raises(ValueError):
        RestoreFrom(backup="../20261203T020000Z")


def test_the_restore_job():
    s = suite({**BACKUPS, "restoreFrom": RF.wire()})
    clouds = clouds_with_storage()
    ctx = next(c for c in build_contexts(s, clouds) if c.namespace == NS)
    from sovereign_suite.components.backup import restore_job
    cm, policy, j = restore_job.render(ctx, BID)
    cfg = json.loads(cm["data"]["config.json"])
    assert "secrets" not in cfg and "retentionDays" not in cfg  # the operator restores the Secrets itself
    assert [d["name"] for d in cfg["databases"]] == ["matrix", "docs"]
    assert cfg["databases"][0]["sslMode"] == "verify-full" and cfg["waitSeconds"] == 1800
    assert cfg["directories"] == [{"name": "matrix-media", "path": "/backup/media",
                                   "include": ["local_content", "local_thumbnails"]}]
    assert cfg["prefix"] == "sovereign-suite/eu-workplace/fr/"
    spec = j["spec"]
    assert j["metadata"]["name"] == "restore-20261203t020000z" and spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    assert c["command"][-3:] == [BID, "-", "/backup/work/out"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert not mounts["/backup/media"].get("readOnly")  # it writes the media volume
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [{"name": "media", "persistentVolumeClaim": {"claimName": "synapse-media"}}]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "backup" and labels[LABEL_RESTORE] == BID
    assert "sovereignsuite.io/backup" not in labels  # its termination message is not a backup's
    assert policy["spec"]["podSelector"] == {"matchExpressions": [{"key": LABEL_RESTORE, "operator": "Exists"}]}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_pass_whose_bucket_does_not_answer_restores_nothing_and_generates_nothing():
    s = suite({**BACKUPS, "restoreFrom": RF.wire()})
    clouds = clouds_with_storage()
    result = render_suite(s, clouds)
    contexts = build_contexts(s, clouds)
    secrets = {"fr-backup-s3": {"AWS_ACCESS_KEY_ID": "QQ==", "AWS_SECRET_ACCESS_KEY": "QQ=="},
               "fr-identity": {"identity": "QQ=="}}

    def read(ns, name):
        data = secrets.get(name)
        return {"metadata": {"labels": {"sovereignsuite.io/referenceable": "true"}}, "data": data} if data else None

    port = _closed_port()
    out = plan([c for c in contexts if c.namespace == NS], result, {}, {}, lambda ns: True, lambda ns: [], read,
               "eu-workplace", connect=lambda _e, bucket, region, creds: Client(f"http://127.0.0.1:{port}", bucket,
                                                                                 region, creds))
    assert out.blocked == {NS}
    [p] = out.problems
    assert p.reason == "RestoreSourceMissing" and "cannot be read" in p.message
    assert out.decisions[NS].phase == "Failed" and not out.decisions[NS].render_job
    assert not any(o["kind"] == "Job" and o["metadata"]["name"].startswith("restore-") for o in result.manifests)
    pg = next(o for o in result.manifests if o["metadata"].get("namespace") == NS and o["kind"] == "StatefulSet")
    assert out.held(pg)  # not even the database starts: its password is the backup's

    # the identity Secret not labelled referenceable: refused with its field, before the bucket is asked
    del secrets["fr-identity"]
    out = plan([c for c in contexts if c.namespace == NS], render_suite(s, clouds), {}, {}, lambda ns: True,
               lambda ns: [], read, "eu-workplace")
    assert [(p.reason, p.message) for p in out.problems] == [
        ("MissingSecret", "restoreFrom.identitySecretRef: Secret fr-identity not found in eu-workplace")]


def test_the_restore_pod_reaches_its_databases_the_object_storage_and_dns_only(tmp_path):
    """Cyclonus on the rendered policies plus the restore Job's: the pod the Job makes reaches the embedded
    databases it fills, the bucket and DNS, nothing else (the same confinement as the backup pod)."""
    from sovereign_suite.components.backup import restore_job

    from .netpol_eval import External, Pod, evaluate, namespace_labels, rendered_pods

    s = suite({**BACKUPS, "restoreFrom": RF.wire()})
    clouds = clouds_with_storage()
    ctx = next(c for c in build_contexts(s, clouds) if c.namespace == NS)
    manifests = render_suite(s, clouds).manifests + restore_job.render(ctx, BID)
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    pods = rendered_pods([o for o in manifests if o["metadata"].get("namespace") == NS])
    restore = next(p for p in pods if LABEL_RESTORE in p.labels)
    by_app = {p.app: p for p in pods if p is not restore}
    storage = External("198.51.100.7", (("https", 443, "TCP"),), "object-storage")
    elsewhere = External("203.0.113.9", (("https", 443, "TCP"),), "elsewhere")
    dns = Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"),), "10.96.0.10")
    ns_labels = {**namespace_labels(manifests), "kube-system": {"kubernetes.io/metadata.name": "kube-system"}}
    cases = [
        (restore, by_app["matrix-postgres"], 5432, "TCP"),
        (restore, by_app["docs-postgres"], 5432, "TCP"),
        (restore, storage, 443, "TCP"),
        (restore, dns, 53, "UDP"),
        (restore, by_app["synapse"], 8008, "TCP"),
        (restore, by_app["docs-redis"], 6379, "TCP"),
        (restore, elsewhere, 443, "TCP"),
    ]
    assert evaluate(policies, cases, ns_labels, {}, tmp_path) == [True, True, True, True, False, False, False]


def test_a_retry_after_the_job_was_deleted_is_not_taken_for_live_data():
    """After a failed Job is deleted (the documented retry), the namespace holds the restored Secrets and the
    tenant CA's Secret, which no backup holds and the operator generated: not "live data", the restore goes on
    (here up to the bucket, which does not answer)."""
    s = suite({**BACKUPS, "restoreFrom": RF.wire()})
    clouds = clouds_with_storage()
    contexts = [c for c in build_contexts(s, clouds) if c.namespace == NS]
    restored = {"metadata": {"annotations": {ANN_RESTORED_FROM: BID}}}
    live = {ObjectKey("", "Secret", NS, "tenant-tls"): {"metadata": {}},
            ObjectKey("", "Secret", NS, "synapse-keys"): restored}
    creds = {"metadata": {"labels": {"sovereignsuite.io/referenceable": "true"}},
             "data": {"AWS_ACCESS_KEY_ID": "QQ==", "AWS_SECRET_ACCESS_KEY": "QQ==", "identity": "QQ=="}}
    port = _closed_port()
    out = plan(contexts, render_suite(s, clouds), live, {}, lambda ns: True, lambda ns: [], lambda ns, n: creds,
               "eu-workplace", connect=lambda _e, b, r, c: Client(f"http://127.0.0.1:{port}", b, r, c))
    assert [p.reason for p in out.problems] == ["RestoreSourceMissing"]
    # a generated Secret the backups hold, not restored: that is live data, refused
    live[ObjectKey("", "Secret", NS, "synapse-keys")] = {"metadata": {}}
    out = plan(contexts, render_suite(s, clouds), live, {}, lambda ns: True, lambda ns: [], lambda ns, n: creds,
               "eu-workplace")
    assert [p.reason for p in out.problems] == ["RestoreOverLiveData"] and out.decisions[NS].phase == "Refused"


def test_a_failed_restore_job_says_why_from_its_pod_as_the_pass_reads_it():
    """The refusal the restore program writes to its termination message reaches RestoreFailed: read from the Job's
    own pods (Pass.job_pods: the caches keep no finished pod), stripped as the cache strips them; a member's pod
    (no log text kept) gives none, and the Job's condition speaks instead."""
    from sovereign_suite.reconcile.restore_pass import _termination_message
    from sovereign_suite.reconcile.strip import strip_member_pod, strip_pod

    pod = {"metadata": {"name": "restore-x-abcde", "namespace": "s-fr", "labels": {"job-name": "restore-x"}},
           "status": {"phase": "Failed", "containerStatuses": [{"name": "restore", "restartCount": 0, "state": {
               "terminated": {"exitCode": 2, "reason": "Error",
                              "message": "backup 20261203T0000Z: object db.dump does not match its manifest\n"}}}]}}
    assert _termination_message([strip_pod(pod)]) == "backup 20261203T0000Z: object db.dump does not match its manifest"
    assert _termination_message([strip_member_pod(pod)]) is None
    assert _termination_message([]) is None


def test_a_failed_restore_job_in_the_cache_gets_its_pods_words_in_the_condition():
    """The pass sees the Job as the cache strips it (its conditions, no ``status.failed`` counter): a Failed one has
    its pods read and their refusal in RestoreFailed (found on the real node: the condition said only
    BackoffLimitExceeded, tests/cluster/test_real_node_dr.py)."""
    from sovereign_suite.components.backup import generated_secrets
    from sovereign_suite.reconcile.strip import strip_child, strip_pod

    s = suite({**BACKUPS, "restoreFrom": RF.wire()})
    clouds = clouds_with_storage()
    contexts = [c for c in build_contexts(s, clouds) if c.namespace == NS]
    failed = strip_child({**job("Failed"), "metadata": {**job("Failed")["metadata"], "uid": "u-1"}})
    assert "failed" not in failed["status"]
    restored = {"metadata": {"annotations": {ANN_RESTORED_FROM: BID}}}
    live = {ObjectKey("batch", "Job", NS, job_name(BID)): failed,
            **{ObjectKey("", "Secret", NS, n): restored for n in generated_secrets(contexts[0])}}
    words = f"restore refused: backup {BID}: postgres-matrix.dump is corrupt (its SHA-256 or size differs)"
    pod = {"metadata": {"name": f"{job_name(BID)}-abcde", "namespace": NS},
           "status": {"phase": "Failed", "containerStatuses": [{"name": "restore", "state": {
               "terminated": {"exitCode": 1, "reason": "Error", "message": words}}}]}}
    asked = []

    def job_pods(ns, j):
        asked.append((ns, j["metadata"]["name"]))
        return [strip_pod(pod)]

    out = plan(contexts, render_suite(s, clouds), live, {}, lambda ns: True, job_pods, lambda ns, n: None,
               "eu-workplace")
    assert asked == [(NS, job_name(BID))]
    (problem,) = out.problems
    assert problem.reason == "RestoreFailed" and words in problem.message, problem
    assert out.decisions[NS].phase == "Failed" and out.decisions[NS].hold
