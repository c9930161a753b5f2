"""What `cloud join` gives the hub in a member (issue 22, items 2 and 13), as pure data: the hub's cluster-wide
role reads no Secret, binds only the two roles the operator's RoleBindings name, and every cloud's objects have
names of their own (leave of one never deletes another's). tests/cluster/test_member_confinement.py proves the
same on a real member with the real token."""

from __future__ import annotations

from sovereign_suite.members import join, names
from sovereign_suite.members.policy import policy_objects
from sovereign_suite.members.rbac import member_rules, secret_reader_binding
from sovereign_suite.reconcile.pipeline import CHILD_KINDS


def _grants(rules, verb, resource, group=""):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
               and not r.get("resourceNames") for r in rules)


def test_the_hubs_cluster_wide_role_reads_no_secret_and_still_writes_every_child_kind():
    rules = member_rules()
    for verb in ("get", "list", "watch"):
        assert not _grants(rules, verb, "secrets")
    for verb in ("create", "patch", "delete"):  # confined to tenant namespaces by the admission policy
        assert _grants(rules, verb, "secrets")
    for api_version, kind in CHILD_KINDS:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        resource = {"NetworkPolicy": "networkpolicies", "Ingress": "ingresses"}.get(kind, kind.lower() + "s")
        assert _grants(rules, "patch", resource, group), kind
    binds = [r for r in rules if "bind" in r["verbs"]]
    assert binds == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
                      "resourceNames": ["sovereign-suite-tenant-admin", names.SECRET_READER_ROLE]}]
    assert not any("*" in r["verbs"] or "*" in r["resources"] or "escalate" in r["verbs"] for r in rules)


def test_two_clouds_joined_to_one_member_share_only_what_leave_counts_the_users_of():
    a = {(o["kind"], o["metadata"]["name"]) for o in join.cloud_objects("fr-a")}
    b = {(o["kind"], o["metadata"]["name"]) for o in join.cloud_objects("fr-b")}
    assert a and not a & b
    shared = {(o["kind"], o["metadata"]["name"]) for o in join.shared_objects()}
    assert not shared & (a | b)
    assert all(names.LABEL not in o["metadata"]["labels"] for o in join.shared_objects())


def test_the_policy_matches_only_its_clouds_serviceaccount_and_the_reader_binding_names_it():
    vap, binding = policy_objects("fr-a", {})
    assert vap["spec"]["matchConditions"][0]["expression"] == \
        "request.userInfo.username == \"system:serviceaccount:sovereign-suite-system:sovereign-suite-hub-fr-a\""
    assert vap["spec"]["failurePolicy"] == "Fail" and binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["policyName"] == vap["metadata"]["name"]
    rb = secret_reader_binding("fr-a", "s-fr", {"sovereignsuite.io/suite": "s"})
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "sovereign-suite-hub-fr-a",
                               "namespace": "sovereign-suite-system"}]
    assert rb["roleRef"]["name"] == names.SECRET_READER_ROLE and rb["metadata"]["namespace"] == "s-fr"


def test_join_installs_the_fine_tuning_priority_class_the_chart_installs_in_the_hub():
    """The training Job names it (components/finetune); a member without it refuses the training pod. join's copy
    is the chart's (templates/priorityclass-finetune.yaml), its Helm lines aside."""
    from pathlib import Path

    import yaml

    from sovereign_suite.components import finetune

    text = (Path(__file__).resolve().parent.parent / "charts/sovereign-suite-operator/templates/"
            "priorityclass-finetune.yaml").read_text()
    chart = yaml.safe_load("\n".join(line for line in text.splitlines() if "{{" not in line))
    (pc,) = [o for o in join.shared_objects() if o["kind"] == "PriorityClass"]
    assert pc["metadata"]["name"] == chart["metadata"]["name"] == finetune.PRIORITY_CLASS
    assert {k: v for k, v in pc.items() if k != "metadata"} == {k: v for k, v in chart.items() if k != "metadata"}
    assert pc["value"] < 0 and pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False
