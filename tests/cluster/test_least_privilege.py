"""The operator's token is refused what it no longer holds (issue 15, least privilege).

test_install.py proves the chart's RBAC is enough (the example Ready with the ServiceAccount's token, in both
modes, which includes creating the tenant-admin RoleBinding: Kubernetes' escalation check passes on "bind"
alone). Here, the other side, on the real API server: the rights only the tenant admins need, kinds nothing
renders, "bind" on any other role, and (namespaces mode) pods outside the tenant namespaces are refused, by
SubjectAccessReview and by real requests made with the ServiceAccount's token.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sovereign_suite.components.tenancy import TENANT_ADMIN_CLUSTER_ROLE

from .conftest import wait_for
from .test_install import can, helm_template, install, release, token_kubeconfig  # noqa: F401 - release: fixture


def binding(namespace: str, role: str, name: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "some-admins"}]}


def refused(call) -> int:
    with pytest.raises(ApiException) as err:
        call()
    return err.value.status


def test_cluster_mode_token_is_refused_what_it_no_longer_needs(cluster, api, core, namespace, release, tmp_path):
    name, release_ns = release
    docs = helm_template(name, release_ns, {}, tmp_path)
    deployment = install(cluster, docs)
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{release_ns}:{sa}"

    # what it holds (the control that the refusals below are about the rules, not a broken identity)
    assert can(api, user, "list", "pods")
    assert can(api, user, "patch", "deployments", namespace, group="apps")
    assert can(api, user, "bind", "clusterroles", namespace, group="rbac.authorization.k8s.io",
               name=TENANT_ADMIN_CLUSTER_ROLE)
    # what only the tenant admins needed, what nothing renders, and any other binding
    for verb, resource, group in (("get", "pods/log", ""), ("get", "pods", ""), ("delete", "pods", ""),
                                  ("list", "endpoints", ""), ("list", "events", ""), ("list", "replicasets", "apps"),
                                  ("create", "roles", "rbac.authorization.k8s.io"),
                                  ("create", "serviceaccounts", ""),
                                  ("create", "prometheusrules", "monitoring.coreos.com"),
                                  ("escalate", "clusterroles", "rbac.authorization.k8s.io")):
        assert not can(api, user, verb, resource, namespace, group=group), f"{verb} {resource}"
    assert not can(api, user, "bind", "clusterroles", namespace, group="rbac.authorization.k8s.io", name="admin")

    # real requests with the token
    sa_api = config.new_client_from_config(config_file=str(token_kubeconfig(cluster, release_ns, sa,
                                                                            tmp_path / "sa.yaml")))
    sa_core, sa_rbac = client.CoreV1Api(sa_api), client.RbacAuthorizationV1Api(sa_api)
    assert refused(lambda: sa_core.list_namespaced_service_account(namespace)) == 403
    assert refused(lambda: sa_core.list_namespaced_endpoints(namespace)) == 403
    assert refused(lambda: sa_rbac.list_namespaced_role(namespace)) == 403
    # binding the ClusterRole "admin" would grant what it does not hold: the escalation check refuses it
    status = refused(lambda: sa_rbac.create_namespaced_role_binding(namespace, binding(namespace, "admin", "x")))
    assert status == 403
    # the tenant-admin ClusterRole it may bind, without holding pods/log or pods delete itself
    made = sa_rbac.create_namespaced_role_binding(
        namespace, binding(namespace, TENANT_ADMIN_CLUSTER_ROLE, f"t{uuid.uuid4().hex[:6]}"))
    assert made.role_ref.name == TENANT_ADMIN_CLUSTER_ROLE
    # and it does give the group the tenant admins' rights (once the API server's RBAC authorizer, which reads
    # RoleBindings from its own watch cache, has seen the new one: a review right after the create may not)
    def alice_may_read_logs() -> bool:
        review = client.AuthorizationV1Api(api).create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "alice", "groups": ["some-admins"],
                     "resourceAttributes": {"verb": "get", "resource": "pods", "subresource": "log",
                                            "namespace": namespace}}})
        return bool(review.status.allowed)

    wait_for(alice_may_read_logs, 30, 0.3, "the tenant admins' group allowed pods/log through the binding")


def test_namespaces_mode_token_sees_no_pods_outside_its_tenants(cluster, api, core, namespace, release, tmp_path):
    name, release_ns = release
    suite = f"n{uuid.uuid4().hex[:6]}"
    tenants = [f"{suite}-fr"]
    values = {"rbac": {"scope": "namespaces"}, "watchNamespaces": [namespace],
              "tenants": [{"suite": suite, "suiteNamespace": namespace, "countries": ["FR"]}]}
    deployment = install(cluster, helm_template(name, release_ns, values, tmp_path))
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    user = f"system:serviceaccount:{release_ns}:{sa}"
    try:
        assert can(api, user, "list", "pods", tenants[0])
        assert can(api, user, "bind", "clusterroles", tenants[0], group="rbac.authorization.k8s.io",
                   name=TENANT_ADMIN_CLUSTER_ROLE)
        assert not can(api, user, "list", "pods")  # cluster-wide
        assert not can(api, user, "list", "pods", namespace)
        assert not can(api, user, "bind", "clusterroles", namespace, group="rbac.authorization.k8s.io",
                       name=TENANT_ADMIN_CLUSTER_ROLE)
        sa_core = client.CoreV1Api(config.new_client_from_config(
            config_file=str(token_kubeconfig(cluster, release_ns, sa, tmp_path / "sa.yaml"))))
        assert refused(lambda: sa_core.list_pod_for_all_namespaces()) == 403
        assert sa_core.list_namespaced_pod(tenants[0]).items == []
    finally:
        for ns in tenants:
            core.delete_namespace(ns)
