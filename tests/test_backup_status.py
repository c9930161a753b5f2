"""How the operator learns a tenant's last backup (reconcile/backup_status.py) and exports it (metrics.py)."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from sovereign_suite import metrics
from sovereign_suite.reconcile.backup_status import backup_entry, newest_success, parse_message
from sovereign_suite.reconcile.kube import ApiError

CRONJOB = {"metadata": {"name": "backup", "creationTimestamp": "2026-12-01T10:00:00Z"},
           "status": {"lastSuccessfulTime": "2026-12-03T02:04:10Z"}}


def pod(phase: str, message: str, finished: str, code: int = 0, name: str = "backup") -> dict:
    return {"status": {"phase": phase, "containerStatuses": [
        {"name": name, "state": {"terminated": {"exitCode": code, "message": message, "finishedAt": finished}}}]}}


def msg(bid: str, size: int) -> str:
    return json.dumps({"id": bid, "bytes": size})


def test_only_the_programs_own_message_is_read():
    assert parse_message(msg("20261203T020000Z", 1234)) == ("20261203T020000Z", 1234)
    for bad in ("", "not json", "[1]", json.dumps({"id": "x", "bytes": 1}),
                json.dumps({"id": "20261203T020000Z", "bytes": -1}),
                json.dumps({"id": "20261203T020000Z", "bytes": True}),
                json.dumps({"id": "20261203T020000Z", "bytes": 1, "extra": "log line"})):
        assert parse_message(bad) is None, bad


def test_the_newest_succeeded_backup_container_wins():
    pods = [pod("Succeeded", msg("20261202T020000Z", 10), "2026-12-02T02:03:00Z"),
            pod("Succeeded", msg("20261203T020000Z", 20), "2026-12-03T02:04:00Z"),
            pod("Failed", msg("20261203T030000Z", 30), "2026-12-03T03:01:00Z", code=1),
            pod("Succeeded", msg("20261204T020000Z", 40), "2026-12-04T02:00:00Z", name="sidecar")]
    assert newest_success(pods) == ("20261203T020000Z", 20)
    assert newest_success([]) is None


def test_a_new_success_is_read_once_then_kept_from_the_status():
    calls = []

    def list_pods(selector):
        calls.append(selector)
        return [pod("Succeeded", msg("20261203T020000Z", 4096), "2026-12-03T02:04:09Z")]

    entry = backup_entry("0 2 * * *", CRONJOB, None, list_pods, "eu-fr")
    assert entry == {"schedule": "0 2 * * *", "intervalSeconds": 86400, "enabledSince": "2026-12-01T10:00:00Z",
                     "lastSuccessTime": "2026-12-03T02:04:10Z", "lastBackupId": "20261203T020000Z",
                     "sizeBytes": 4096}
    assert calls == ["sovereignsuite.io/backup=true"]
    again = backup_entry("0 2 * * *", CRONJOB, entry, list_pods, "eu-fr")
    assert again == entry and len(calls) == 1  # no request while the last success is the same


def test_before_the_first_success_and_before_the_cronjob_exists():
    never = {"metadata": {"name": "backup", "creationTimestamp": "2026-12-01T10:00:00Z"}, "status": {}}
    assert backup_entry("0 2 * * *", never, None, lambda s: [], "ns") == {
        "schedule": "0 2 * * *", "intervalSeconds": 86400, "enabledSince": "2026-12-01T10:00:00Z"}
    assert backup_entry("0 2 * * *", None, None, lambda s: [], "ns") == {"schedule": "0 2 * * *",
                                                                         "intervalSeconds": 86400}


def test_pods_that_cannot_be_listed_leave_the_size_unknown_not_the_time():
    def refused(selector):
        raise ApiError(403, "Forbidden", "pods is forbidden", "Pod")

    entry = backup_entry("0 2 * * *", CRONJOB, None, refused, "ns")
    assert entry["lastSuccessTime"] == "2026-12-03T02:04:10Z" and "sizeBytes" not in entry


def _value(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_gauges_follow_the_status_and_go_with_the_tenant():
    labels = {"suite_namespace": "ops", "suite": "bk", "country": "FR"}
    tenants = [{"country": "FR", "backup": {"schedule": "0 2 * * *", "intervalSeconds": 86400,
                                            "enabledSince": "2026-12-01T10:00:00Z",
                                            "lastSuccessTime": "2026-12-03T02:04:10Z", "sizeBytes": 4096}},
               {"country": "DE"}]
    metrics.record_backups("ops", "bk", tenants)
    assert _value("sovereign_suite_backup_last_success_timestamp_seconds", **labels) == 1796263450.0
    assert _value("sovereign_suite_backup_enabled_timestamp_seconds", **labels) == 1796119200.0
    assert _value("sovereign_suite_backup_interval_seconds", **labels) == 86400
    assert _value("sovereign_suite_backup_last_size_bytes", **labels) == 4096
    assert _value("sovereign_suite_backup_interval_seconds", suite_namespace="ops", suite="bk", country="DE") is None
    metrics.record_backups("ops", "bk", [{"country": "FR"}])  # backups switched off
    assert _value("sovereign_suite_backup_interval_seconds", **labels) is None
    metrics.record_backups("ops", "bk", tenants)
    metrics.forget_suite("ops", "bk")
    assert _value("sovereign_suite_backup_last_success_timestamp_seconds", **labels) is None
