"""Which objects pruning may delete (reconcile/prune.py, Pruner.ours), without a cluster: only in the suite's own
tenant namespaces, only objects carrying its UID, a StatefulSet's claims aside.
tests/cluster/test_reconcile_core.py shows it on the real API server."""

from __future__ import annotations

from sovereign_suite.reconcile.converge import ANN_OWNER
from sovereign_suite.reconcile.problems import ObjectKey, SuiteKey
from sovereign_suite.reconcile.prune import Pruner

SUITE = SuiteKey("suites", "eu")
UID = "uid-eu"
LABELS = {"sovereignsuite.io/suite": "eu", "sovereignsuite.io/suite-namespace": "suites",
          "app.kubernetes.io/managed-by": "sovereign-suite-operator"}


def obj(kind, name, namespace="eu-fr", owner=UID, labels=None, api_version="v1"):
    meta = {"name": name, "labels": dict(LABELS if labels is None else labels)}
    if namespace:
        meta["namespace"] = namespace
    if owner:
        meta["annotations"] = {ANN_OWNER: owner}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def tenant_ns(name="eu-fr", country="fr", owner=UID):
    return obj("Namespace", name, namespace=None, owner=owner,
               labels={**LABELS, "sovereignsuite.io/country": country})


def pruner(*objs):
    return Pruner(None, SUITE, UID, {ObjectKey.of(o): o for o in objs})  # type: ignore[arg-type]


def test_only_objects_in_the_suites_tenant_namespaces_carrying_its_uid():
    ns = tenant_ns()
    mine = obj("ConfigMap", "docs-config")
    scratch_copy = obj("ConfigMap", "docs-config", namespace="scratch")  # labels and UID copied by hand
    no_uid = obj("ConfigMap", "rendered-by-hand", owner=None)  # `sovereign-suite render` output applied by hand
    other_uid = obj("ConfigMap", "old", owner="uid-of-a-suite-before")
    unmanaged = obj("ConfigMap", "users", labels={k: v for k, v in LABELS.items() if "managed-by" not in k})
    p = pruner(ns, mine, scratch_copy, no_uid, other_uid, unmanaged)
    assert p.tenant_namespaces() == {"eu-fr"}
    assert p.ours(ns) and p.ours(mine)
    for o in (scratch_copy, no_uid, other_uid, unmanaged):
        assert not p.ours(o), o


def test_a_namespace_named_otherwise_is_no_tenant_namespace():
    """A Velero restore with a namespace mapping copies the labels (and the UID) under another name."""
    restored = tenant_ns("eu-fr-restored")
    inside = obj("ConfigMap", "docs-config", namespace="eu-fr-restored")
    p = pruner(restored, inside)
    assert p.tenant_namespaces() == set()
    assert not p.ours(restored) and not p.ours(inside)
    # a tenant namespace a platform team created (no UID) is one: the suite's children there are its own, the
    # namespace itself never
    platform = tenant_ns(owner=None)
    p = pruner(platform, obj("ConfigMap", "docs-config"))
    assert p.tenant_namespaces() == {"eu-fr"}
    assert not p.ours(platform) and p.ours(obj("ConfigMap", "docs-config"))


def test_generated_secrets_need_no_uid_in_a_tenant_namespace():
    """Created once, never applied (reconcile/secrets.py): they carry the generated label, no UID."""
    generated = obj("Secret", "synapse-keys", owner=None, labels={**LABELS, "sovereignsuite.io/generated": "true"})
    copied = obj("Secret", "synapse-keys", namespace="scratch", owner=None,
                 labels={**LABELS, "sovereignsuite.io/generated": "true"})
    p = pruner(tenant_ns(), generated, copied)
    assert p.ours(generated) and not p.ours(copied)
    assert not p.ours(obj("Secret", "hand-made", owner=None))


def test_claims_of_a_statefulset_need_no_uid():
    """A claim made from volumeClaimTemplates has the template's labels and annotations (no UID) and the name
    <template>-<statefulset>-<ordinal>."""
    claim = obj("PersistentVolumeClaim", "data-synapse-postgres-0", owner=None)
    hand_made = obj("PersistentVolumeClaim", "scratch", owner=None)
    elsewhere = obj("PersistentVolumeClaim", "data-synapse-postgres-0", namespace="scratch", owner=None)
    p = pruner(tenant_ns(), claim, hand_made, elsewhere)
    assert p.ours(claim)
    assert not p.ours(hand_made) and not p.ours(elsewhere)
