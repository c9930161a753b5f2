"""What the hub can do in a member with the real token `cloud join` gives it (issue 22, item 2), and `cloud join`
/ `leave` with two clouds on one member and after an operator upgrade (item 13). Hub: the session's cluster; the
member: a cluster holding Germany's simulated cloud (``cluster up --countries DE``), as in test_cloud_join.py.

The tests read the hub's credential only from what join wrote on the hub (the NationalCloud's kubeconfig Secret),
and find its identity and role in the member by a TokenReview, so they say the same of any version of join."""

from __future__ import annotations

import base64
import uuid

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sovereign_suite.reconcile.kube import Kube

from .conftest import wait_for
from .operator_fixture import condition, create_referenced_secrets, get_suite, suite_doc, wait_ready
from .test_cloud_join import cli, member  # noqa: F401 - member: fixture

CLOUDS = ("sovereignsuite.io/v1alpha1", "NationalCloud")
SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")
RBAC = "rbac.authorization.k8s.io/v1"
TENANT = {"sovereignsuite.io/suite": "confined", "pod-security.kubernetes.io/enforce": "restricted"}


def refused(call) -> int:
    with pytest.raises(ApiException) as err:
        call()
    return err.value.status


def admin(member) -> Kube:
    return Kube(config.new_client_from_config(config_file=str(member.kubeconfig)), user_agent="sovereign-suite-tests")


def new_cloud(kube, prefix: str) -> str:
    """A NationalCloud on the hub, a copy of the hub's own de-c5 (which other tests use locally)."""
    name = f"{prefix}-{uuid.uuid4().hex[:4]}"
    kube.create({"apiVersion": CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": name},
                 "spec": kube.get(*CLOUDS, "de-c5")["spec"]})
    return name


def joined(cluster, member, cloud: str) -> None:  # noqa: F811 - member: the fixture's value
    done = cli("cloud", "join", cloud, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert done.returncode == 0, done.stderr


def left(cluster, member, cloud: str) -> str:  # noqa: F811
    done = cli("cloud", "leave", cloud, "--member-kubeconfig", str(member.kubeconfig), kubeconfig=cluster.kubeconfig)
    assert done.returncode == 0, done.stderr
    return done.stdout


def hub_credential(kube, cloud: str) -> tuple[client.ApiClient, str]:
    """The member client the hub's operator would build for ``cloud``, and its token."""
    ref = kube.get(*CLOUDS, cloud)["spec"]["kubeconfigSecretRef"]
    doc = yaml.safe_load(base64.b64decode(kube.get("v1", "Secret", ref["name"], ref["namespace"])["data"][ref["key"]]))
    return config.new_client_from_config_dict(doc), doc["users"][0]["user"]["token"]


def identity(member, token: str) -> str:  # noqa: F811
    review = client.AuthenticationV1Api(config.new_client_from_config(config_file=str(member.kubeconfig))
                                        ).create_token_review({"apiVersion": "authentication.k8s.io/v1",
                                                               "kind": "TokenReview", "spec": {"token": token}})
    assert review.status.authenticated, review.status.error
    return review.status.user.username


def roles_of(m: Kube, user: str) -> list[str]:
    """The ClusterRoles bound cluster-wide to a ServiceAccount user name."""
    _, _, ns, name = user.split(":")
    return [b["roleRef"]["name"] for b in m.list(RBAC, "ClusterRoleBinding")
            if any(s.get("kind") == "ServiceAccount" and (s.get("namespace"), s.get("name")) == (ns, name)
                   for s in b.get("subjects") or [])]


def rolebinding(namespace: str, role: str, subject: dict) -> dict:
    return {"apiVersion": RBAC, "kind": "RoleBinding",
            "metadata": {"name": f"rb-{uuid.uuid4().hex[:5]}", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [subject]}


def test_the_hubs_token_reaches_only_tenant_namespaces(cluster, member, kube):  # noqa: F811
    m = admin(member)
    cloud = new_cloud(kube, "de-confined")
    joined(cluster, member, cloud)
    as_hub, token = hub_credential(kube, cloud)
    user = identity(member, token)
    _, _, sa_ns, sa_name = user.split(":")
    core, rbac = client.CoreV1Api(as_hub), client.RbacAuthorizationV1Api(as_hub)
    suffix = uuid.uuid4().hex[:5]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"platform-{suffix}"},
              "stringData": {"password": "not-the-hubs"}}
    m.create({**secret, "metadata": {**secret["metadata"], "namespace": "kube-system"}})
    other = f"platform-{suffix}"  # a namespace the member's platform team made
    m.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}})
    tenant = f"confined-{suffix}"
    try:
        # the control: what the tenants need works with this token (a tenant namespace, objects in it)
        core.create_namespace({"metadata": {"name": tenant, "labels": TENANT}})
        core.create_namespaced_config_map(tenant, {"metadata": {"name": "c"}, "data": {"a": "b"}})
        core.create_namespaced_secret(tenant, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        assert core.list_node().items  # GPU capacity is read from the member's own nodes

        # reads: no Secret outside the tenant namespaces, none cluster-wide
        assert refused(lambda: core.read_namespaced_secret(secret["metadata"]["name"], "kube-system")) == 403
        assert refused(lambda: core.list_namespaced_secret("kube-system")) == 403
        assert refused(lambda: core.list_secret_for_all_namespaces()) == 403
        # nor through a write's answer (a patch or a delete answers with the object)
        assert refused(lambda: core.patch_namespaced_secret(secret["metadata"]["name"], "kube-system",
                                                            {"metadata": {"labels": {"x": "y"}}})) == 403
        assert refused(lambda: core.delete_namespaced_secret(secret["metadata"]["name"], "kube-system")) == 403
        assert refused(lambda: core.create_namespaced_secret("kube-system", {"metadata": {"name": "x"}})) == 403

        # namespaces that are not a tenant's: not changed, not labelled into reach, not deleted, none created
        for ns in ("kube-system", other):
            assert refused(lambda: core.patch_namespace(ns, {"metadata": {"labels": {"x": "y"}}})) == 403
            assert refused(lambda: core.patch_namespace(ns, {"metadata": {"labels": TENANT}})) == 403
        assert refused(lambda: core.delete_namespace(other)) == 403
        assert refused(lambda: core.create_namespace({"metadata": {"name": f"plain-{suffix}"}})) == 403
        privileged = {**TENANT, "pod-security.kubernetes.io/enforce": "privileged"}
        assert refused(lambda: core.create_namespace({"metadata": {"name": f"priv-{suffix}",
                                                                   "labels": privileged}})) == 403
        assert refused(lambda: core.patch_namespace(tenant, {"metadata": {"labels": privileged}})) == 403
        # nothing written outside: objects of other namespaces, RoleBindings there, cluster-scoped objects
        assert refused(lambda: core.create_namespaced_config_map(other, {"metadata": {"name": "c"}})) == 403
        admins = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "some-admins"}
        for ns in (other, "kube-system"):
            assert refused(lambda: rbac.create_namespaced_role_binding(
                ns, rolebinding(ns, "sovereign-suite-tenant-admin", admins))) == 403
        assert refused(lambda: rbac.list_cluster_role()) == 403
        assert refused(lambda: core.delete_node("de-cpu-0")) == 403
        # in its tenant namespace: RoleBindings only to the roles it needs, the Secret reader only for itself
        assert refused(lambda: rbac.create_namespaced_role_binding(tenant, rolebinding(tenant, "view", admins))) \
            == 403
        me = {"kind": "ServiceAccount", "name": sa_name, "namespace": sa_ns}
        assert refused(lambda: rbac.create_namespaced_role_binding(
            tenant, rolebinding(tenant, "sovereign-suite-member-secrets", admins))) == 403
        rbac.create_namespaced_role_binding(tenant, rolebinding(tenant, "sovereign-suite-tenant-admin", admins))
        rbac.create_namespaced_role_binding(tenant, rolebinding(tenant, "sovereign-suite-member-secrets", me))

        def reads_its_secret():
            try:
                return core.read_namespaced_secret("s", tenant)
            except ApiException as err:
                if err.status != 403:  # until the authorizer has seen the new binding
                    raise
                return None

        assert wait_for(reads_its_secret, 30, 0.3, "the Secret read in its tenant namespace").data["k"]
        core.delete_namespace(tenant)  # the hub may delete its own tenant namespace
    finally:
        left(cluster, member, cloud)
        kube.delete({"apiVersion": CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": cloud}})
        for ns in (tenant, other):
            m.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        m.delete({**secret, "metadata": {**secret["metadata"], "namespace": "kube-system"}})


def test_two_clouds_on_one_member_leave_one_at_a_time(cluster, member, kube):  # noqa: F811
    m = admin(member)
    first, second = new_cloud(kube, "de-one"), new_cloud(kube, "de-two")
    tenant = f"two-{uuid.uuid4().hex[:5]}"
    try:
        joined(cluster, member, first)
        joined(cluster, member, second)
        (one, _), (two, two_token) = hub_credential(kube, first), hub_credential(kube, second)
        two_user = identity(member, two_token)
        assert identity(member, hub_credential(kube, first)[1]) != two_user  # a credential each
        assert client.CoreV1Api(one).list_node().items and client.CoreV1Api(two).list_node().items
        # a tenant left in the member: its RoleBinding references the shared tenant-admin ClusterRole
        client.CoreV1Api(two).create_namespace({"metadata": {"name": tenant, "labels": TENANT}})
        client.RbacAuthorizationV1Api(two).create_namespaced_role_binding(tenant, rolebinding(
            tenant, "sovereign-suite-tenant-admin", {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                                     "name": "some-admins"}))

        left(cluster, member, first)
        with pytest.raises(ApiException) as revoked:
            client.CoreV1Api(one).list_node()
        assert revoked.value.status in (401, 403)
        # the other cloud keeps its token and its rights
        assert client.CoreV1Api(two).list_node().items
        client.CoreV1Api(two).create_namespaced_config_map(tenant, {"metadata": {"name": "still"}})
        assert kube.get(*CLOUDS, second)["spec"].get("kubeconfigSecretRef")

        out = left(cluster, member, second)
        with pytest.raises(ApiException) as revoked:
            client.CoreV1Api(two).list_node()
        assert revoked.value.status in (401, 403)
        # the last join gone: nothing is bound to its identity any more; the tenant-admin ClusterRole stays while
        # the tenant's RoleBinding references it
        assert roles_of(m, two_user) == []
        assert m.get(RBAC, "ClusterRole", "sovereign-suite-tenant-admin"), out
        assert "sovereign-suite-tenant-admin" in out
    finally:
        for cloud in (first, second):
            kube.delete({"apiVersion": CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": cloud}})
        m.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": tenant}})


def test_a_member_role_older_than_the_operator_asks_for_a_new_join(cluster, member, kube, core, operator,
                                                                   namespace):  # noqa: F811
    """A member role made by an older `cloud join` lacks a kind this operator version renders (here: the
    PodDisruptionBudgets taken out of it, then the operator restarted, as an upgrade does). The suite says to re-run `cloud join` for that cloud; doing so makes it
    Ready again, with the same token."""
    m = admin(member)
    cloud = new_cloud(kube, "de-older")
    joined(cluster, member, cloud)
    _, token = hub_credential(kube, cloud)
    create_referenced_secrets(core, namespace)
    doc = suite_doc("two-countries", namespace, patch={"deletionPolicy": "Delete", "components": {"docs": {
        "enabled": False}, "jitsi": {"enabled": False}}})
    doc["spec"]["tenants"] = [{"country": "DE", "cloud": cloud}]
    kube.create(doc)
    try:
        wait_ready(kube, doc, timeout=180)
        [role] = roles_of(m, identity(member, token))
        rules = m.get(RBAC, "ClusterRole", role)["rules"]
        older = [r for r in rules if "poddisruptionbudgets" not in r.get("resources", [])]
        assert older != rules
        m.merge_patch(RBAC, "ClusterRole", role, None, {"rules": older})
        operator.stop()  # the upgrade: a new operator process lists every kind it renders (an open watch would
        operator.start()  # go on until the API server ends it: RBAC is checked when a request starts)

        def asks_for_join():
            c = condition(get_suite(kube, doc), "Degraded")
            return c if c and c["status"] == "True" and c["reason"] == "ClusterForbidden" else None

        c = wait_for(asks_for_join, timeout=120, what="Degraded ClusterForbidden")
        assert "poddisruptionbudgets" in c["message"] and cloud in c["message"]
        assert f"re-run `sovereign-suite cloud join {cloud}" in c["message"]

        joined(cluster, member, cloud)  # the operator's upgrade done: join again
        assert m.get(RBAC, "ClusterRole", role)["rules"] == rules
        assert hub_credential(kube, cloud)[1] == token  # nothing rotated
        wait_ready(kube, doc, timeout=180)
    finally:
        kube.delete({"apiVersion": SUITES[0], "kind": SUITES[1], "metadata": doc["metadata"]})
        wait_for(lambda: get_suite(kube, doc) is None, timeout=120, what="suite deleted")
        left(cluster, member, cloud)
        kube.delete({"apiVersion": CLOUDS[0], "kind": "NationalCloud", "metadata": {"name": cloud}})
