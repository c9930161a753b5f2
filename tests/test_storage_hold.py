"""Storage the API server cannot change (issue 22, item 11): reconcile/storage_hold.py holds a change of an existing
StatefulSet's volumeClaimTemplates or of a PVC's class back, naming the field; the cache keeps what it compares
(the cluster test is tests/cluster/test_storage_change.py)."""

from __future__ import annotations

import copy

from sovereign_suite.api.validation import parse_suite
from sovereign_suite.reconcile.cache import strip_child
from sovereign_suite.reconcile.problems import ObjectKey, Severity
from sovereign_suite.reconcile.storage_hold import REASON, hold_immutable_storage
from sovereign_suite.render import render_suite

from .helpers import example_dict, load_example


def render(patch_matrix: dict | None = None, tenant_patch: dict | None = None, clouds=None):
    doc = copy.deepcopy(example_dict("two-countries"))
    doc["spec"]["components"]["matrix"].update(patch_matrix or {})
    if tenant_patch:
        doc["spec"]["tenants"][0]["components"] = tenant_patch
    suite = parse_suite(doc)
    clouds = clouds or load_example("two-countries")[1]
    return suite, clouds, render_suite(suite, clouds).manifests


def live_of(manifests):
    """What the watch cache holds of the rendered objects once applied (the API server keeps the claim templates
    as sent; a PVC without a class gets the default one)."""
    return {ObjectKey.of(o): strip_child(o) for o in manifests}


def sts(manifests, ns="eu-workplace-fr", name="matrix-postgres"):
    return next(o for o in manifests if o["kind"] == "StatefulSet" and o["metadata"]["name"] == name
                and o["metadata"]["namespace"] == ns)


def storage(o):
    return o["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]


def test_the_cache_keeps_the_claim_templates_and_a_pvcs_class():
    _, _, objs = render()
    stripped = strip_child(sts(objs))
    assert stripped["spec"]["volumeClaimTemplates"] == [
        {"name": "data", "storageClassName": "standard", "storage": "10Gi"}]
    pvc = next(o for o in objs if o["kind"] == "PersistentVolumeClaim")
    assert strip_child(pvc)["spec"] == {"storageClassName": "standard",
                                        "storage": pvc["spec"]["resources"]["requests"]["storage"]}


def test_nothing_held_when_nothing_immutable_changed():
    suite, clouds, objs = render()
    out, problems = hold_immutable_storage(objs, live_of(objs), suite, clouds)
    assert problems == [] and out == objs
    # ... nor for objects that do not exist yet (a new tenant gets the new size)
    suite2, clouds2, bigger = render({"postgres": {"storage": "20Gi"}})
    out, problems = hold_immutable_storage(bigger, {}, suite2, clouds2)
    assert problems == [] and storage(sts(out)) == "20Gi"


def test_a_new_size_of_a_running_database_is_held_back_naming_the_field():
    _, _, before = render()
    suite, clouds, after = render({"postgres": {"storage": "20Gi", "resources": {"limits": {"memory": "3Gi"}}}})
    out, problems = hold_immutable_storage(after, live_of(before), suite, clouds)
    held = [p for p in problems if p.object == ObjectKey("apps", "StatefulSet", "eu-workplace-fr", "matrix-postgres")]
    [p] = held
    assert p.severity is Severity.STALLED and p.reason == REASON
    assert p.message.startswith("spec.components.matrix.postgres.storage: StatefulSet matrix-postgres's volume data "
                                "was created with 10Gi")
    assert "wanted 20Gi" in p.message
    assert len(problems) == 2  # FR and DE
    held_sts = sts(out)
    assert storage(held_sts) == "10Gi"  # as it is
    pg = next(c for c in held_sts["spec"]["template"]["spec"]["containers"] if c["name"] == "postgres")
    assert pg["resources"]["limits"]["memory"] == "3Gi"  # the rest follows the spec
    assert storage(sts(after)) == "20Gi"  # the renderer's objects are not modified
    # the same size written another way is no change
    suite3, clouds3, same = render({"postgres": {"storage": "10240Mi"}})
    assert hold_immutable_storage(same, live_of(before), suite3, clouds3)[1] == []


def test_a_tenants_own_size_names_the_tenants_field():
    _, _, before = render()
    suite, clouds, after = render(tenant_patch={"matrix": {"postgres": {"storage": "50Gi"}}})
    _, problems = hold_immutable_storage(after, live_of(before), suite, clouds)
    [p] = problems
    assert p.message.startswith("spec.tenants[0].components.matrix.postgres.storage: ")


def test_a_new_storage_class_of_the_cloud_is_held_back_on_claims_and_templates():
    suite, clouds, before = render()
    fr = clouds["fr-secnumcloud"]
    changed = {**clouds, "fr-secnumcloud": fr.model_copy(update={"spec": fr.spec.model_copy(
        update={"storage_class": "fast-ssd"})})}
    _, _, after = render(clouds=changed)
    out, problems = hold_immutable_storage(after, live_of(before), suite, changed)
    assert problems and all(p.reason == REASON for p in problems)
    assert all(p.message.startswith("NationalCloud fr-secnumcloud spec.storageClass: ") for p in problems)
    kinds = {p.object.kind for p in problems}
    assert kinds == {"StatefulSet", "PersistentVolumeClaim"}
    assert all(o["spec"].get("storageClassName", "standard") == "standard" for o in out
               if o["kind"] == "PersistentVolumeClaim")
    assert sts(out)["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "standard"
    assert {p.object.namespace for p in problems} == {"eu-workplace-fr"}  # DE's cloud did not change


def test_a_claim_that_has_a_class_keeps_it_when_none_is_rendered():
    """The DefaultStorageClass admission plugin fills a PVC's class, or the cloud's storageClass was removed: a
    render without a class is not reported, and the class is sent as it is."""
    suite, clouds, objs = render()
    no_class = {n: c.model_copy(update={"spec": c.spec.model_copy(update={"storage_class": None})})
                for n, c in clouds.items()}
    _, _, unclassed = render(clouds=no_class)
    live = live_of(objs)  # created with "standard"
    out, problems = hold_immutable_storage(unclassed, live, suite, no_class)
    assert problems == []
    # sent with the class they have: an apply without a field the operator owned would remove it (a 422)
    assert {o["spec"]["storageClassName"] for o in out if o["kind"] == "PersistentVolumeClaim"} == {"standard"}
    assert sts(out)["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "standard"
