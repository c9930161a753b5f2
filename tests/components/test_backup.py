"""Backups, rendered: the country's object storage declared once on the NationalCloud, the suite's or tenant's
backups refused outside the tenant's country (naming the field), the CronJob and its configuration, the backup
pod's network (Cyclonus: the databases, the object storage, DNS, nothing else), CloudNativePG's Barman Cloud
objects, and the schedule's arithmetic for the alert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovereign_suite.api import cron
from sovereign_suite.api.models import NationalCloud
from sovereign_suite.api.egress_checks import missing_egress
from sovereign_suite.api.secret_refs import secret_references
from sovereign_suite.api.validation import InputError, check_suite
from sovereign_suite.components.base import BARMAN_API, CNPG_API, build_contexts
from sovereign_suite.render import render_suite

from ..helpers import load_example, suite_with
from ..netpol_eval import External, Pod, evaluate, namespace_labels, rendered_pods

FR_STORAGE = {"endpoint": "https://oos.eu-west-2.example.fr", "region": "eu-west-2", "bucket": "fr-suite-backups",
              "credentialsSecretRef": "fr-backup-s3"}
DE_STORAGE = {"endpoint": "https://object.eu01.example.de", "bucket": "de-suite-backups",
              "credentialsSecretRef": "de-backup-s3"}
STORAGE_CIDR = "198.51.100.0/24"
BACKUPS = {"enabled": True, "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}


def clouds_with_storage(fr: dict | None = FR_STORAGE, de: dict | None = DE_STORAGE) -> dict[str, NationalCloud]:
    _, clouds = load_example("two-countries")
    out = dict(clouds)
    for name, storage in (("fr-secnumcloud", fr), ("de-c5", de)):
        doc = clouds[name].model_dump(by_alias=True, exclude_none=True)
        if storage:
            doc["spec"]["objectStorage"] = storage
            doc["spec"].setdefault("network", {}).setdefault("egress", {})["objectStorage"] = [{"cidrs": [STORAGE_CIDR]}]
        out[name] = NationalCloud.model_validate(doc)
    return out


def suite(backups: dict | None = None, tenants: list | None = None, **components):
    patch: dict = {"backups": backups if backups is not None else BACKUPS}
    if tenants is not None:
        patch["tenants"] = tenants
    if components:
        patch["components"] = components
    return suite_with("two-countries", patch)


def problems(s, clouds) -> dict[str, str]:
    return {p.path: p.message for p in check_suite(s, clouds)}


def tenant_objects(result, country: str) -> dict[tuple[str, str], dict]:
    ns = f"eu-workplace-{country}"
    return {(o["kind"], o["metadata"]["name"]): o for o in result.manifests if o["metadata"].get("namespace") == ns}


# ---- validation ------------------------------------------------------------------------------------------

def test_a_backup_target_in_another_country_is_refused_naming_the_field():
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud"},
               {"country": "DE", "cloud": "de-c5", "backups": {"cloud": "fr-secnumcloud"}}]
    found = problems(suite(tenants=tenants), clouds_with_storage())
    assert found == {"spec.tenants[1].backups.cloud": "NationalCloud 'fr-secnumcloud' is in FR, not in DE: a "
                                                      "tenant's backups must stay in its own country"}
    with pytest.raises(InputError, match=r"spec\.tenants\[1\]\.backups\.cloud"):
        render_suite(suite(tenants=tenants), clouds_with_storage())


def test_suite_level_target_in_one_country_is_refused_for_the_other_tenant():
    found = problems(suite({**BACKUPS, "cloud": "de-c5"}), clouds_with_storage())
    assert list(found) == ["spec.backups.cloud"]
    assert "is in DE, not in FR" in found["spec.backups.cloud"]


def test_a_cloud_without_object_storage_cannot_receive_backups():
    found = problems(suite(), clouds_with_storage(de=None))
    assert found == {"spec.tenants[1].cloud": "NationalCloud 'de-c5' declares no spec.objectStorage: backups need "
                                              "the country's object storage"}


def test_secrets_are_never_backed_up_without_the_countrys_recipient():
    found = problems(suite({"enabled": True}), clouds_with_storage())
    assert set(found) == {"spec.backups.encryptionRecipientSecretRef"}
    assert "never stored in clear" in found["spec.backups.encryptionRecipientSecretRef"]
    assert problems(suite({"enabled": True, "include": {"secrets": False}}), clouds_with_storage()) == {}


@pytest.mark.parametrize("schedule,message", [
    ("0 2 * *", "expected five fields"),
    ("0 24 * * *", "hour: 24 is outside 0-23"),
    ("0 2 * * funday", "day of week: 'funday' is not a number or a name"),
    ("@daily", "expected five fields"),
    ("0 0 30 2 *", "never runs"),
])
def test_a_bad_schedule_is_refused_naming_the_field(schedule, message):
    with pytest.raises(InputError) as err:
        suite({**BACKUPS, "schedule": schedule})
    assert [p.path for p in err.value.problems] == ["spec.backups.schedule"]
    assert message in err.value.problems[0].message
    with pytest.raises(InputError) as err:
        suite(tenants=[{"country": "FR", "cloud": "fr-secnumcloud", "backups": {"schedule": schedule}},
                       {"country": "DE", "cloud": "de-c5"}])
    assert [p.path for p in err.value.problems] == ["spec.tenants[0].backups.schedule"]


def test_longest_gap_between_runs():
    assert cron.longest_gap("0 2 * * *") == 86400
    assert cron.longest_gap("*/15 * * * *") == 900
    assert cron.longest_gap("0 3 * * sun") == 7 * 86400
    assert cron.longest_gap("30 1 * * mon-fri") == 3 * 86400 - 0  # Friday 01:30 -> Monday 01:30
    assert cron.longest_gap("0 0 31 * *") == 61 * 86400  # 31 Aug -> 31 Oct (two months of 31 days apart)
    assert cron.longest_gap("0 4 1,15 * *") == 17 * 86400  # the 15th -> the 1st of a 31-day month


def test_the_backups_secrets_are_referenced_from_the_suites_namespace():
    s, clouds = suite(), clouds_with_storage()
    ctx = build_contexts(s, clouds)[0]
    refs = {r.name: r.path for r in secret_references(s, 0, ctx.tenant, ctx.components, ctx.backups,
                                                      ctx.object_storage)}
    assert refs["fr-backup-s3"] == "NationalCloud/fr-secnumcloud.spec.objectStorage.credentialsSecretRef"
    assert refs["backup-recipient"] == "spec.backups.encryptionRecipientSecretRef.name"


# ---- the CronJob -------------------------------------------------------------------------------------------

def test_backups_off_render_nothing():
    _, clouds = load_example("two-countries")
    s = suite_with("two-countries", {})
    assert not [o for o in render_suite(s, clouds).manifests if o["metadata"]["name"].startswith("backup")]


def test_the_cronjob_backs_up_the_tenants_data_to_its_own_countrys_bucket():
    tenants = [{"country": "FR", "cloud": "fr-secnumcloud"},
               {"country": "DE", "cloud": "de-c5", "backups": {"schedule": "30 3 * * *", "retentionDays": 30}}]
    result = render_suite(suite(tenants=tenants, docs={"enabled": False}), clouds_with_storage())
    fr, de = tenant_objects(result, "fr"), tenant_objects(result, "de")
    assert fr[("CronJob", "backup")]["spec"]["schedule"] == "0 2 * * *"
    assert de[("CronJob", "backup")]["spec"]["schedule"] == "30 3 * * *"
    cfg = json.loads(fr[("ConfigMap", "backup-config")]["data"]["config.json"])
    assert cfg["s3"] == {"endpoint": FR_STORAGE["endpoint"], "bucket": "fr-suite-backups", "region": "eu-west-2",
                         "credentialsDir": "/etc/backup/s3"}
    assert cfg["prefix"] == "sovereign-suite/eu-workplace/fr/"
    (db,) = cfg["databases"]
    assert (db["name"], db["host"], db["excludeTableData"]) == ("matrix", "matrix-postgres", ["e2e_one_time_keys_json"])
    assert cfg["directories"] == [{"name": "matrix-media", "path": "/backup/media",
                                   "include": ["local_content", "local_thumbnails"]}]
    # every Secret the operator generates for the enabled components (docs is off here; llm is off in the example)
    assert cfg["secrets"]["dirs"] == {n: f"/backup/secrets/{n}" for n in ("jitsi-auth", "matrix-postgres",
                                                                         "synapse-keys")}
    de_cfg = json.loads(de[("ConfigMap", "backup-config")]["data"]["config.json"])
    assert (de_cfg["s3"]["bucket"], de_cfg["retentionDays"]) == ("de-suite-backups", 30)

    pod = fr[("CronJob", "backup")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] and c["terminationMessagePolicy"] == "File"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["media"]["persistentVolumeClaim"] == {"claimName": "synapse-media", "readOnly": True}
    assert volumes["sealed"]["emptyDir"]["medium"] == "Memory"
    assert volumes["recipient"]["secret"]["items"] == [{"key": "recipient", "path": "recipient"}]
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert {"fr-backup-s3", "backup-recipient", "synapse-keys", "matrix-postgres"} <= mounted
    # ReadWriteOnce media: on Synapse's node
    (term,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "synapse"


def test_dynamic_thumbnails_are_not_backed_up():
    result = render_suite(suite(matrix={"extraConfig": {"dynamic_thumbnails": True}}), clouds_with_storage())
    cfg = json.loads(tenant_objects(result, "fr")[("ConfigMap", "backup-config")]["data"]["config.json"])
    assert cfg["directories"][0]["include"] == ["local_content"]


# ---- the backup pod's network (Cyclonus) -----------------------------------------------------------------

def test_the_backup_pod_reaches_its_databases_the_object_storage_and_dns_only(tmp_path: Path):
    result = render_suite(suite(), clouds_with_storage())
    manifests = result.manifests
    ns = "eu-workplace-fr"
    policies = [o for o in manifests if o["kind"] == "NetworkPolicy"]
    cron_job = next(o for o in manifests if o["kind"] == "CronJob" and o["metadata"]["namespace"] == ns)
    job = {"kind": "Job", "metadata": {"namespace": ns, "name": "backup"},
           "spec": cron_job["spec"]["jobTemplate"]["spec"]}
    pods = rendered_pods([o for o in manifests if o["metadata"].get("namespace") == ns] + [job])
    backup = next(p for p in pods if p.app == "backup")
    by_app = {p.app: p for p in pods}
    storage = External("198.51.100.7", (("https", 443, "TCP"),), "object-storage")
    elsewhere = External("203.0.113.9", (("https", 443, "TCP"),), "elsewhere")
    dns = Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"),), "10.96.0.10")
    ns_labels = {**namespace_labels(manifests), "kube-system": {"kubernetes.io/metadata.name": "kube-system"}}
    cases = [
        (backup, by_app["matrix-postgres"], 5432, "TCP"),
        (backup, by_app["docs-postgres"], 5432, "TCP"),
        (backup, storage, 443, "TCP"),
        (backup, dns, 53, "UDP"),
        (backup, by_app["synapse"], 8008, "TCP"),
        (backup, by_app["docs-redis"], 6379, "TCP"),
        (backup, elsewhere, 443, "TCP"),
        (by_app["synapse"], storage, 443, "TCP"),  # the object storage is the backup's, not Synapse's
        (by_app["synapse"], by_app["matrix-postgres"], 5432, "TCP"),  # unchanged
    ]
    verdicts = evaluate(policies, cases, ns_labels, {}, tmp_path)
    assert verdicts == [True, True, True, True, False, False, False, False, True]


# ---- CloudNativePG: the Barman Cloud plugin --------------------------------------------------------------

def test_cloudnative_pg_archives_with_the_barman_cloud_plugin():
    s = suite(matrix={"postgres": {"mode": "cloudnative-pg"}}, docs={"enabled": False})
    result = render_suite(s, clouds_with_storage(), frozenset({CNPG_API, BARMAN_API}))
    fr = tenant_objects(result, "fr")
    store = fr[("ObjectStore", "matrix-postgres-backup")]
    assert store["apiVersion"] == "barmancloud.cnpg.io/v1"
    conf = store["spec"]["configuration"]
    assert conf["destinationPath"] == "s3://fr-suite-backups/sovereign-suite/eu-workplace/fr/cnpg/"
    assert conf["endpointURL"] == FR_STORAGE["endpoint"]
    assert conf["s3Credentials"]["accessKeyId"] == {"name": "fr-backup-s3", "key": "AWS_ACCESS_KEY_ID"}
    assert store["spec"]["retentionPolicy"] == "14d"
    assert fr[("Cluster", "matrix-postgres")]["spec"]["plugins"] == [
        {"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
         "parameters": {"barmanObjectName": "matrix-postgres-backup"}}]
    scheduled = fr[("ScheduledBackup", "matrix-postgres")]["spec"]
    assert scheduled["schedule"] == "0 0 2 * * *"  # CloudNativePG's leading seconds field
    assert (scheduled["method"], scheduled["pluginConfiguration"]) == ("plugin", {"name": "barman-cloud.cloudnative-pg.io"})
    # the CronJob does not dump a CloudNativePG database; the instances may reach the object storage
    cfg = json.loads(fr[("ConfigMap", "backup-config")]["data"]["config.json"])
    assert cfg["databases"] == []
    assert ("NetworkPolicy", "allow-egress-object-storage-cnpg") in fr


def test_cloudnative_pg_backups_without_the_plugin_are_refused():
    s = suite(matrix={"postgres": {"mode": "cloudnative-pg"}})
    with pytest.raises(InputError, match="does not serve barmancloud.cnpg.io/v1"):
        render_suite(s, clouds_with_storage(), frozenset({CNPG_API}))


def test_an_object_storage_without_declared_egress_is_a_warning_naming_the_field():
    clouds = clouds_with_storage()
    de = clouds["de-c5"].model_dump(by_alias=True, exclude_none=True)
    del de["spec"]["network"]["egress"]["objectStorage"]
    clouds["de-c5"] = NationalCloud.model_validate(de)
    found = {f.path: f.message for f in missing_egress(suite(), clouds)}
    assert "spec.network.egress.objectStorage" in found
    message = found["spec.network.egress.objectStorage"]
    assert "the backup job needs it to reach https://object.eu01.example.de" in message
    assert "DE (NationalCloud de-c5)" in message and "FR" not in message
