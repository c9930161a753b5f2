"""The upgrade test's checks can fail (tests/cluster/upgrade_checks.py): a write to an unchanged child, a pod
replaced under an unchanged template, a restart, are reported; a changed template or content excuses them."""

from __future__ import annotations

from tests.cluster.upgrade_checks import Snapshot, child_writes, content, digest

SA = "system:serviceaccount:ops:op"


def snapshot(children: dict, templates: dict, pods: dict) -> Snapshot:
    s = Snapshot.__new__(Snapshot)  # the fields a snapshot reads from the cluster, given here
    s.children, s.templates, s.pods = children, templates, pods
    return s


def test_content_ignores_status_and_bookkeeping_but_not_spec():
    obj = {"metadata": {"name": "a", "labels": {"x": "1"}, "resourceVersion": "1",
                        "annotations": {"deployment.kubernetes.io/revision": "1"}}, "spec": {"replicas": 1},
           "status": {"readyReplicas": 0}}
    same = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "9",
                                "annotations": {"deployment.kubernetes.io/revision": "2"}}, "status": {}}
    assert content(obj) == content(same)
    assert content(obj) != content({**obj, "spec": {"replicas": 2}})


def test_changed_children_and_disturbed_pods():
    dep = ("deployments", "t", "web")
    before = snapshot({dep: "a", ("configmaps", "t", "c"): "x"}, {dep: digest(1), ("statefulsets", "t", "db"): digest(2)},
                      {("t", "web-1"): ("u1", 0, dep), ("t", "db-0"): ("u2", 0, ("statefulsets", "t", "db"))})
    same = snapshot({dep: "a", ("configmaps", "t", "c"): "x"}, dict(before.templates), dict(before.pods))
    assert before.changed(same) == set() and before.disturbed_pods(same) == []
    restarted = snapshot(same.children, same.templates, {**same.pods, ("t", "db-0"): ("u2", 1, ("statefulsets", "t", "db"))})
    assert len(before.disturbed_pods(restarted)) == 1
    replaced = snapshot(same.children, same.templates, {("t", "web-1"): ("u9", 0, dep), ("t", "db-0"): same.pods[("t", "db-0")]})
    assert len(before.disturbed_pods(replaced)) == 1
    new_template = snapshot({**same.children, dep: "b"}, {**same.templates, dep: digest(3)}, replaced.pods)
    assert before.disturbed_pods(new_template) == [] and before.changed(new_template) == {dep}


def test_child_writes_keeps_the_operators_writes_in_the_tenants():
    def ev(verb, ns, user=SA, sub=None):
        return {"verb": verb, "user": {"username": user}, "userAgent": "sovereign-suite-operator/p_1",
                "requestReceivedTimestamp": "2026-12-03T10:00:00Z", "responseStatus": {"code": 200},
                "objectRef": {"resource": "configmaps", "namespace": ns, "name": "c", "subresource": sub}}

    events = [ev("patch", "t"), ev("get", "t"), ev("patch", "other"), ev("patch", "t", user="someone"),
              ev("patch", "t", sub="status")]
    written = child_writes(events, SA, ["t"])
    assert list(written) == [("configmaps", "t", "c")] and len(written[("configmaps", "t", "c")]) == 1
