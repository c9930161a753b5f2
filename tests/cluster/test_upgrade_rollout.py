"""A release upgrade on the local control plane, with the operator as a real process (reconcile/rollout.py).

A French tenant on the previous release (api/releases.yaml), with backups configured, moves to the current one:
the API server's audit log shows the operator apply the pre-upgrade backup Job (from the backup CronJob's
template) first, then the Synapse check-config Job, then Synapse's main Deployment with the new image, and its
workers' StatefulSets last;
the status records the release and schema the database reached. Asking for the previous release again is refused
(Stalled, UpgradeRefused, the field named) and nothing is written but the status. kwok's nodes run no container:
the Jobs complete as kwok completes their pods; the real Synapse migration and refusal are
tests/test_synapse_upgrade_real.py.
"""

from __future__ import annotations

import uuid

from sovereign_suite.api.image_pins import PINS, release_pins

from .conftest import wait_for
from .operator_fixture import SUITES, Audit, condition, create_referenced_secrets, get_suite, suite_doc, wait_ready
from .test_backup_live import RECIPIENT, cloud, referenceable

PREVIOUS, CURRENT = "2024.01", "2026.12"


def _synapse_image(kube, ns: str) -> str | None:
    dep = kube.get("apps/v1", "Deployment", "synapse", ns)
    return dep["spec"]["template"]["spec"]["containers"][0]["image"] if dep else None


def _tenant(kube, doc) -> dict:
    return ((get_suite(kube, doc) or {}).get("status") or {}).get("tenants", [{}])[0]


def test_an_upgrade_backs_up_checks_then_rolls_and_a_downgrade_is_refused(operator, kube, core, namespace, cluster):
    tag = uuid.uuid4().hex[:5]
    fr_cloud = cloud(f"fr-up-{tag}", "fr-secnumcloud", "fr-backups", "fr-s3")
    create_referenced_secrets(core, namespace)
    referenceable(core, namespace, "fr-s3", {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"})
    referenceable(core, namespace, "backup-recipient", {"recipient": RECIPIENT})
    doc = suite_doc("two-countries", namespace, patch={
        "deletionPolicy": "Delete", "release": PREVIOUS,
        "components": {"docs": {"enabled": False}, "jitsi": {"enabled": False},
                       "matrix": {"workers": {"size": "small"}}},
        "backups": {"enabled": True, "schedule": "15 1 * * *",
                    "encryptionRecipientSecretRef": {"name": "backup-recipient", "key": "recipient"}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": fr_cloud["metadata"]["name"]}]
    name, fr = doc["metadata"]["name"], f"{doc['metadata']['name']}-fr"
    audit = Audit(cluster)
    try:
        kube.create(fr_cloud)
        kube.create(doc)
        wait_ready(kube, doc, timeout=120)
        assert _synapse_image(kube, fr) == release_pins(PREVIOUS)["synapse"].ref
        rec = wait_for(lambda: _tenant(kube, doc).get("release"), timeout=30, what="the release record")
        assert (rec["name"], rec["synapseSchemaVersion"], rec["synapseCompatVersion"]) == (PREVIOUS, 83, 83)

        # the upgrade: backup, check, then the new image
        mark = audit.mark()
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": CURRENT}})
        wait_for(lambda: (_tenant(kube, doc).get("release") or {}).get("name") == CURRENT, timeout=150,
                 what="the tenant on the current release")
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        rec = _tenant(kube, doc)["release"]
        assert (rec["synapseSchemaVersion"], rec["synapseCompatVersion"]) == (94, 84)
        assert "upgrade" not in _tenant(kube, doc)  # done: no rollout left in the status
        writes = audit.writes(mark)

        def first(prefix: str) -> int:
            found = [i for i, w in enumerate(writes) if w.startswith(prefix)]
            assert found, f"no {prefix!r} in {writes}"
            return found[0]

        backup = first(f"patch jobs {fr}/upgrade-backup-")  # server-side apply: a patch creates
        check = first(f"patch jobs {fr}/synapse-check-config-")
        assert f"patch deployments {fr}/synapse" in writes, writes
        synapse = writes.index(f"patch deployments {fr}/synapse")
        workers = first(f"patch statefulsets {fr}/synapse-")  # Synapse's workers (size small)
        assert backup < check < synapse < workers, writes
        # the one-off Jobs are gone once the rollout is done (pruned: no longer rendered)
        wait_for(lambda: not [j for j in kube.list("batch/v1", "Job", namespace=fr)
                              if j["metadata"]["name"].startswith(("upgrade-backup-", "synapse-check-config-"))],
                 timeout=60, what="the rollout's Jobs pruned")
        wait_ready(kube, doc, timeout=60)

        # a downgrade below the database's schema: refused, nothing written but the status
        mark = audit.mark()
        kube.merge_patch(*SUITES, name, namespace, {"spec": {"release": PREVIOUS}})

        def stalled():
            c = condition(get_suite(kube, doc), "Stalled")
            return c if c and c["status"] == "True" else None

        c = wait_for(stalled, timeout=60, what="Stalled condition")
        assert c["reason"] == "UpgradeRefused", c
        assert "spec.release: Synapse v1.99.0 (schema 83) cannot run on tenant FR's database" in c["message"], c
        assert "schema 94" in c["message"]
        assert _synapse_image(kube, fr) == PINS["synapse"].ref
        assert _tenant(kube, doc)["release"]["name"] == CURRENT  # the record survives the refused pass
        # the suite's status, its events and the operator's leader lease are not the tenant's children
        children = [w for w in audit.writes(mark) if w.split()[1] not in ("sovereignsuites/status", "events",
                                                                           "leases")]
        assert children == [], children
    finally:
        kube.delete({"apiVersion": "sovereignsuite.io/v1alpha1", "kind": "SovereignSuite",
                     "metadata": {"name": name, "namespace": namespace}})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=60, what="suite deleted")
        kube.delete(fr_cloud)
