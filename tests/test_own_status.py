"""A pass starts from the status this operator wrote last while the watch has not shown that write yet
(reconcile/own_writes.py: with_own_status). Without it, a pass right after a status write read the status of two
passes ago: a tenant's remembered cluster was missing, and a refused move went ahead (a tenant namespace was
created on the hub: tests/cluster/test_member_trust.py)."""

from __future__ import annotations

from sovereign_suite.reconcile.context import SuiteMemory
from sovereign_suite.reconcile.own_writes import with_own_status

OLD = {"tenants": [{"namespace": "s-de", "country": "DE"}]}
WRITTEN = {"tenants": [{"namespace": "s-de", "country": "DE", "cluster": "de-c5"}]}


def body(version: str, status: dict) -> dict:
    return {"metadata": {"name": "s", "namespace": "n", "resourceVersion": version}, "spec": {"x": 1},
            "status": status}


def written(version: str) -> SuiteMemory:
    mem = SuiteMemory()
    mem.last_status, mem.status_version = WRITTEN, version
    return mem


def test_a_body_older_than_the_status_written_gets_that_status_and_keeps_its_spec_and_metadata():
    seen = with_own_status(body("100", OLD), written("105"))
    assert seen["status"] == WRITTEN
    assert seen["spec"] == {"x": 1} and seen["metadata"]["resourceVersion"] == "100"


def test_a_body_at_or_after_the_write_is_used_as_it_is():
    at = body("105", WRITTEN)
    assert with_own_status(at, written("105")) is at
    newer = body("110", {"tenants": []})  # e.g. another replica wrote since: its status wins
    assert with_own_status(newer, written("105")) is newer


def test_nothing_written_yet_or_no_suite():
    b = body("100", OLD)
    assert with_own_status(b, SuiteMemory()) is b
    assert with_own_status(None, written("105")) is None
