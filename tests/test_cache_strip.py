"""What the watch caches store of an object (reconcile/cache.py): what the pipeline reads and no more, with the
strings and writer entries that hundreds of objects repeat shared instead of copied (docs/performance.md,
"Member clusters"). No cluster: objects decoded from JSON as the informers decode each watch event."""

from __future__ import annotations

import json

from sovereign_suite.reconcile.cache import strip_child, strip_pod
from sovereign_suite.reconcile.converge import OWN_FIELDS, fields_digest, foreign_entries


def event_object(name: str, kind: str = "Deployment") -> dict:
    """A child as one watch event brings it: decoded on its own, so its strings are its own copies."""
    return json.loads(json.dumps({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {
            "name": name, "namespace": "eu-fr", "uid": f"uid-{name}", "resourceVersion": "7", "generation": 2,
            "creationTimestamp": "2026-11-30T10:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "sovereign-suite-operator", "sovereignsuite.io/suite": "eu",
                       "sovereignsuite.io/suite-namespace": "suites"},
            "annotations": {"sovereignsuite.io/applied-hash": f"h-{name}", "deployment.kubernetes.io/revision": "3"},
            "managedFields": [
                {"manager": "sovereign-suite-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}}}, "time": "2026-11-30T10:00:00Z"},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}, "time": "2026-11-30T10:00:01Z"},
                {"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {}}},
            ]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1, "conditions": [{"type": "Available"}]},
    }))


def test_a_stored_child_keeps_only_what_the_pipeline_reads():
    stored = strip_child(event_object("synapse"))
    meta = stored["metadata"]
    assert set(meta) == {"name", "namespace", "uid", "resourceVersion", "generation", "labels", "annotations",
                         "managedFields", OWN_FIELDS}
    # of the field sets, only the digest of the operator's own (a removed field shrinks it: converge.py)
    assert meta[OWN_FIELDS] == fields_digest({"f:spec": {"f:replicas": {}}})
    assert meta["annotations"] == {"sovereignsuite.io/applied-hash": "h-synapse"}
    assert meta["managedFields"] == [
        {"manager": "sovereign-suite-operator", "operation": "Apply"},
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status"},
        {"manager": "kubectl-edit", "operation": "Update"}]
    assert stored["spec"] == {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                              "template": {"spec": {"affinity": {}}}}
    assert stored["status"] == {"replicas": 2, "readyReplicas": 1}
    # convergence reads the writers from the stored object as from the full one
    assert foreign_entries(stored) == [{"manager": "kubectl-edit", "operation": "Update"}]


def test_objects_decoded_apart_share_their_repeated_strings_and_writers():
    a, b = strip_child(event_object("synapse")), strip_child(event_object("element-web"))
    for key, value in a["metadata"]["labels"].items():
        other_key = next(k for k in b["metadata"]["labels"] if k == key)
        assert other_key is key and b["metadata"]["labels"][key] is value
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert all(x is y for x, y in zip(a["metadata"]["managedFields"], b["metadata"]["managedFields"]))
    # what is each object's own stays its own
    assert a["metadata"]["annotations"]["sovereignsuite.io/applied-hash"] == "h-synapse"
    assert b["metadata"]["annotations"]["sovereignsuite.io/applied-hash"] == "h-element-web"


def test_pods_share_their_labels_strings_and_node_names():
    def pod(name: str) -> dict:
        return json.loads(json.dumps({
            "metadata": {"name": name, "namespace": "eu-fr",
                         "labels": {"app.kubernetes.io/managed-by": "sovereign-suite-operator",
                                    "sovereignsuite.io/suite": "eu"}},
            "spec": {"nodeName": "fr-cpu-0", "containers": [{"resources": {}}]},
            "status": {"phase": "Running"}}))
    a, b = strip_pod(pod("p1")), strip_pod(pod("p2"))
    assert a["spec"]["nodeName"] is b["spec"]["nodeName"]
    assert a["metadata"]["labels"]["sovereignsuite.io/suite"] is b["metadata"]["labels"]["sovereignsuite.io/suite"]


def test_a_resource_quota_keeps_its_hard_and_used_amounts():
    """What reconcile/finetune_quota.py reads: a FineTune's pod refused by the tenant's quota."""
    quota = {"apiVersion": "v1", "kind": "ResourceQuota",
             "metadata": {"name": "tenant-fine-tuning", "namespace": "eu-fr", "managedFields": [{"manager": "x"}]},
             "spec": {"hard": {"requests.nvidia.com/gpu": "8"}},
             "status": {"hard": {"requests.nvidia.com/gpu": "8"}, "used": {"requests.nvidia.com/gpu": "8"}}}
    stored = strip_child(quota)
    assert stored["status"] == {"hard": {"requests.nvidia.com/gpu": "8"}, "used": {"requests.nvidia.com/gpu": "8"}}
    assert "spec" not in stored
