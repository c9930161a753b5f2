"""A storage change the API server cannot apply (issue 22, item 11), on the real local control plane: the size of a
running embedded Postgres (its StatefulSet's volumeClaimTemplates are immutable).

Before: the apply's 422 made the pass Stalled with InvalidChild, and a pass that did not apply everything pruned
nothing, so every later change of the suite waited for good. Now the change is held back with a condition naming
the field, and everything else of the same spec change is applied and pruned.
"""

from __future__ import annotations

from .conftest import wait_for
from .operator_fixture import SUITES, condition, create_referenced_secrets, get_suite, suite_doc, wait_ready

FIELD = "spec.components.matrix.postgres.storage"


def test_a_new_size_for_a_running_embedded_postgres_is_held_back_and_the_rest_converges(operator, kube, core,
                                                                                         namespace):
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={"components": {"docs": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "FR", "cloud": "fr-secnumcloud"}]
    kube.create(doc)
    wait_ready(kube, doc, timeout=180)
    name = doc["metadata"]["name"]
    fr = f"{name}-fr"
    sts = kube.get("apps/v1", "StatefulSet", "matrix-postgres", fr)
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert kube.get("apps/v1", "Deployment", "jitsi-web", fr) is not None

    # one spec change: the database's size (cannot be applied), its memory limit (can), Element's replicas (another
    # object), and Jitsi switched off (its objects must be pruned)
    kube.merge_patch(*SUITES, name, namespace, {"spec": {"components": {
        "matrix": {"elementReplicas": 1, "postgres": {"storage": "20Gi", "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "3Gi"}}}},
        "jitsi": {"enabled": False}}}})

    # the rest of the same change is applied: pruning goes on (before: nothing was pruned after the 422), the other
    # objects follow the spec
    wait_for(lambda: kube.get("apps/v1", "Deployment", "jitsi-web", fr) is None
             and kube.get("apps/v1", "Deployment", "jitsi-jvb", fr) is None, timeout=60,
             what="Jitsi's Deployments pruned while the storage change is held back")
    wait_for(lambda: kube.get("apps/v1", "Deployment", "element-web", fr)["spec"]["replicas"] == 1, timeout=30,
             what="Element Web scaled to 1")

    def stalled():
        c = condition(get_suite(kube, doc), "Stalled")
        return c if c and c["status"] == "True" and c["reason"] == "ImmutableStorage" else None

    c = wait_for(stalled, timeout=60, what="Stalled ImmutableStorage")
    assert FIELD in c["message"] and "10Gi" in c["message"] and "20Gi" in c["message"], c["message"]
    ready = condition(get_suite(kube, doc), "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ImmutableStorage"

    def postgres_follows():
        s = kube.get("apps/v1", "StatefulSet", "matrix-postgres", fr)
        limits = [c["resources"]["limits"]["memory"] for c in s["spec"]["template"]["spec"]["containers"]
                  if c["name"] == "postgres"]
        return s if limits == ["3Gi"] else None

    sts = wait_for(postgres_follows, timeout=30, what="the StatefulSet's template follows the spec")
    # ... but its claim template is the one it was created with
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"

    # the size set back: nothing held, Ready again
    kube.merge_patch(*SUITES, name, namespace, {"spec": {"components": {"matrix": {"postgres": {"storage": "10Gi"}}}}})
    suite = wait_ready(kube, doc, timeout=120)
    assert condition(suite, "Stalled")["status"] == "False"
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")
