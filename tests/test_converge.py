"""The convergence rule (reconcile/converge.py) and the rotation hash (reconcile/secrets.py), without a cluster.
tests/cluster/test_reconcile_core.py shows the same on the real API server."""

from __future__ import annotations

from sovereign_suite.reconcile import converge
from sovereign_suite.reconcile.cache import strip_child
from sovereign_suite.reconcile.secrets import ANN_SECRETS_HASH, roll_on_rotation, secret_names_used

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-config", "namespace": "s-fr"},
      "data": {"DJANGO_DEBUG": "True", "A": "1"}}
OWN_SET = {"f:data": {"f:A": {}, "f:DJANGO_DEBUG": {}},
           "f:metadata": {"f:annotations": {"f:sovereignsuite.io/applied-hash": {}}}}


def ours(fields=None):
    return {"manager": converge.FIELD_MANAGER, "operation": "Apply", "fieldsV1": OWN_SET if fields is None else fields}


def live_of(desired, managers=None, applied=OWN_SET):
    """The child as the operator's apply left it (its field digest written), with ``managers`` as they are now."""
    ann = {**desired["metadata"]["annotations"], converge.ANN_FIELDS: converge.fields_digest(applied)}
    return {"metadata": {"annotations": ann, "managedFields": list(managers or (ours(applied),))}}


def test_stamp_adds_owner_and_a_hash_that_ignores_key_order():
    a = converge.stamp(CM, "uid-1")
    b = converge.stamp({"data": {"A": "1", "DJANGO_DEBUG": "True"}, "metadata": CM["metadata"], "kind": "ConfigMap",
                        "apiVersion": "v1"}, "uid-1")
    assert a["metadata"]["annotations"][converge.ANN_OWNER] == "uid-1"
    assert a["metadata"]["annotations"][converge.ANN_HASH] == b["metadata"]["annotations"][converge.ANN_HASH]
    assert converge.ANN_HASH not in CM["metadata"].get("annotations", {})  # the input is not changed
    # the field digest the apply adds is no part of what is rendered
    assert converge.stamp(converge.with_fields_digest(CM, "x"), "uid-1") == converge.with_fields_digest(a, "x")


def test_a_removed_setting_changes_the_hash():
    before = converge.stamp(CM, "uid-1")
    after = converge.stamp({**CM, "data": {"A": "1"}}, "uid-1")
    assert converge.out_of_sync(live_of(before), after) == "changed"
    assert converge.out_of_sync(live_of(after), after) is None


def test_a_new_owner_changes_the_hash():
    assert converge.out_of_sync(live_of(converge.stamp(CM, "old")), converge.stamp(CM, "new")) == "changed"


def test_missing_and_unstamped_objects_are_applied():
    d = converge.stamp(CM, "u")
    assert converge.out_of_sync(None, d) == "missing"
    assert converge.out_of_sync({"metadata": {}}, d) == "not applied by this version"
    older = {"metadata": {"annotations": dict(d["metadata"]["annotations"]), "managedFields": [ours()]}}
    assert "no digest" in converge.out_of_sync(older, d)


def test_a_field_removed_by_hand_is_drift():
    """``kubectl label ns x key-``, a JSON-patch remove: the writer gets no entry, the operator's entry shrinks."""
    d = converge.stamp(CM, "u")
    shrunk = {"f:data": {"f:A": {}}, "f:metadata": {"f:annotations": {"f:sovereignsuite.io/applied-hash": {}}}}
    assert converge.out_of_sync(live_of(d, (ours(shrunk),)), d) == (
        "a field of the operator's was removed or rewritten by another writer")
    # rewritten by another writer: the field moved to its entry
    edit = {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:DJANGO_DEBUG": {}}}}
    assert converge.out_of_sync(live_of(d, (ours(shrunk), edit)), d) is not None
    # no entry of the operator's left at all
    assert converge.out_of_sync(live_of(d, (edit,)), d) is not None


def test_a_stripped_object_is_compared_by_the_digest_the_cache_keeps():
    d = converge.stamp(CM, "u")
    full = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "s-fr", **live_of(d)[
        "metadata"]}}
    assert converge.out_of_sync(strip_child(full), d) is None
    full["metadata"]["managedFields"] = [ours({"f:data": {"f:A": {}}})]
    assert converge.out_of_sync(strip_child(full), d) is not None


def test_other_writers_of_fields_the_operator_does_not_render_are_no_drift():
    """Reloader, ``kubectl rollout restart``, an OpenShift SCC annotation: left alone; the status subresource and
    Kubernetes' controllers too."""
    d = converge.stamp(CM, "u")
    for other in ({"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:data": {"f:EXTRA": {}}}},
                  {"manager": "reloader", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:annotations": {
                      "f:reloader.stakater.com/last-reloaded-from": {}}}}},
                  {"manager": "kube-controller-manager", "operation": "Update"},
                  {"manager": "anyone", "operation": "Update", "subresource": "status"}):
        assert converge.out_of_sync(live_of(d, (ours(), other)), d) is None, other
    # the operator's own non-apply writes (create, the retained label) are handed over to its apply
    own_update = {"manager": converge.FIELD_MANAGER, "operation": "Update"}
    assert converge.out_of_sync(live_of(d, (ours(), own_update)), d) is not None


def entry(manager, fields, operation="Update"):
    return {"manager": manager, "operation": operation, "apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": fields}


def test_takeover_patch_hands_over_only_the_fields_the_operator_renders():
    live = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "42", "managedFields": [
            entry(converge.FIELD_MANAGER, {"f:data": {"f:A": {}}}, "Apply"),
            # shares A (same value), holds B (rendered next) and EXTRA and a label the operator does not render
            entry("kubectl-edit", {"f:data": {"f:A": {}, "f:B": {}, "f:EXTRA": {}},
                                   "f:metadata": {"f:labels": {"f:x": {}}}}),
            entry("reloader", {"f:metadata": {"f:annotations": {"f:reloaded": {}}}}),
            entry("kube-controller-manager", {"f:data": {"f:A": {}}}),
        ]}}
    patch = converge.takeover_patch(live, wanted={"f:data": {"f:A": {}, "f:B": {}}})
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    entries = patch[1]["value"]
    assert [e["manager"] for e in entries] == [converge.FIELD_MANAGER, "kubectl-edit", "reloader",
                                               "kube-controller-manager"]
    assert entries[0]["fieldsV1"] == {"f:data": {"f:A": {}, "f:B": {}}}
    assert entries[1]["fieldsV1"] == {"f:data": {"f:EXTRA": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}
    assert entries[2:] == live["metadata"]["managedFields"][2:]  # untouched: nothing of theirs is rendered
    assert live["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:A": {}}}  # input untouched
    # nothing rendered in other writers' hands: nothing to do
    assert converge.takeover_patch({**live, "metadata": {**live["metadata"], "managedFields": [
        live["metadata"]["managedFields"][0], live["metadata"]["managedFields"][2]]}}) is None


def test_takeover_after_a_create_makes_an_apply_entry():
    live = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "resourceVersion": "7", "managedFields": [
        entry(converge.FIELD_MANAGER, {"f:metadata": {"f:labels": {"f:a": {}}}})]}}
    entries = converge.takeover_patch(live)[1]["value"]
    assert len(entries) == 1 and entries[0]["operation"] == "Apply"
    assert entries[0]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:a": {}}}}


def test_field_sets_keep_list_items_and_their_members():
    """FieldsV1: an item of an associative list is itself in the set ("."), besides its fields."""
    a = {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:name": {}, "f:env": {
        'k:{"name":"FOO"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}
    b = {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:name": {}, "f:env": {
        'k:{"name":"BAR"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}
    both = converge.intersect_fields(a, b)
    assert both == {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:name": {}}}}}
    only_a = converge.subtract_fields(a, b)
    assert only_a == {"f:spec": {"f:containers": {'k:{"name":"c"}': {"f:env": {
        'k:{"name":"FOO"}': {".": {}, "f:name": {}, "f:value": {}}}}}}}
    assert converge.union_fields(both, only_a) == a
    assert converge.subtract_fields(a, a) == {} and converge.intersect_fields(a, {}) == {}
    # a leaf (an atomic value) and the same path with children: the path stays in the union
    assert converge.union_fields({"f:x": {}}, {"f:x": {"f:y": {}}}) == {"f:x": {".": {}, "f:y": {}}}


DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "docs-backend", "namespace": "s-fr"},
          "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {
              "containers": [{"name": "c", "env": [
                  {"name": "OIDC", "valueFrom": {"secretKeyRef": {"name": "oidc-client", "key": "client-secret"}}},
                  {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "docs-secrets", "key": "k"}}}],
                  "envFrom": [{"secretRef": {"name": "docs-s3"}}]}],
              "volumes": [{"name": "v", "secret": {"secretName": "synapse-keys"}}]}}}}


def copy(name, value, ns="s-fr"):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": {"k": value}}


def test_secret_names_used_by_a_pod_template():
    assert secret_names_used(DEPLOY["spec"]["template"]["spec"]) == {"oidc-client", "docs-secrets", "docs-s3",
                                                                    "synapse-keys"}


KEY = bytes(range(32))


def annotation(obj):
    return obj["spec"]["template"]["metadata"]["annotations"][ANN_SECRETS_HASH]


def test_a_rotated_referenced_secret_changes_the_pod_template():
    before = roll_on_rotation([DEPLOY], [copy("oidc-client", "djE="), copy("docs-s3", "eA==")], KEY)[0]
    same = roll_on_rotation([DEPLOY], [copy("oidc-client", "djE="), copy("docs-s3", "eA==")], KEY)[0]
    after = roll_on_rotation([DEPLOY], [copy("oidc-client", "djI="), copy("docs-s3", "eA==")], KEY)[0]
    assert annotation(before) != annotation(after)
    assert annotation(before) == annotation(same)  # unchanged data: nothing to write on a resync
    assert "annotations" not in DEPLOY["spec"]["template"]["metadata"]  # the rendered object is not changed
    # a copy in another namespace, or a Secret the pods do not read, changes nothing
    other = roll_on_rotation([DEPLOY], [copy("oidc-client", "djE=", ns="s-de")], KEY)[0]
    assert other is DEPLOY
