"""The convergence rule (reconcile/converge.py) and the rotation hash (reconcile/secrets.py), without a cluster.
tests/cluster/test_reconcile_core.py shows the same on the real API server."""

from __future__ import annotations

from sovereign_suite.reconcile import converge
from sovereign_suite.reconcile.secrets import ANN_SECRETS_HASH, roll_on_rotation, secret_names_used

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-config", "namespace": "s-fr"},
      "data": {"DJANGO_DEBUG": "True", "A": "1"}}
OURS = {"manager": converge.FIELD_MANAGER, "operation": "Apply"}


def live_of(desired, managers=(OURS,)):
    return {"metadata": {"annotations": dict(desired["metadata"]["annotations"]), "managedFields": list(managers)}}


def test_stamp_adds_owner_and_a_hash_that_ignores_key_order():
    a = converge.stamp(CM, "uid-1")
    b = converge.stamp({"data": {"A": "1", "DJANGO_DEBUG": "True"}, "metadata": CM["metadata"], "kind": "ConfigMap",
                        "apiVersion": "v1"}, "uid-1")
    assert a["metadata"]["annotations"][converge.ANN_OWNER] == "uid-1"
    assert a["metadata"]["annotations"][converge.ANN_HASH] == b["metadata"]["annotations"][converge.ANN_HASH]
    assert converge.ANN_HASH not in CM["metadata"].get("annotations", {})  # the input is not changed


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


def test_a_hand_edit_is_drift_but_controllers_and_status_writers_are_not():
    d = converge.stamp(CM, "u")
    edit = {"manager": "kubectl-edit", "operation": "Update"}
    assert converge.out_of_sync(live_of(d, (OURS, edit)), d) == "edited by kubectl-edit (Update)"
    ssa_other = {"manager": "kubectl", "operation": "Apply"}
    assert converge.out_of_sync(live_of(d, (OURS, ssa_other)), d) == "edited by kubectl (Apply)"
    scale = {"manager": "kubectl", "operation": "Update", "subresource": "scale"}
    assert converge.out_of_sync(live_of(d, (OURS, scale)), d) is not None
    controller = {"manager": "kube-controller-manager", "operation": "Update"}
    status = {"manager": "anyone", "operation": "Update", "subresource": "status"}
    assert converge.out_of_sync(live_of(d, (OURS, controller, status)), d) is None
    # the operator's own non-apply writes (create, the retained label) are handed over too
    own_update = {"manager": converge.FIELD_MANAGER, "operation": "Update"}
    assert converge.out_of_sync(live_of(d, (OURS, own_update)), d) is not None


def test_takeover_patch_unions_foreign_fields_into_the_operators_apply_entry():
    live = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "42", "managedFields": [
            {"manager": converge.FIELD_MANAGER, "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:A": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:EXTRA": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:r": {}}}}},
        ]}}
    patch = converge.takeover_patch(live)
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    entries = patch[1]["value"]
    assert [e["manager"] for e in entries] == [converge.FIELD_MANAGER, "kube-controller-manager"]
    assert entries[0]["fieldsV1"] == {"f:data": {"f:A": {}, "f:EXTRA": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}
    assert live["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:A": {}}}  # input untouched
    assert converge.takeover_patch({**live, "metadata": {**live["metadata"], "managedFields": [
        live["metadata"]["managedFields"][0]]}}) is None


def test_takeover_after_a_create_makes_an_apply_entry():
    live = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "resourceVersion": "7", "managedFields": [
        {"manager": converge.FIELD_MANAGER, "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}}}}}]}}
    entries = converge.takeover_patch(live)[1]["value"]
    assert len(entries) == 1 and entries[0]["operation"] == "Apply"
    assert entries[0]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:a": {}}}}


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
