"""A cloudnative-pg database of a tenant restored from a backup (``backups.restoreFrom``): its Cluster is created
by recovery from the Barman Cloud plugin's object store instead of ``initdb``.

Pure: (the rendered Cluster, the restore) -> the Cluster to apply. The reconcile pass (reconcile/restore_pass.py)
calls it for the tenants whose restore it decided; the restore Job then restores only the media (the Secrets are
the operator's, restore_secrets.py): CloudNativePG restores its database itself.

Upstream facts, at the versions the project pins:
- cloudnative-pg v1.27.1 ``api/v1/cluster_types.go``: ``BootstrapRecovery`` (``source``: the name of an
  ``externalClusters[]`` entry; ``recoveryTarget``; ``database``, ``owner`` of the application database, whose
  Secret ``<cluster>-app`` CloudNativePG creates when ``secret`` is empty), ``RecoveryTarget.targetTime`` ("a
  timestamp in the RFC3339 standard"; absent: every WAL in the archive is replayed), ``ExternalCluster.plugin``
  (a ``PluginConfiguration``: ``name``, ``parameters``). ``bootstrap`` takes one method only
  (``internal/webhook/v1/cluster_webhook.go`` validateBootstrapMethod), and applies when CloudNativePG creates the
  Cluster's first instance: it is never a restore over an existing database.
- cloudnative-pg/plugin-barman-cloud v0.15.0 (the release the Go module proxy serves; the platform team installs
  the plugin, the project pins no release of it) ``web/docs/usage.md`` ("Restoring a Cluster") and
  ``web/docs/parameters.md``: the external cluster's ``plugin`` is ``barman-cloud.cloudnative-pg.io`` with
  ``parameters: {barmanObjectName, serverName}`` (the ObjectStore, and the server name the backups are under: by
  default the backed-up Cluster's name), and the restored Cluster's own WAL archiver in ``spec.plugins``.
  ``serverName`` is a parameter of the Cluster's plugin entry, never of the ObjectStore. Before archiving, the
  plugin checks the destination (``internal/cnpgi/common/check.go`` CheckBackupDestination:
  barman-cloud-check-wal-archive, which refuses a non-empty archive for a new cluster): the restored Cluster
  archives under ANOTHER server name, ``<cluster>-<backup id>``.
"""

from __future__ import annotations

import copy
from typing import Any

from ...api.backups import RestoreFrom, backup_id_time

SOURCE = "backup"  # the externalClusters[] entry the recovery reads
ANN_RESTORED_FROM = "sovereignsuite.io/restored-from"  # the backup id; reconcile/restore.py reads it too
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
TARGET_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def component_of(cluster: dict[str, Any]) -> str:
    """``matrix`` of ``matrix-postgres``: the component the database belongs to."""
    return cluster["metadata"]["name"].removesuffix("-postgres")


def archive_server_name(cluster_name: str, backup_id: str) -> str:
    """The server name a Cluster created by the restore of ``backup_id`` archives its own WAL and base backups
    under: not the backed-up cluster's (a non-empty archive is refused), and stable for the Cluster's life (the
    status keeps the backup id). Lower case: a Barman server name is a folder, kept to DNS-label characters."""
    return f"{cluster_name}-{backup_id.lower()}"


def source_server_name(cluster_name: str, restore: RestoreFrom | None) -> str:
    """Where the backups to recover are: ``restoreFrom.serverNames.<component>``, else the Cluster's own name
    (the plugin's default server name, that of a Cluster never restored)."""
    names = restore.server_names if restore is not None else None
    given = getattr(names, cluster_name.removesuffix("-postgres"), None) if names is not None else None
    return given or cluster_name


def target_time(restore: RestoreFrom, backup_id: str) -> str | None:
    """``recoveryTarget.targetTime``: ``pointInTime`` when given; the backup id's own instant when ``backup``
    names an id (the databases as they were when that backup's media and Secrets were taken: the id is the run's
    UTC start time); None for "latest" (every archived WAL is replayed: the newest state there is)."""
    if restore.point_in_time is not None:
        return restore.point_in_time
    if restore.backup != "latest":
        return backup_id_time(backup_id).strftime(TARGET_TIME_FORMAT)
    return None


def with_own_archive(cluster: dict[str, Any], backup_id: str) -> dict[str, Any]:
    """The Cluster archiving under its own server name (a Cluster a restore created, for the rest of its life)."""
    out = copy.deepcopy(cluster)
    out["metadata"].setdefault("annotations", {})[ANN_RESTORED_FROM] = backup_id
    for plugin in out["spec"].get("plugins") or []:
        if plugin.get("name") == BARMAN_PLUGIN:
            plugin.setdefault("parameters", {})["serverName"] = archive_server_name(cluster["metadata"]["name"],
                                                                                    backup_id)
    return out


def recovering(cluster: dict[str, Any], restore: RestoreFrom, backup_id: str) -> dict[str, Any]:
    """The Cluster created by recovery from the backup's object store, to ``target_time``. ``cluster`` is the
    rendered one: its WAL archiver (``spec.plugins``, components/postgres with_barman_backups) names the
    ObjectStore the backups were written through (the same bucket and prefix: the restore reads where the
    tenant's backups go)."""
    out = with_own_archive(cluster, backup_id)
    archiver = next(p for p in out["spec"]["plugins"] if p.get("name") == BARMAN_PLUGIN)
    initdb = out["spec"]["bootstrap"]["initdb"]
    recovery: dict[str, Any] = {"source": SOURCE, "database": initdb["database"], "owner": initdb["owner"]}
    when = target_time(restore, backup_id)
    if when is not None:
        recovery["recoveryTarget"] = {"targetTime": when}
    out["spec"]["bootstrap"] = {"recovery": recovery}
    out["spec"]["externalClusters"] = [{"name": SOURCE, "plugin": {"name": BARMAN_PLUGIN, "parameters": {
        "barmanObjectName": archiver["parameters"]["barmanObjectName"],
        "serverName": source_server_name(cluster["metadata"]["name"], restore)}}}]
    return out


def archiving_clusters(manifests: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The rendered CloudNativePG Clusters of ``namespace`` that archive through the Barman Cloud plugin (the
    databases the tenant's backups hold)."""
    return [o for o in manifests if o["kind"] == "Cluster" and o["apiVersion"].startswith("postgresql.cnpg.io/")
            and o["metadata"].get("namespace") == namespace
            and any(p.get("name") == BARMAN_PLUGIN for p in o["spec"].get("plugins") or [])]


def restore_clusters(manifests: list[dict[str, Any]], namespace: str, restore: RestoreFrom | None,
                     backup_id: str | None, made_by: dict[str, str]) -> None:
    """In place (the render result's component lists hold the same dicts). ``backup_id``: the backup the tenant
    is (or was) restored from, None if it is not; ``made_by``: Cluster name -> the backup id a live Cluster was
    created from (its annotation). A Cluster a restore made archives under its own server name for good, even
    when the status that recorded the restore is gone (a Retain-ed Cluster adopted by a new suite); while
    ``restoreFrom`` names this restore, it is (or was) created by recovery from the backup."""
    for cluster in archiving_clusters(manifests, namespace):
        made = made_by.get(cluster["metadata"]["name"])
        bid = made or backup_id
        if bid is None:
            continue
        new = (recovering(cluster, restore, bid) if restore is not None and bid == backup_id
               else with_own_archive(cluster, bid))
        cluster.clear()
        cluster.update(new)
