"""``sovereign-suite cloud join|leave CLOUD``: give the hub's operator (least-privilege) access to a member
cluster, or take it back — like ``argocd cluster add`` or ``karmadactl join``.

join, in the member: a namespace ``sovereign-suite-system``, a ServiceAccount ``sovereign-suite-hub``, a ClusterRole
with only what the tenants' objects need (members/rbac.py) bound to it, the tenant-admin ClusterRole the tenants'
RoleBindings reference (as the chart creates it in the hub), and a long-lived token Secret (type
``kubernetes.io/service-account-token``, filled by the member's own token controller); on the hub: a Secret
``<cloud>-kubeconfig`` (key ``kubeconfig``: the member's API server, its CA, the token; labelled
``sovereignsuite.io/member-credentials: "true"``) and the NationalCloud's ``spec.cluster: member`` and
``spec.kubeconfigSecretRef`` pointing at it. The NationalCloud must exist on the hub first: nothing is written
anywhere otherwise. Running join again rotates nothing and changes nothing that is already right.

leave: the hub's Secret and reference go first, with ``spec.cluster: local`` (the hub stops using the member), then
the member's objects.
"""

from __future__ import annotations

import base64
import sys
import time
from typing import Any

import yaml
from kubernetes import client as k8s_client, config as k8s_config

from ..api.secret_refs import MEMBER_CREDENTIALS_LABEL
from ..reconcile.kube import ApiError, Kube
from ..components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from .rbac import TENANT_ADMIN_RULES, member_rules

MANAGER = "sovereign-suite-cloud-join"
MEMBER_NAMESPACE = "sovereign-suite-system"
SERVICE_ACCOUNT = "sovereign-suite-hub"
TOKEN_SECRET = "sovereign-suite-hub-token"
CLUSTER_ROLE = "sovereign-suite-member"
LABEL = "sovereignsuite.io/member-of"
CLOUDS = ("sovereignsuite.io/v1alpha1", "NationalCloud")


class JoinError(Exception):
    pass


def kube_for(path: str | None) -> tuple[Kube, k8s_client.Configuration]:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
    return Kube(k8s_client.ApiClient(cfg), user_agent=MANAGER), cfg


def member_objects(cloud: str) -> list[dict[str, Any]]:
    labels = {LABEL: cloud, "app.kubernetes.io/managed-by": MANAGER}
    meta = {"namespace": MEMBER_NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MEMBER_NAMESPACE, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": CLUSTER_ROLE, "labels": labels}, "rules": member_rules()},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": TENANT_ADMIN_CLUSTER_ROLE, "labels": labels}, "rules": TENANT_ADMIN_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": CLUSTER_ROLE, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": MEMBER_NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
         "metadata": {"name": TOKEN_SECRET, **meta, "annotations": {"kubernetes.io/service-account.name":
                                                                    SERVICE_ACCOUNT}}},
    ]


def member_kubeconfig(cloud: str, server: str, ca_b64: str, token: str) -> str:
    """The kubeconfig the hub keeps for the member: its API server and CA, the ServiceAccount's token."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": cloud,
        "clusters": [{"name": cloud, "cluster": {"server": server, "certificate-authority-data": ca_b64}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": cloud, "context": {"cluster": cloud, "user": SERVICE_ACCOUNT}}],
    }, sort_keys=True)


def _wait_token(member: Kube, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = member.get("v1", "Secret", TOKEN_SECRET, MEMBER_NAMESPACE) or {}
        data = secret.get("data") or {}
        if data.get("token") and data.get("ca.crt"):
            return data
        time.sleep(0.3)
    raise JoinError(f"the member's token controller did not fill Secret {MEMBER_NAMESPACE}/{TOKEN_SECRET} "
                    f"within {timeout:.0f} s")


def join(cloud: str, member_path: str, hub_path: str | None, secret_namespace: str) -> str:
    hub, _ = kube_for(hub_path)
    member, member_cfg = kube_for(member_path)
    if hub.get(*CLOUDS, cloud) is None:
        raise JoinError(f"NationalCloud {cloud!r} not found on the hub: create it first (nothing was changed)")
    for obj in member_objects(cloud):
        member.apply(obj, MANAGER)
    data = _wait_token(member)
    token = base64.b64decode(data["token"]).decode()
    kubeconfig = member_kubeconfig(cloud, member_cfg.host, data["ca.crt"], token)
    secret_name = f"{cloud}-kubeconfig"
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": secret_namespace}}, MANAGER)
    # labelled as a member's credentials: the operator reads no other Secret as a kubeconfig (reconcile/targets.py)
    hub.apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": secret_name, "namespace": secret_namespace,
                            "labels": {LABEL: cloud, "app.kubernetes.io/managed-by": MANAGER,
                                       MEMBER_CREDENTIALS_LABEL: "true"}},
               "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}}, MANAGER)
    hub.merge_patch(*CLOUDS, cloud, None, {"spec": {"cluster": "member", "kubeconfigSecretRef": {
        "name": secret_name, "namespace": secret_namespace, "key": "kubeconfig"}}})
    return f"{secret_namespace}/{secret_name}"


def leave(cloud: str, member_path: str, hub_path: str | None) -> None:
    hub, _ = kube_for(hub_path)
    current = hub.get(*CLOUDS, cloud)
    ref = ((current or {}).get("spec") or {}).get("kubeconfigSecretRef")
    if ref:
        # said explicitly: the cloud is the hub's own cluster from now on. A tenant still applied in the member is
        # not moved while the member may hold its data, unless its suite's deletionPolicy is Delete
        # (reconcile/moves.py)
        hub.merge_patch(*CLOUDS, cloud, None, {"spec": {"cluster": "local", "kubeconfigSecretRef": None}})
        hub.delete({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": ref["name"],
                                                                        "namespace": ref["namespace"]}})
    member, _ = kube_for(member_path)
    # the binding first: the token stops working at once, whatever happens next
    for obj in reversed(member_objects(cloud)):
        if obj["kind"] == "Namespace":
            live = member.get("v1", "Namespace", MEMBER_NAMESPACE) or {}
            if ((live.get("metadata") or {}).get("labels") or {}).get(LABEL) != cloud:
                continue  # not made by join for this cloud: not ours to delete
        member.delete(obj)


def main(args) -> int:
    try:
        if args.action == "join":
            where = join(args.cloud, args.member_kubeconfig, args.hub_kubeconfig, args.secret_namespace)
            print(f"joined: NationalCloud {args.cloud} -> kubeconfig Secret {where} on the hub")
        else:
            leave(args.cloud, args.member_kubeconfig, args.hub_kubeconfig)
            print(f"left: NationalCloud {args.cloud} no longer has a member cluster")
    except (JoinError, ApiError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
