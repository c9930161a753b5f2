"""The Helm chart, the install manifests generated from it, the GitOps manifests and the Dockerfile.

Runs the real helm (built by ``make tools``): ``helm lint``, ``helm template`` in both RBAC modes, the values
schema. The RBAC is checked against the code it serves (CHILD_KINDS, the kinds the templates produce, the
tenant-admin ClusterRole the operator binds); tests/cluster/test_install.py proves on a real API server that it
is enough, and that the operator's token is refused what it no longer holds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sovereign_suite.components.base import LABEL_SUITE, LABEL_SUITE_NS
from sovereign_suite.components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from sovereign_suite.members.rbac import plural
from sovereign_suite.reconcile.pipeline import CHILD_KINDS

from .helpers import K8S_SCHEMA_VERSION, ROOT, render_example

CHART = ROOT / "charts" / "sovereign-suite-operator"
INSTALL = ROOT / "manifests" / "install"
GITOPS = ROOT / "manifests" / "gitops"
MONITORING = ROOT / "manifests" / "monitoring"

NAMESPACES_MODE = {
    "rbac": {"scope": "namespaces"},
    "watchNamespaces": ["sovereign-suite"],
    "tenants": [{"suite": "eu-workplace", "suiteNamespace": "sovereign-suite", "countries": ["FR", "DE"]}],
}
EVERYTHING_ON = {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
                 "dashboard": {"enabled": True}}


@pytest.fixture(scope="module")
def helm() -> str:
    from sovereign_suite.devcluster.cluster import bin_dir

    try:
        path = bin_dir() / "helm"
    except Exception as err:  # noqa: BLE001 - the same rule as the cluster tests
        path, reason = None, str(err)
    if path is None or not path.exists():
        msg = f"helm is not built (`make tools`): {reason if path is None else path}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return str(path)


def run_helm(helm: str, *args: str, values: dict[str, Any] | None = None, tmp_path: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    extra: list[str] = []
    if values is not None:
        assert tmp_path is not None
        path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump(values))
        extra = ["-f", str(path)]
    return subprocess.run([helm, *args, *extra], capture_output=True, text=True)


def template(helm: str, tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    proc = run_helm(helm, "template", "sovereign-suite-operator", str(CHART), "--namespace", "sovereign-suite-system",
                    values=values or {}, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def allowed(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}


# ---- lint and render -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE, EVERYTHING_ON], ids=["cluster", "namespaces", "all-on"])
def test_helm_lint_strict(helm, tmp_path, values):
    proc = run_helm(helm, "lint", "--strict", str(CHART), values=values, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE, EVERYTHING_ON], ids=["cluster", "namespaces", "all-on"])
def test_rendered_objects_are_valid_kubernetes(helm, tmp_path, values):
    for doc in template(helm, tmp_path, values):
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # not in the Kubernetes schema (the Prometheus Operator's own)
        kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)


# The ClusterRoles the chart holds for people (bound in their namespaces), never for the operator.
FINETUNE_ROLES = {"sovereign-suite-finetune-editor", "sovereign-suite-finetune-viewer"}
USER_ROLES = {TENANT_ADMIN_CLUSTER_ROLE, *FINETUNE_ROLES}


def test_cluster_mode_objects(helm, tmp_path):
    docs = template(helm, tmp_path)
    assert sorted(d["kind"] for d in docs) == ["ClusterRole", "ClusterRole", "ClusterRole", "ClusterRole",
                                               "ClusterRoleBinding", "CustomResourceDefinition",
                                               "CustomResourceDefinition", "CustomResourceDefinition", "Deployment",
                                               "PodDisruptionBudget", "PriorityClass", "Role", "RoleBinding",
                                               "Service", "ServiceAccount"]
    binding = of_kind(docs, "ClusterRoleBinding")[0]
    sa = of_kind(docs, "ServiceAccount")[0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "sovereign-suite-system"}]
    assert binding["roleRef"]["name"] == "sovereign-suite-operator"
    assert sorted(r["metadata"]["name"] for r in of_kind(docs, "ClusterRole")) == sorted([
        "sovereign-suite-operator", *USER_ROLES])


def test_finetune_roles_give_an_administration_finetunes_only(helm, tmp_path):
    """docs/llm-finetuning.md, "Who may do what": bound in an administration's namespace, the editor role writes
    FineTunes there and nothing else (no SovereignSuite, no Secret); both aggregate into Kubernetes' own roles."""
    roles = {r["metadata"]["name"]: r for r in of_kind(template(helm, tmp_path), "ClusterRole")}
    editor, viewer = roles["sovereign-suite-finetune-editor"], roles["sovereign-suite-finetune-viewer"]
    assert {(g, res) for rule in editor["rules"] for g in rule["apiGroups"] for res in rule["resources"]} == {
        ("sovereignsuite.io", "finetunes"), ("sovereignsuite.io", "finetunes/status")}
    (status_rule,) = [r for r in editor["rules"] if r["resources"] == ["finetunes/status"]]
    assert status_rule["verbs"] == ["get"]  # the status is the operator's
    assert set(viewer["rules"][0]["verbs"]) == {"get", "list", "watch"}
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_the_fine_tuning_priority_class_is_below_serving_and_never_preempts(helm, tmp_path):
    """Training pods run at this class (tests/components/test_finetune.py checks the Job names it); serving pods
    have none (priority 0)."""
    (pc,) = of_kind(template(helm, tmp_path), "PriorityClass")
    assert pc["metadata"]["name"] == "sovereign-suite-fine-tuning"
    assert pc["value"] < 0 and pc["preemptionPolicy"] == "Never" and pc["globalDefault"] is False


def test_deployment_is_restricted_and_probed(helm, tmp_path):
    docs = template(helm, tmp_path, {"operator": {"driftInterval": 17, "livenessPort": 8181}})
    dep = of_kind(docs, "Deployment")[0]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert c["command"] == ["sovereign-suite", "run"]
    assert "--liveness-port=8181" in c["args"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert {"name": "liveness", "containerPort": 8181, "protocol": "TCP"} in c["ports"]
    assert {"name": "SOVEREIGN_SUITE_DRIFT_INTERVAL", "value": "17"} in c["env"]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} == pod["securityContext"]["seccompProfile"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    # the Dockerfile's user is the chart's
    assert f"USER {pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" in \
        (ROOT / "Dockerfile").read_text()


# ---- replicas, leader election, disruption budget --------------------------------------------------------
@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_two_replicas_elect_a_leader_on_a_lease_they_may_replace_in_their_namespace(helm, tmp_path, values):
    from sovereign_suite.cli import build_parser
    from sovereign_suite.reconcile.runner import leader_settings

    docs = template(helm, tmp_path, {**values, "leaderElection": {"leaseDuration": 12, "renewDeadline": 7,
                                                                  "retryPeriod": 1.5}})
    dep = of_kind(docs, "Deployment")[0]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert dep["spec"]["replicas"] == 2
    # the chart's arguments are the operator's: parsed by its own parser into its settings
    settings = leader_settings(build_parser().parse_args(["run", *c["args"]]))
    assert settings == {"leader_elect": True, "lease_name": "sovereign-suite-operator", "lease_namespace": "",
                        "lease_duration": 12, "renew_deadline": 7, "retry_period": 1.5}
    # the Lease's namespace is the operator's own (SOVEREIGN_SUITE_OPERATOR_NAMESPACE from the pod)
    assert {"name": "SOVEREIGN_SUITE_OPERATOR_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    (role,) = [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "sovereign-suite-system"
    assert allowed(role["rules"], "coordination.k8s.io", "leases") == {"create", "get", "update"}
    assert all(r.get("resourceNames") == ["sovereign-suite-operator"] for r in role["rules"] if r["verbs"] != ["create"])
    (binding,) = [b for b in of_kind(docs, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]]
    sa = of_kind(docs, "ServiceAccount")[0]
    assert binding["metadata"]["namespace"] == "sovereign-suite-system"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "sovereign-suite-system"}]
    # no rule anywhere else grants leases (the operator touches no other Lease)
    assert not [r for d in docs if d["kind"] in ("Role", "ClusterRole") and d is not role for r in d["rules"]
                if "leases" in r["resources"]]


def test_sharded_replicas_get_the_shards_flag_and_may_list_and_delete_leases_in_their_namespace_only(helm, tmp_path):
    from sovereign_suite.cli import build_parser
    from sovereign_suite.reconcile.runner import leader_settings

    docs = template(helm, tmp_path, {"replicaCount": 3, "sharding": {"enabled": True, "shards": 6},
                                     "leaderElection": {"enabled": False, "leaseDuration": 12, "renewDeadline": 7,
                                                        "retryPeriod": 1.5}})
    dep = of_kind(docs, "Deployment")[0]
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert dep["spec"]["replicas"] == 3 and dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert "--leader-elect" not in c["args"]
    assert leader_settings(build_parser().parse_args(["run", *c["args"]])) == {
        "shards": 6, "lease_name": "sovereign-suite-operator", "lease_namespace": "", "lease_duration": 12,
        "renew_deadline": 7, "retry_period": 1.5}
    (role,) = [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "sovereign-suite-system"
    assert allowed(role["rules"], "coordination.k8s.io", "leases") == {"create", "get", "list", "update", "delete"}
    assert not [r for d in docs if d["kind"] == "ClusterRole" for r in d["rules"] if "leases" in r["resources"]]


def test_disruption_budget_keeps_one_replica_and_spreads_them(helm, tmp_path):
    docs = template(helm, tmp_path)
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    dep = of_kind(docs, "Deployment")[0]
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    # one replica: no budget (nothing to keep), no anti-affinity; the user's affinity replaces the default
    one = template(helm, tmp_path, {"replicaCount": 1})
    assert not of_kind(one, "PodDisruptionBudget") and "affinity" not in of_kind(one, "Deployment")[0]["spec"][
        "template"]["spec"]
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "ops", "operator": "Exists"}]}]}}}
    assert of_kind(template(helm, tmp_path, {"affinity": mine}), "Deployment")[0]["spec"]["template"]["spec"][
        "affinity"] == mine


def test_without_leader_election_one_replica_recreated_and_no_lease_rights(helm, tmp_path):
    docs = template(helm, tmp_path, {"replicaCount": 1, "leaderElection": {"enabled": False}})
    dep = of_kind(docs, "Deployment")[0]
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert not [a for a in dep["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--leader")]
    assert not [r for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]
                if "leases" in r["resources"]]


def test_pull_mode_install_names_its_local_clouds_and_push_mode_can_read_member_kubeconfigs(helm, tmp_path):
    # pull mode (one install per member): the operator is told which clouds this cluster is
    (c,) = of_kind(template(helm, tmp_path, {"localClouds": ["de-c5"]}), "Deployment")[0]["spec"]["template"][
        "spec"]["containers"]
    assert "--local-cloud=de-c5" in c["args"]
    (c,) = of_kind(template(helm, tmp_path), "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert not any(a.startswith("--local-cloud") for a in c["args"])
    # push mode (the hub): the member kubeconfig Secrets are watched by name in their namespace
    rules = next(r for r in of_kind(template(helm, tmp_path), "ClusterRole")
                 if r["metadata"]["name"] == "sovereign-suite-operator")["rules"]
    assert {"get", "list", "watch"} <= allowed(rules, "", "secrets")


def test_namespaces_mode_watches_and_creates_only_the_listed_namespaces(helm, tmp_path):
    docs = template(helm, tmp_path, NAMESPACES_MODE)
    args = of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=sovereign-suite"]
    # the tenant namespaces the chart creates are those the operator renders for the suite
    rendered = render_example("two-countries").manifests
    want = {o["metadata"]["name"]: o["metadata"]["labels"] for o in rendered if o["kind"] == "Namespace"}
    namespaces = of_kind(docs, "Namespace")
    assert sorted(n["metadata"]["name"] for n in namespaces) == sorted(want)
    for n in namespaces:
        labels = n["metadata"]["labels"]
        assert labels[LABEL_SUITE] == want[n["metadata"]["name"]][LABEL_SUITE]
        assert labels[LABEL_SUITE_NS] == want[n["metadata"]["name"]][LABEL_SUITE_NS]
        assert n["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    roles = [r for r in of_kind(docs, "Role") if not r["metadata"]["name"].endswith("-leader-election")]
    # push mode: the member kubeconfig Secrets are read in the release namespace only (reconcile/targets.py)
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(["sovereign-suite", "sovereign-suite-system",
                                                                         *want])
    (member,) = [r for r in roles if r["metadata"]["namespace"] == "sovereign-suite-system"]
    assert member["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]
    pull = template(helm, tmp_path, {**NAMESPACES_MODE, "localClouds": ["fr-secnumcloud"]})
    assert "sovereign-suite-system" not in [r["metadata"]["namespace"] for r in of_kind(pull, "Role")
                                            if not r["metadata"]["name"].endswith("-leader-election")]
    for binding in of_kind(docs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "sovereign-suite-system"
    # cluster-wide: reads only, and no pods (those of the tenant namespaces only)
    (cluster_role,) = [r for r in of_kind(docs, "ClusterRole") if r["metadata"]["name"] not in USER_ROLES]
    assert {v for r in cluster_role["rules"] for v in r["verbs"]} <= {"get", "list", "watch"}
    assert not allowed(cluster_role["rules"], "", "pods")


# ---- RBAC: least privilege, derived from the code --------------------------------------------------------
@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE, EVERYTHING_ON], ids=["cluster", "namespaces", "all-on"])
def test_no_wildcard_anywhere(helm, tmp_path, values):
    roles = [d for d in template(helm, tmp_path, values) if d["kind"] in ("Role", "ClusterRole")]
    assert roles
    for role in roles:
        if role["metadata"]["name"] in FINETUNE_ROLES:  # people's: they write their FineTunes (test above)
            assert all(rule["apiGroups"] == ["sovereignsuite.io"] for rule in role["rules"])
            continue
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(key, []), f"{role['kind']} {role['metadata']['name']}: {key} {rule}"
            assert not rule.get("nonResourceURLs"), rule
            if "update" in rule["verbs"]:  # only the leader Lease, by name (leader/lease.py: client-go's Update)
                assert rule == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                "resourceNames": ["sovereign-suite-operator"], "verbs": ["get", "update"]}, rule
                continue
            assert not {"escalate", "impersonate", "update", "deletecollection"} & set(rule["verbs"]), rule
            if "bind" in rule["verbs"]:  # only the tenant-admin ClusterRole, named
                assert rule == {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                                "verbs": ["bind"], "resourceNames": [TENANT_ADMIN_CLUSTER_ROLE]}, rule


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_listing_a_namespaces_content_is_the_only_wildcard_and_opt_in(helm, tmp_path, values):
    """rbac.listNamespaceContent: list (only) every namespaced kind, for the check before a tenant namespace is
    deleted (reconcile/namespace_content.py)."""
    scope = {**values, "rbac": {**values.get("rbac", {}), "listNamespaceContent": True}}
    roles = [d for d in template(helm, tmp_path, scope) if d["kind"] in ("Role", "ClusterRole")]
    wild = [r for d in roles for r in d["rules"] if "*" in r["resources"] or "*" in r["apiGroups"]]
    assert wild and all(r == {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]} for r in wild)


def operator_rules(docs: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Every rule that applies to the operator in ``namespace`` (cluster-wide ones included)."""
    rules = [r for d in of_kind(docs, "ClusterRole") for r in d["rules"]]
    return rules + [r for d in of_kind(docs, "Role") if d["metadata"]["namespace"] == namespace for r in d["rules"]]


def test_child_kinds_are_the_kinds_the_renderers_produce():
    """CHILD_KINDS (and so the RBAC) holds what the templates and renderers produce, plus the Secrets the operator writes
    itself (generated passwords, copies of referenced Secrets): no kind that nothing renders."""
    templates = ROOT / "operator" / "sovereign_suite" / "components"
    produced = {m for p in templates.rglob("*.j2") for m in re.findall(r"^kind: (\w+)$", p.read_text(), re.M)}
    # and the renderers that build objects in Python (components/backup, the Barman Cloud objects of postgres)
    produced |= {m for p in templates.rglob("*.py") for m in re.findall(r'"kind": "(\w+)"', p.read_text())}
    assert {k for _, k in CHILD_KINDS} == produced | {"Secret"}


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_rbac_covers_every_child_kind(helm, tmp_path, values):
    """The pipeline lists, reads, applies (patch, create when absent) and deletes every kind it renders."""
    docs = template(helm, tmp_path, values)
    rules = operator_rules(docs, "eu-workplace-fr")
    for api_version, kind in CHILD_KINDS:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        verbs = allowed(rules, group, plural(kind))
        chart_creates_it = kind == "Namespace" and values.get("rbac", {}).get("scope") == "namespaces"
        need = {"get", "list", "patch", "delete"} | (set() if chart_creates_it else {"create"})
        assert need <= verbs, f"{kind}: has {sorted(verbs)}, needs {sorted(need)}"


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_the_operator_may_create_the_rotation_key_in_a_suites_namespace(helm, tmp_path, values):
    """The rotation key's Secret (reconcile/rotation_key.py) is created in the suite's namespace, and read there."""
    rules = operator_rules(template(helm, tmp_path, values), "sovereign-suite")
    assert {"get", "create"} <= allowed(rules, "", "secrets")


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_tenant_admin_is_bound_not_held(helm, tmp_path, values):
    """The rendered RoleBinding references the chart's ClusterRole, which the operator may bind (Kubernetes'
    escalation check) without holding what it grants."""
    docs = template(helm, tmp_path, values)
    operator = [d for d in docs if d["metadata"]["name"] not in USER_ROLES]
    rules = operator_rules(operator, "eu-workplace-fr")
    (binding,) = [o for o in render_example("two-countries").manifests
                  if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == "eu-workplace-fr"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": TENANT_ADMIN_CLUSTER_ROLE}
    assert [r for r in rules if "bind" in r["verbs"]] == [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
         "resourceNames": [TENANT_ADMIN_CLUSTER_ROLE]}]
    (admin,) = [d for d in of_kind(docs, "ClusterRole") if d["metadata"]["name"] == TENANT_ADMIN_CLUSTER_ROLE]
    assert allowed(admin["rules"], "", "pods/log") == {"get", "list", "watch"}
    # what only the tenant admins needed is gone from the operator
    for group, resource in (("", "pods/log"), ("", "endpoints"), ("apps", "replicasets"),
                            ("rbac.authorization.k8s.io", "roles")):
        assert not allowed(rules, group, resource), resource
    assert allowed(rules, "", "pods") == {"list", "watch"}
    assert not allowed(rules, "", "events") - {"create"}


def test_cloud_join_creates_the_charts_tenant_admin_role_in_a_member(helm, tmp_path):
    """`sovereign-suite cloud join` creates the same ClusterRole in a member cluster (members/rbac.py)."""
    from sovereign_suite.members.rbac import TENANT_ADMIN_RULES

    (admin,) = [d for d in of_kind(template(helm, tmp_path), "ClusterRole")
                if d["metadata"]["name"] == TENANT_ADMIN_CLUSTER_ROLE]
    assert admin["rules"] == TENANT_ADMIN_RULES


def test_tenant_admin_role_can_be_left_to_another_release(helm, tmp_path):
    docs = template(helm, tmp_path, {"rbac": {"tenantAdminRole": {"create": False}}})
    assert [d["metadata"]["name"] for d in of_kind(docs, "ClusterRole")] == ["sovereign-suite-operator"]
    assert of_kind(docs, "PriorityClass") == []  # cluster-wide and fixed-named, as the roles


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_rbac_grants_nothing_the_code_does_not_use(helm, tmp_path, values):
    """Every resource the operator may touch is a child kind, or one of the reads and writes listed in
    docs/install.md: no ServiceAccounts, PrometheusRules or Roles, which nothing renders."""
    docs = [d for d in template(helm, tmp_path, values) if d["metadata"]["name"] not in USER_ROLES]
    granted = {(g, res) for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]
               for g in r["apiGroups"] for res in r["resources"]}
    children = {(v.rsplit("/", 1)[0] if "/" in v else "", plural(k)) for v, k in CHILD_KINDS}
    others = {("sovereignsuite.io", "sovereignsuites"), ("sovereignsuite.io", "sovereignsuites/status"),
              ("sovereignsuite.io", "finetunes"), ("sovereignsuite.io", "finetunes/status"),
              ("sovereignsuite.io", "nationalclouds"), ("apiextensions.k8s.io", "customresourcedefinitions"),
              ("", "events"), ("", "nodes"), ("", "pods"), ("rbac.authorization.k8s.io", "clusterroles"),
              ("coordination.k8s.io", "leases")}
    assert granted - children - others == set()
    assert not {("", "serviceaccounts"), ("monitoring.coreos.com", "prometheusrules")} & granted


@pytest.mark.parametrize("values", [{}, NAMESPACES_MODE], ids=["cluster", "namespaces"])
def test_rbac_for_suites_clouds_and_kopf(helm, tmp_path, values):
    docs = [d for d in template(helm, tmp_path, values) if d["metadata"]["name"] not in USER_ROLES]
    rules = operator_rules(docs, "sovereign-suite")
    assert allowed(rules, "sovereignsuite.io", "sovereignsuites") == {"get", "list", "watch", "patch"}
    assert allowed(rules, "sovereignsuite.io", "sovereignsuites/status") == {"patch"}
    assert allowed(rules, "sovereignsuite.io", "finetunes") == {"get", "list", "watch", "patch"}
    assert allowed(rules, "sovereignsuite.io", "finetunes/status") == {"patch"}
    assert allowed(rules, "sovereignsuite.io", "nationalclouds") == {"get", "list", "watch"}
    assert {"create"} <= allowed(rules, "", "events")
    assert {"list", "watch"} <= allowed(rules, "apiextensions.k8s.io", "customresourcedefinitions")
    assert {"list"} <= allowed(rules, "", "nodes")


# ---- values schema and template checks -------------------------------------------------------------------
@pytest.mark.parametrize("values, field, problem", [
    ({"replicaCount": 2, "leaderElection": {"enabled": False}}, "/replicaCount", "maximum"),
    ({"leaderElection": {"leaseDuration": 10.5}}, "/leaderElection/leaseDuration", "integer"),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, "/podDisruptionBudget/maxUnavailable", "minimum"),
    ({"rbac": {"scope": "everything"}}, "/rbac/scope", "cluster"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0", "pattern"),
    ({"tenants": [{"suite": "s", "suiteNamespace": "n", "countries": ["france"]}]}, "/tenants/0/countries/0",
     "pattern"),
    ({"operator": {"driftInterval": 0}}, "/operator/driftInterval", "minimum"),
    ({"localClouds": ["DE_C5"]}, "/localClouds/0", "pattern"),
    ({"typo": True}, "typo", "additional"),
    ({"sharding": {"enabled": True}}, "/leaderElection/enabled", "false"),  # leader election is on by default
    ({"sharding": {"enabled": True, "shards": 0}, "leaderElection": {"enabled": False}}, "/sharding/shards",
     "minimum"),
])
def test_schema_rejects_bad_values(helm, tmp_path, values, field, problem):
    proc = run_helm(helm, "template", "x", str(CHART), values=values, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert field in proc.stderr and problem in proc.stderr, proc.stderr


@pytest.mark.parametrize("values, message", [
    ({"rbac": {"scope": "namespaces"}}, "watchNamespaces: must list at least one namespace"),
    ({**NAMESPACES_MODE, "tenants": []}, "tenants: must list the suites' tenants"),
    ({**NAMESPACES_MODE, "watchNamespaces": ["other"]},
     'tenants: suite eu-workplace is in namespace "sovereign-suite", which is not in watchNamespaces'),
    ({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
     "metrics.serviceMonitor.enabled: needs metrics.service.enabled"),
])
def test_inconsistent_values_fail_with_the_field(helm, tmp_path, values, message):
    proc = run_helm(helm, "template", "x", str(CHART), values=values, tmp_path=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


# ---- copies and generated files --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "crds").glob("*.yaml")))
def test_chart_crds_are_the_repository_crds(name):
    assert (CHART / "files" / "crds" / name).read_bytes() == (ROOT / "crds" / name).read_bytes(), \
        "run `make manifests`"


def test_chart_has_no_other_crds():
    assert sorted(p.name for p in (CHART / "files" / "crds").iterdir()) == \
        sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert not (CHART / "crds").exists(), "crds/ is installed once and never upgraded by Helm: files/crds/"


def test_crds_are_templates_kept_by_helm(helm, tmp_path):
    """The CRDs are release objects (upgraded and rolled back with it), exactly crds/ plus the chart's labels and
    helm.sh/resource-policy: keep (neither uninstall nor a rollback deletes them); crds.keep=false drops the
    annotation, crds.install=false the CRDs."""
    rendered = {d["metadata"]["name"]: d for d in of_kind(template(helm, tmp_path), "CustomResourceDefinition")}
    committed = {d["metadata"]["name"]: d for d in (yaml.safe_load(p.read_text()) for p in (ROOT / "crds").glob("*.yaml"))}
    assert rendered.keys() == committed.keys()
    for name, crd in rendered.items():
        assert crd["spec"] == committed[name]["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    loose = of_kind(template(helm, tmp_path, {"crds": {"install": True, "keep": False}}), "CustomResourceDefinition")
    assert len(loose) == len(committed) and all("annotations" not in d["metadata"] for d in loose)
    assert of_kind(template(helm, tmp_path, {"crds": {"install": False, "keep": True}}),
                   "CustomResourceDefinition") == []


@pytest.mark.parametrize("name", ["prometheusrule.yaml", "dashboard.json"])
def test_chart_monitoring_files_are_the_repository_files(name):
    assert (CHART / "files" / name).read_bytes() == (MONITORING / name).read_bytes(), "run `make manifests`"


def test_prometheus_rule_and_dashboard_render_their_sources(helm, tmp_path):
    docs = template(helm, tmp_path, EVERYTHING_ON)
    (rule,) = of_kind(docs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
    (dashboard,) = of_kind(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert list(dashboard["data"].values()) == [(MONITORING / "dashboard.json").read_text()]


def test_service_monitor_job_is_the_job_the_alerts_expect(helm, tmp_path):
    docs = template(helm, tmp_path, EVERYTHING_ON)
    (monitor,) = of_kind(docs, "ServiceMonitor")
    (service,) = of_kind(docs, "Service")
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    exprs = " ".join(r["expr"] for g in yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())["spec"]
                     ["groups"] for r in g["rules"])
    assert set(re.findall(r'job="([^"]+)"', exprs)) == {job}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_install_manifests_are_up_to_date(helm):
    proc = subprocess.run([str(ROOT / "hack" / "gen-manifests.sh"), "--check"], capture_output=True, text=True,
                          env=dict(os.environ, SOVEREIGN_SUITE_BIN=str(Path(helm).parent)))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_check_fails_when_a_manifest_is_stale(helm, tmp_path):
    """The check above can fail: in a copy of the repository with an edited install manifest, it does."""
    for part in ("hack", "crds", "charts", "manifests"):
        shutil.copytree(ROOT / part, tmp_path / part, symlinks=True)
    path = tmp_path / "manifests" / "install" / "deployment.yaml"
    path.write_text(path.read_text().replace("replicas: 2", "replicas: 3"))
    proc = subprocess.run([str(tmp_path / "hack" / "gen-manifests.sh"), "--check"], capture_output=True, text=True,
                          env=dict(os.environ, SOVEREIGN_SUITE_BIN=str(Path(helm).parent)))
    assert proc.returncode == 1 and "out of date: manifests/install" in proc.stdout, proc.stdout + proc.stderr


def test_install_kustomization_builds_the_chart(helm, tmp_path):
    kubectl = Path(helm).parent / "kubectl"
    built = subprocess.run([str(kubectl), "kustomize", str(INSTALL)], capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    key = lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])  # noqa: E731
    chart = {key(d) for d in template(helm, tmp_path)} | {
        ("CustomResourceDefinition", "", yaml.safe_load(p.read_text())["metadata"]["name"])
        for p in (ROOT / "crds").glob("*.yaml")} | {("Namespace", "", "sovereign-suite-system")}
    assert {key(d) for d in docs} == chart


# ---- GitOps and image ------------------------------------------------------------------------------------
def load_dir(path: Path) -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(path.glob("*.yaml"))}


def test_argocd_application_and_health_check():
    docs = load_dir(GITOPS / "argocd")
    app = docs["operator-application.yaml"]
    assert app["kind"] == "Application" and app["spec"]["source"]["path"] == "manifests/install"
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    suites = docs["suites-application.yaml"]["spec"]["source"]
    include = suites["directory"]["include"].strip("{}").split(",")
    assert all((ROOT / suites["path"] / name).exists() for name in include)
    (generator,) = docs["kustomization.yaml"]["configMapGenerator"]
    assert generator["name"] == "argocd-cm"
    (entry,) = generator["files"]
    key, path = entry.split("=", 1)
    assert key == "resource.customizations.health.sovereignsuite.io_SovereignSuite"
    assert (GITOPS / "argocd" / path).resolve() == (ROOT / "manifests" / "argocd" / "health.lua")
    assert (ROOT / "manifests" / "argocd" / "health.lua").exists()


def test_argocd_kustomization_references_the_health_script(helm):
    kubectl = Path(helm).parent / "kubectl"
    built = subprocess.run([str(kubectl), "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                            str(GITOPS / "argocd")], capture_output=True, text=True, check=True)
    (cm,) = [d for d in yaml.safe_load_all(built.stdout) if d and d["kind"] == "ConfigMap"]
    assert cm["metadata"] == {"name": "argocd-cm", "namespace": "argocd",
                              "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"}}
    assert cm["data"] == {"resource.customizations.health.sovereignsuite.io_SovereignSuite":
                          (ROOT / "manifests" / "argocd" / "health.lua").read_text()}


def test_flux_kustomizations_wait_for_the_operator_and_the_suites():
    docs = load_dir(GITOPS / "flux")
    operator, suites = docs["operator.yaml"], docs["suites.yaml"]
    assert operator["spec"]["path"] == "./manifests/install" and operator["spec"]["wait"] is True
    assert (ROOT / operator["spec"]["path"]).is_dir()
    assert suites["spec"]["dependsOn"] == [{"name": operator["metadata"]["name"]}]
    assert {(h["apiVersion"], h["kind"]) for h in suites["spec"]["healthChecks"]} == {
        ("sovereignsuite.io/v1alpha1", "SovereignSuite")}
    # the expressions are those of docs/gitops.md, which tests/test_gitops.py evaluates with Flux's own code
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "gitops.md").read_text(), re.S)
    (documented,) = [yaml.safe_load(b) for b in blocks if "healthCheckExprs" in b and "kind: Kustomization" in b]
    assert suites["spec"]["healthCheckExprs"] == documented["spec"]["healthCheckExprs"]
    source = docs["gitrepository.yaml"]
    assert operator["spec"]["sourceRef"] == suites["spec"]["sourceRef"] == {
        "kind": source["kind"], "name": source["metadata"]["name"]}
    assert sorted(docs["kustomization.yaml"]["resources"]) == sorted(n for n in docs if n != "kustomization.yaml")


def test_dockerfile_is_multi_stage_non_root_and_pinned():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, re.M)
    assert len(stages) == 2 and stages[0][1] == "build"
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    final = text.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=build /opt/sovereign-suite /opt/sovereign-suite" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)
    assert re.search(r"^USER [1-9]\d*:[1-9]\d*$", final, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1:ignored.index("*") + 6] == ["!pyproject.toml", "!README.md", "!LICENSE",
                                                                      "!image/", "!operator/"]
