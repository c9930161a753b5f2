"""The Helm chart on the real local control plane: its RBAC is enough for the operator (and, in namespaces
mode, reaches no further than the listed namespaces).

The chart is rendered (``helm template``) and everything but the Deployment is applied server-side (there is no
container runtime here: kwok pods run nothing). The operator then runs as a process on this machine with the
chart's command, arguments and environment, authenticated as the chart's ServiceAccount by a real token
(TokenRequest; the Python client and Kopf ignore a kubeconfig's impersonation field ``as``), so every request
it makes is authorised by the chart's Roles alone. It must bring the
two-country example to Ready without a single 403, in both RBAC modes; in namespaces mode it must be refused
outside its namespaces.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sovereign_suite.components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from sovereign_suite.devcluster.cluster import bin_dir
from sovereign_suite.reconcile.kube import Kube

from ..helpers import ROOT
from .conftest import wait_for
from .operator_fixture import SUITES, Audit, OperatorProcess, condition, create_referenced_secrets, free_port, suite_doc

# The chart's ClusterRoles for people (bound in their namespaces), which the operator is never bound to.
USER_CLUSTER_ROLES = {TENANT_ADMIN_CLUSTER_ROLE, "sovereign-suite-finetune-editor", "sovereign-suite-finetune-viewer"}

CHART = ROOT / "charts" / "sovereign-suite-operator"


def helm_template(release: str, namespace: str, values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / f"{release}-values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run([str(bin_dir() / "helm"), "template", release, str(CHART), "--namespace", namespace,
                          "--include-crds", "-f", str(path)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kubectl(cluster, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True)
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def install(cluster, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply everything but the Deployment (server-side, as Argo CD and Flux do); return the Deployment."""
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    rest = [d for d in docs if d["kind"] != "Deployment"]
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", "-",
            stdin="".join("---\n" + yaml.safe_dump(d) for d in rest))
    return deployment


def token_kubeconfig(cluster, namespace: str, service_account: str, path: Path) -> Path:
    """The cluster's kubeconfig with the admin's credentials replaced by a token of the ServiceAccount."""
    token = kubectl(cluster, "-n", namespace, "create", "token", service_account, "--duration=2h").strip()
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    for user in cfg["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(cfg))
    return path


class ChartOperator(OperatorProcess):
    """``sovereign-suite run`` with the command, arguments and environment of the chart's Deployment, under the
    ServiceAccount's identity."""

    def __init__(self, cluster, deployment: dict[str, Any], kubeconfig: Path, name: str):
        super().__init__(cluster)
        self.container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.namespace = deployment["metadata"]["namespace"]  # the pod's, which the downward API would give
        self.kubeconfig = kubeconfig
        self.log_path = self.log_path.with_name(f"{cluster.name}-{name}.log")
        args = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in self.container["args"] if "=" in a}
        self.metrics_port = int(args["--metrics-port"])
        self.liveness_port = int(args["--liveness-port"])

    def start(self) -> None:
        command = self.container["command"]
        assert command[0] == "sovereign-suite"
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        env.update({e["name"]: self.value(e) for e in self.container["env"]})
        self.log_path.write_text("")
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / command[0]), *command[1:],
                                      *self.container["args"]],
                                     env=env, stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)

    def value(self, env: dict[str, Any]) -> str:
        """An environment variable's value as the kubelet would set it (a literal, or the pod's namespace)."""
        if "value" in env:
            return env["value"]
        assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, env
        return self.namespace

    def peak_rss_mib(self) -> float:
        """The process's peak resident memory (VmHWM), to compare with the chart's memory limit."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def forbidden_lines(self) -> list[str]:
        """Log lines about a refusal (not a timestamp's milliseconds: "08:48:20,403")."""
        return [line for line in self.log_path.read_text().splitlines()
                if "Forbidden" in line or re.search(r"(?<![\d,.:])403(?!\d)", line)]

    def healthz(self) -> int:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=5).status
        except OSError:
            return 0


def forbidden_requests(cluster, since: int, username: str) -> list[str]:
    """Requests of the operator (by user agent) that the API server refused with 403, from the audit log."""
    return [f"{ev['verb']} {ev.get('requestURI')}" for ev in Audit(cluster).events(since)
            if ev.get("user", {}).get("username") == username and ev.get("responseStatus", {}).get("code") == 403]


def wait_ready(kube: Kube, doc: dict[str, Any], operator: ChartOperator, timeout: float = 180) -> dict[str, Any]:
    def ready():
        refused = operator.forbidden_lines()
        assert not refused, "the operator was refused:\n" + "\n".join(refused[:5])
        s = kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])
        conditions = (s or {}).get("status", {}).get("conditions", [])
        refused = [c["message"] for c in conditions if c["reason"] == "Forbidden"]
        assert not refused, f"the operator was refused: {refused[0][:1000]}"
        stalled = condition(s, "Stalled") or {}
        assert stalled.get("status") != "True", f"the suite is Stalled: {stalled.get('message', '')[:1000]}"
        c = condition(s, "Ready")
        return s if c and c["status"] == "True" and s["status"].get("observedGeneration") == \
            s["metadata"]["generation"] else None

    return wait_for(ready, timeout=timeout, what=f"suite {doc['metadata']['name']} Ready")


def delete_suite(kube: Kube, doc: dict[str, Any]) -> None:
    kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
    wait_for(lambda: kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"]) is None,
             timeout=60, what="suite deleted (finalizer removed by the operator)")


def can(api: client.ApiClient, user: str, verb: str, resource: str, namespace: str | None = None,
        group: str = "", name: str | None = None) -> bool:
    """A SubjectAccessReview: may ``user`` (with the ServiceAccount groups) do this?"""
    review = client.AuthorizationV1Api(api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}",
                                          "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                        **({"namespace": namespace} if namespace else {}),
                                        **({"name": name} if name else {})}}})
    return bool(review.status.allowed)


@pytest.fixture()
def release(core, cluster):
    """A release namespace enforcing Pod Security "restricted"; its cluster-scoped RBAC is removed afterwards."""
    name = f"r{uuid.uuid4().hex[:6]}"
    ns = f"{name}-system"
    core.create_namespace({"metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    yield name, ns
    rbac = client.RbacAuthorizationV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    for role in rbac.list_cluster_role(label_selector=f"app.kubernetes.io/instance={name}").items:
        rbac.delete_cluster_role(role.metadata.name)
    for binding in rbac.list_cluster_role_binding(label_selector=f"app.kubernetes.io/instance={name}").items:
        rbac.delete_cluster_role_binding(binding.metadata.name)
    core.delete_namespace(ns)


def assert_pod_meets_restricted(core, deployment: dict[str, Any], namespace: str) -> None:
    """The operator's pod is admitted by Pod Security "restricted" (enforced on the release namespace)."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admission-check", "namespace": namespace},
           "spec": deployment["spec"]["template"]["spec"]}
    core.create_namespaced_pod(namespace, pod, dry_run="All")


def test_cluster_scope_rbac_is_enough_for_the_example(cluster, api, core, namespace, release, tmp_path):
    name, release_ns = release
    docs = helm_template(name, release_ns, {"operator": {"driftInterval": 3, "metricsPort": free_port(),
                                                         "livenessPort": free_port()}}, tmp_path)
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
                     "PodDisruptionBudget", "PriorityClass", "Role", "RoleBinding", "Service", "ServiceAccount"]
    deployment = install(cluster, docs)
    assert_pod_meets_restricted(core, deployment, release_ns)
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{release_ns}:{sa}"
    operator = ChartOperator(cluster, deployment, token_kubeconfig(cluster, release_ns, sa, tmp_path / "sa.yaml"),
                             "install-cluster")
    kube = Kube(api)
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace)
    mark = Audit(cluster).mark()
    operator.start()
    try:
        wait_for(lambda: operator.healthz() == 200, timeout=60, what="Kopf's liveness endpoint /healthz")
        kube.apply(doc, "test")
        suite = wait_ready(kube, doc, operator)
        assert [t["country"] for t in suite["status"]["tenants"]] == ["FR", "DE"]
        # leader election (the chart's default): the ServiceAccount created and renews its Lease
        lease = kube.get("coordination.k8s.io/v1", "Lease", f"{name}-sovereign-suite-operator", release_ns)
        assert lease and lease["spec"]["holderIdentity"] and operator.metric("sovereign_suite_leader") == 1
        renewed = lease["spec"]["renewTime"]
        wait_for(lambda: kube.get("coordination.k8s.io/v1", "Lease", f"{name}-sovereign-suite-operator",
                                  release_ns)["spec"]["renewTime"] != renewed, timeout=10, what="Lease renewed")
        # a few drift passes on the converged suite, then the deletion (cleanup runs under the same identity)
        passes = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
        wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= passes + 2,
                 timeout=60, what="two drift passes")
        delete_suite(kube, doc)
        assert operator.proc.poll() is None, "the operator exited"
        limit = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        assert limit.endswith("Mi")
        peak = operator.peak_rss_mib()
        print(f"operator peak RSS with the two-country example: {peak:.0f} MiB (chart limit {limit})")
        assert peak < int(limit[:-2])
    finally:
        operator.stop()
    # the audit log sees this identity's requests, so the empty list below can fail
    assert any(ev.get("user", {}).get("username") == user for ev in Audit(cluster).events(mark))
    assert forbidden_requests(cluster, mark, user) == []
    assert operator.forbidden_lines() == []
    for ns in (f"{doc['metadata']['name']}-fr", f"{doc['metadata']['name']}-de"):  # Retain keeps them
        core.delete_namespace(ns)


def test_namespaces_scope_serves_listed_namespaces_only(cluster, api, core, namespace, release, tmp_path):
    name, release_ns = release
    suite_name = f"n{uuid.uuid4().hex[:6]}"
    tenants = [f"{suite_name}-fr", f"{suite_name}-de"]
    values = {"rbac": {"scope": "namespaces"}, "watchNamespaces": [namespace],
              "tenants": [{"suite": suite_name, "suiteNamespace": namespace, "countries": ["FR", "DE"]}],
              "operator": {"driftInterval": 3, "metricsPort": free_port(), "livenessPort": free_port()}}
    docs = helm_template(name, release_ns, values, tmp_path)
    # cluster-wide reads only (the tenant-admin ClusterRole is bound to the tenants' admin groups, the FineTune
    # roles to administrations in their own namespaces, never to the operator)
    assert not [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] not in USER_CLUSTER_ROLES
                and any(set(r["verbs"]) - {"get", "list", "watch"} for r in d["rules"])], \
        "namespaces mode: cluster-wide reads only"
    deployment = install(cluster, docs)
    assert f"--namespace={namespace}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{release_ns}:{sa}"

    # what the identity may do: the listed namespaces, and nothing in any other
    other = f"{namespace}-other"
    core.create_namespace({"metadata": {"name": other}})
    try:
        assert can(api, user, "patch", "deployments", tenants[0], group="apps")
        assert can(api, user, "delete", "namespaces", tenants[1], name=tenants[1])
        assert can(api, user, "patch", "sovereignsuites/status", namespace, group="sovereignsuite.io")
        assert not can(api, user, "get", "secrets", other)
        assert not can(api, user, "list", "secrets")  # every namespace
        assert not can(api, user, "patch", "deployments", other, group="apps")
        assert not can(api, user, "create", "namespaces")
        assert not can(api, user, "delete", "namespaces", other, name=other)
        # and a direct request with its token is refused
        sa_kubeconfig = token_kubeconfig(cluster, release_ns, sa, tmp_path / "sa.yaml")
        sa_core = client.CoreV1Api(config.new_client_from_config(config_file=str(sa_kubeconfig)))
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_secret(other)
        assert denied.value.status == 403

        operator = ChartOperator(cluster, deployment, sa_kubeconfig, "install-namespaces")
        kube = Kube(api)
        create_referenced_secrets(core, namespace)
        create_referenced_secrets(core, other)
        doc = suite_doc("two-countries", namespace, name=suite_name)
        ignored = suite_doc("two-countries", other, name=suite_name)
        mark = Audit(cluster).mark()
        operator.start()
        try:
            kube.apply(doc, "test")
            kube.apply(ignored, "test")
            suite = wait_ready(kube, doc, operator)
            assert [t["namespace"] for t in suite["status"]["tenants"]] == tenants
            # the suite outside watchNamespaces is not served: no status, no finalizer, no tenant
            passes = operator.metric("sovereign_suite_reconcile_total", trigger="timer")
            wait_for(lambda: operator.metric("sovereign_suite_reconcile_total", trigger="timer") >= passes + 2,
                     timeout=60, what="two drift passes")
            outside = kube.get(*SUITES, suite_name, other)
            assert "status" not in outside and not outside["metadata"].get("finalizers")
            delete_suite(kube, doc)
            assert operator.proc.poll() is None, "the operator exited"
            assert any(ev.get("user", {}).get("username") == user for ev in Audit(cluster).events(mark))
            assert forbidden_requests(cluster, mark, user) == []
            assert operator.forbidden_lines() == []

            # a suite whose tenants the chart does not list: refused, and the suite says so
            unlisted = suite_doc("two-countries", namespace, name=f"u{suite_name}")
            kube.apply(unlisted, "test")

            def degraded():
                s = kube.get(*SUITES, unlisted["metadata"]["name"], namespace)
                return condition(s, "Degraded") if (condition(s, "Degraded") or {}).get("status") == "True" else None

            cond = wait_for(degraded, timeout=60, what="the unlisted suite Degraded")
            assert cond["reason"] == "Forbidden" and f"u{suite_name}-fr" in cond["message"], cond
            assert forbidden_requests(cluster, mark, user)  # the API server refused it indeed
            delete_suite(kube, unlisted)
        finally:
            operator.stop()
            kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": ignored["metadata"]})
    finally:
        core.delete_namespace(other)
        for ns in tenants:
            try:
                core.delete_namespace(ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def argo_cd_module() -> Path:
    """Argo CD's Go module, which `make tools` downloads to build hack/tools/luahealth (its CRDs come with it)."""
    proc = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-cd/v3"],
                          cwd=ROOT / "hack" / "tools" / "luahealth", capture_output=True, text=True,
                          env=dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off"))
    if proc.returncode != 0 or not proc.stdout.strip():
        msg = f"Argo CD's Go module is not in the module cache (`make tools`): {proc.stderr.strip()[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return Path(proc.stdout.strip())


def test_argocd_manifests_pass_argo_cds_own_schema(cluster, api, core):
    """manifests/gitops/argocd, validated by the API server against Argo CD's Application CRD (strict)."""
    crd = argo_cd_module() / "manifests" / "crds" / "application-crd.yaml"
    kubectl(cluster, "apply", "--server-side", "-f", str(crd))
    crds = client.ApiextensionsV1Api(api)
    wait_for(lambda: any(c.type == "Established" and c.status == "True" for c in
                         crds.read_custom_resource_definition("applications.argoproj.io").status.conditions or []),
             timeout=60, what="Argo CD's Application CRD established")
    try:
        core.create_namespace({"metadata": {"name": "argocd"}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    built = subprocess.run([str(bin_dir() / "kubectl"), "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                            str(ROOT / "manifests" / "gitops" / "argocd")], capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert sorted(d["kind"] for d in docs) == ["Application", "Application", "ConfigMap"]
    out = kubectl(cluster, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=built.stdout)
    assert out.count("serverside-applied (server dry run)") == 3, out
    # the validation is real: a misspelt field is refused
    app = next(d for d in docs if d["kind"] == "Application")
    app["spec"]["syncPolicy"]["automatic"] = app["spec"]["syncPolicy"].pop("automated")
    proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), "apply",
                           "--server-side", "--dry-run=server", "-f", "-"], input=yaml.safe_dump(app),
                          capture_output=True, text=True)
    assert proc.returncode != 0, proc.stdout
    assert ".spec.syncPolicy.automatic: field not declared in schema" in proc.stderr, proc.stderr
