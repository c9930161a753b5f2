"""Restoring a tenant whose database is cloudnative-pg (and to a point in time): the validation of
``restoreFrom.pointInTime`` / ``serverNames``, the recovery Cluster rendered (components/postgres/recovery.py) and
put in place by a pass (reconcile/restore_pass.py), and what counts as a database that already exists. The
Cluster's fields against CloudNativePG's real schema: tests/cluster/test_backup_live.py."""

from __future__ import annotations

import json

import pytest

from sovereign_suite.api.backups import RestoreFrom
from sovereign_suite.api.validation import InputError, check_suite
from sovereign_suite.components.backup import generated_secrets, restore_job
from sovereign_suite.components.base import BARMAN_API, CNPG_API, build_contexts
from sovereign_suite.components.postgres import recovery
from sovereign_suite.reconcile.problems import ObjectKey
from sovereign_suite.reconcile.cache import strip_child
from sovereign_suite.reconcile.restore import ANN_RESTORED_FROM, decide, holds_data, recovering
from sovereign_suite.reconcile.restore_pass import plan
from sovereign_suite.render import render_suite

from .components.test_backup import BACKUPS, clouds_with_storage, suite
from .test_restore_decision import BID, NS, RF, job

CAPS = frozenset({CNPG_API, BARMAN_API})
CNPG = {"postgres": {"mode": "cloudnative-pg"}}
PIT = "2026-12-03T14:30:00Z"


def restore(**fields) -> dict:
    return {**BACKUPS, "restoreFrom": {**RF.wire(), **fields}}


def problems(s) -> dict[str, str]:
    return {p.path: p.message for p in check_suite(s, clouds_with_storage())}


# ---- validation ------------------------------------------------------------------------------------------------

def test_a_cloudnative_pg_tenant_may_be_restored_now():
    assert problems(suite(restore(), matrix=CNPG, docs={"enabled": False})) == {}
    assert problems(suite(restore(pointInTime=PIT), matrix=CNPG, docs=CNPG)) == {}
    assert problems(suite(restore(backup=BID, pointInTime=PIT), matrix=CNPG, docs={"enabled": False})) == {}


def test_point_in_time_is_refused_for_an_embedded_database_naming_the_field():
    found = problems(suite(restore(pointInTime=PIT)))
    assert list(found) == ["spec.backups.restoreFrom.pointInTime"]
    assert "matrix's is embedded, docs's is embedded" in found["spec.backups.restoreFrom.pointInTime"]
    assert "pg_dump" in found["spec.backups.restoreFrom.pointInTime"]
    # one database embedded is enough to refuse: its restore would not be of that instant
    mixed = problems(suite(restore(pointInTime=PIT), matrix=CNPG))
    assert list(mixed) == ["spec.backups.restoreFrom.pointInTime"] and "docs's is embedded" in mixed[
        "spec.backups.restoreFrom.pointInTime"]
    # set on one tenant: that tenant's field
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud",
                "backups": {"restoreFrom": {**RF.wire(), "pointInTime": PIT}}},
               {"country": "DE", "cloud": "de-c5"}]
    assert "spec.tenants[0].backups.restoreFrom.pointInTime" in problems(suite(BACKUPS, tenants=tenants))


def test_a_point_in_time_without_database_backups_is_refused():
    found = problems(suite({**restore(pointInTime=PIT), "include": {"databases": False}}, matrix=CNPG,
                           docs={"enabled": False}))
    assert found == {"spec.backups.restoreFrom.pointInTime": "include.databases is false: no database is backed "
                     "up nor restored, so there is no point in time to recover to"}


def test_a_backup_newer_than_the_point_in_time_is_refused():
    found = problems(suite(restore(backup="20261204T020000Z", pointInTime=PIT), matrix=CNPG, docs={"enabled": False}))
    assert list(found) == ["spec.backups.restoreFrom.backup"]
    assert "after pointInTime 2026-12-03T14:30:00Z" in found["spec.backups.restoreFrom.backup"]


@pytest.mark.parametrize("value", ["2026-12-03 14:30:00Z", "2026-12-03T14:30:00+01:00", "2026-12-03T14:30Z",
                                   "2026-02-30T10:00:00Z", "2026-12-03T24:00:00Z", "latest"])
def test_a_point_in_time_that_is_not_an_rfc3339_utc_instant_is_refused(value):
    with pytest.raises(InputError) as err:
        suite(restore(pointInTime=value), matrix=CNPG)
    assert [p.path for p in err.value.problems] == ["spec.backups.restoreFrom.pointInTime"]


def test_server_names_only_for_cloudnative_pg_databases():
    assert problems(suite(restore(serverNames={"matrix": "matrix-postgres-20261101t020000z"}), matrix=CNPG,
                          docs={"enabled": False})) == {}
    found = problems(suite(restore(serverNames={"docs": "docs-postgres"}), matrix=CNPG))
    assert found == {"spec.backups.restoreFrom.serverNames.docs":
                     "the docs database is embedded, not cloudnative-pg: it has no Barman server"}
    with pytest.raises(InputError) as err:
        suite(restore(serverNames={"matrix": "../Matrix"}), matrix=CNPG)
    assert [p.path for p in err.value.problems] == ["spec.backups.restoreFrom.serverNames.matrix"]


# ---- the recovery Cluster (pure) -------------------------------------------------------------------------------

def fr_cluster(restore_from: dict, **components) -> dict:
    result = render_suite(suite(restore_from, **components), clouds_with_storage(), CAPS)
    return next(o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS)


def test_the_cluster_is_created_by_recovery_from_the_barman_cloud_plugin():
    rendered = fr_cluster(restore(), matrix=CNPG, docs={"enabled": False})
    assert "initdb" in rendered["spec"]["bootstrap"]  # the renderer's own: the pass decides about the restore
    got = recovery.recovering(rendered, RestoreFrom.model_validate(restore()["restoreFrom"]), BID)
    spec = got["spec"]
    # one bootstrap method: recovery, of the same application database and owner (CloudNativePG makes -app)
    assert spec["bootstrap"] == {"recovery": {"source": "backup", "database": "matrix", "owner": "matrix"}}
    assert spec["externalClusters"] == [{"name": "backup", "plugin": {
        "name": "barman-cloud.cloudnative-pg.io",
        "parameters": {"barmanObjectName": "matrix-postgres-backup", "serverName": "matrix-postgres"}}}]
    # its own archive: the same ObjectStore, ANOTHER server name (the plugin refuses a non-empty archive)
    assert spec["plugins"] == [{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True, "parameters": {
        "barmanObjectName": "matrix-postgres-backup", "serverName": "matrix-postgres-20261203t020000z"}}]
    assert got["metadata"]["annotations"] == {ANN_RESTORED_FROM: BID}
    assert rendered["spec"]["bootstrap"].keys() == {"initdb"}  # pure: the input is not changed
    # the rest of the Cluster is the rendered one
    assert {k: v for k, v in spec.items() if k not in ("bootstrap", "externalClusters", "plugins")} == {
        k: v for k, v in rendered["spec"].items() if k not in ("bootstrap", "plugins")}


@pytest.mark.parametrize(("fields", "target"), [
    ({}, None),  # "latest": every archived WAL replayed
    ({"backup": BID}, "2026-12-03T02:00:00Z"),  # an id: the databases as they were when that backup started
    ({"pointInTime": PIT}, PIT),
    ({"backup": "20261201T020000Z", "pointInTime": PIT}, PIT),
])
def test_the_recovery_target(fields, target):
    rf = RestoreFrom.model_validate({**RF.wire(), **fields})
    got = recovery.recovering(fr_cluster(restore(), matrix=CNPG, docs={"enabled": False}), rf, BID)
    assert got["spec"]["bootstrap"]["recovery"].get("recoveryTarget") == (
        {"targetTime": target} if target else None)


def test_the_source_server_name_can_be_named():
    rf = RestoreFrom.model_validate({**RF.wire(), "serverNames": {"matrix": "matrix-postgres-20261101t020000z"}})
    got = recovery.recovering(fr_cluster(restore(), matrix=CNPG, docs={"enabled": False}), rf, BID)
    assert got["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"] == \
        "matrix-postgres-20261101t020000z"
    assert got["spec"]["plugins"][0]["parameters"]["serverName"] == "matrix-postgres-20261203t020000z"


# ---- a pass ----------------------------------------------------------------------------------------------------

def pass_over(s, live, old_entries):
    clouds = clouds_with_storage()
    result = render_suite(s, clouds, CAPS)
    contexts = [c for c in build_contexts(s, clouds, CAPS) if c.namespace == NS]
    out = plan(contexts, result, live, old_entries, lambda ns: True, lambda ns, j: [],
               lambda ns, name: pytest.fail("the bucket is not read: every Secret is there"), "eu-workplace")
    return out, result


def restored_secrets(s) -> dict:
    ctx = next(c for c in build_contexts(s, clouds_with_storage(), CAPS) if c.namespace == NS)
    return {ObjectKey("", "Secret", NS, n): {"metadata": {"annotations": {ANN_RESTORED_FROM: BID}}}
            for n in generated_secrets(ctx)}


def test_a_pass_restoring_the_tenant_creates_both_databases_by_recovery_and_the_job_restores_only_media():
    s = suite(restore(pointInTime=PIT), matrix=CNPG, docs=CNPG)
    live = {ObjectKey("batch", "Job", NS, "restore"): job(None), **restored_secrets(s)}
    out, result = pass_over(s, live, {})
    assert out.decisions[NS].phase == "Restoring" and out.problems == []
    clusters = {o["metadata"]["name"]: o for o in result.manifests
                if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS}
    assert set(clusters) == {"matrix-postgres", "docs-postgres"}
    for name, c in clusters.items():
        assert c["spec"]["bootstrap"]["recovery"]["recoveryTarget"] == {"targetTime": PIT}
        assert c["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"] == name
        assert c["spec"]["plugins"][0]["parameters"]["serverName"] == f"{name}-20261203t020000z"
    # the render's per-component lists hold the same objects (changed in place)
    (by_comp,) = [o for o in result.by_component[("fr", "matrix")] if o["kind"] == "Cluster"]
    assert by_comp is clusters["matrix-postgres"]
    # the Job restores the media only: CloudNativePG restores the databases, the operator the Secrets
    cm = next(o for o in result.manifests if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "restore-config"
              and o["metadata"]["namespace"] == NS)
    cfg = json.loads(cm["data"]["config.json"])
    assert cfg["databases"] == [] and [d["name"] for d in cfg["directories"]] == ["matrix-media"]
    assert not any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-egress-restore-databases"
                   and o["metadata"]["namespace"] == NS for o in result.manifests)


def test_an_embedded_database_beside_a_cloudnative_pg_one_is_still_restored_by_the_job():
    s = suite(restore(), matrix=CNPG)
    ctx = next(c for c in build_contexts(s, clouds_with_storage(), CAPS) if c.namespace == NS)
    cfg = json.loads(restore_job.render(ctx, BID)[0]["data"]["config.json"])
    assert [d["name"] for d in cfg["databases"]] == ["docs"]


def test_a_restored_cluster_keeps_its_own_archive_after_restore_from_is_removed():
    s = suite(BACKUPS, matrix=CNPG, docs={"enabled": False})
    out, result = pass_over(s, {}, {NS: {"phase": "Restored", "backupId": BID}})
    assert out.decisions[NS].phase == "Restored"
    (c,) = [o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS]
    # bootstrap applies at creation only: back to the renderer's (harmless), but the archive stays its own
    assert c["spec"]["bootstrap"].keys() == {"initdb"} and "externalClusters" not in c["spec"]
    assert c["spec"]["plugins"][0]["parameters"]["serverName"] == "matrix-postgres-20261203t020000z"
    assert c["metadata"]["annotations"] == {ANN_RESTORED_FROM: BID}
    # a tenant never restored archives under the Cluster's name, as before
    out, result = pass_over(s, {}, {})
    (c,) = [o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS]
    assert "serverName" not in c["spec"]["plugins"][0]["parameters"] and "annotations" not in c["metadata"]


def test_an_existing_cluster_is_never_recovered_over_and_the_status_says_so():
    cluster = ObjectKey("postgresql.cnpg.io", "Cluster", NS, "matrix-postgres")
    assert holds_data({cluster: {"metadata": {}}}, NS, set()) == (
        "CloudNativePG Cluster matrix-postgres exists and was not created by a restore")
    # the Cluster this restore created (e.g. its Job not applied yet): not live data
    assert holds_data({cluster: {"metadata": {"annotations": {ANN_RESTORED_FROM: BID}}}}, NS, set()) is None
    s = suite(restore(), matrix=CNPG, docs={"enabled": False})
    out, result = pass_over(s, {cluster: {"metadata": {}}}, {})
    d = out.decisions[NS]
    assert d.phase == "Refused" and "CloudNativePG Cluster matrix-postgres exists" in d.message
    assert [(p.reason, p.message) for p in out.problems] == [("RestoreOverLiveData", d.message)]
    (c,) = [o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS]
    assert c["spec"]["bootstrap"].keys() == {"initdb"} and "externalClusters" not in c["spec"]


def test_a_cluster_a_restore_made_keeps_its_archive_when_the_record_is_gone():
    """A Retain-ed Cluster adopted by a new suite (no status, no restoreFrom): its annotation says which restore
    made it, so it keeps archiving under its own server name, never into the backed-up cluster's archive."""
    s = suite(BACKUPS, matrix=CNPG, docs={"enabled": False})
    made = {ObjectKey("postgresql.cnpg.io", "Cluster", NS, "matrix-postgres"): {
        "metadata": {"annotations": {ANN_RESTORED_FROM: "20261101T020000Z"}}}}
    out, result = pass_over(s, made, {})
    assert out.decisions[NS].phase == ""
    (c,) = [o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS]
    assert c["spec"]["plugins"][0]["parameters"]["serverName"] == "matrix-postgres-20261101t020000z"
    assert c["spec"]["bootstrap"].keys() == {"initdb"}
    # while its own restore runs (created in an earlier pass, the Job not there yet), it stays as created
    s = suite(restore(), matrix=CNPG, docs={"enabled": False})
    made = {ObjectKey("postgresql.cnpg.io", "Cluster", NS, "matrix-postgres"): {
        "metadata": {"annotations": {ANN_RESTORED_FROM: BID}}},
        ObjectKey("batch", "Job", NS, "restore"): job(None), **restored_secrets(s)}
    out, result = pass_over(s, made, {})
    (c,) = [o for o in result.manifests if o["kind"] == "Cluster" and o["metadata"]["namespace"] == NS]
    assert out.decisions[NS].phase == "Restoring" and c["spec"]["bootstrap"]["recovery"]["source"] == "backup"


# ---- the applications wait for CloudNativePG's recovery ---------------------------------------------------------

def cnpg_cluster(ready: str | None, made: bool = True, reason: str = "", message: str = "") -> dict:
    conds = [{"type": "Ready", "status": ready, "reason": reason, "message": message}] if ready else []
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": "matrix-postgres", "namespace": NS,
                         **({"annotations": {ANN_RESTORED_FROM: BID}} if made else {})},
            "status": {"phase": "Setting up primary", "conditions": [
                *conds, {"type": "ContinuousArchiving", "status": "False"}]}}


def test_the_applications_wait_until_the_recovered_cluster_is_ready():
    key = ObjectKey("postgresql.cnpg.io", "Cluster", NS, "matrix-postgres")
    # what the operator's cache keeps of a Cluster: its Ready condition (reconcile/strip.py)
    stored = strip_child(cnpg_cluster("False", reason="ClusterIsNotReady", message="Cluster Is Not Ready"))
    assert stored["status"] == {"conditions": [{"type": "Ready", "status": "False", "reason": "ClusterIsNotReady",
                                                "message": "Cluster Is Not Ready"}]}
    assert recovering({key: stored}, NS) == "matrix-postgres (ClusterIsNotReady: Cluster Is Not Ready)"
    assert recovering({key: strip_child(cnpg_cluster(None))}, NS) == "matrix-postgres (no Ready condition yet)"
    assert recovering({key: strip_child(cnpg_cluster("True"))}, NS) is None
    assert recovering({key: strip_child(cnpg_cluster("False", made=False))}, NS) is None  # not a restore's
    assert recovering({key: stored}, "eu-workplace-de") is None
    # the media Job done, the database still recovering: Restoring, everything held, the status says why
    waiting = decide(RF, None, job("Complete"), None, None, "matrix-postgres (no Ready condition yet)")
    assert (waiting.phase, waiting.backup_id, waiting.hold, waiting.render_job) == ("Restoring", BID, True, True)
    assert waiting.entry() == {"phase": "Restoring", "backupId": BID, "message": "the media are restored; waiting "
                               "for CloudNativePG's recovery of matrix-postgres (no Ready condition yet)"}
    assert decide(RF, None, job("Complete"), None, None, None).phase == "Restored"
    # a pass: the Cluster the restore created, not ready yet, holds Synapse
    s = suite(restore(), matrix=CNPG, docs={"enabled": False})
    live = {key: stored, ObjectKey("batch", "Job", NS, "restore"): job("Complete"), **restored_secrets(s)}
    out, result = pass_over(s, live, {})
    assert out.decisions[NS].phase == "Restoring"
    synapse = next(o for o in result.manifests if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse"
                   and o["metadata"]["namespace"] == NS)
    assert out.held(synapse)
    live[key] = strip_child(cnpg_cluster("True"))
    out, result = pass_over(s, live, {})
    assert out.decisions[NS].phase == "Restored" and out.held(synapse) is None
