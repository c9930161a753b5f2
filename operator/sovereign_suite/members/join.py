"""``sovereign-suite cloud join|leave CLOUD``: give the hub's operator access to a member cluster, confined to the
tenant namespaces the suites own there, or take it back — like ``argocd cluster add`` or ``karmadactl join``.

join, in the member (names: members/names.py): for this cloud, a ServiceAccount, a ClusterRole with only what the
tenants' objects need (members/rbac.py) bound to it, a ValidatingAdmissionPolicy confining its writes to tenant
namespaces (members/policy.py), and a long-lived token Secret (type ``kubernetes.io/service-account-token``,
filled by the member's own token controller); shared by every cloud joined to that member, the namespace
``sovereign-suite-system``, the tenant-admin ClusterRole the tenants' RoleBindings reference (as the chart creates
it in the hub), the Secret-reader ClusterRole the operator binds itself to in each tenant namespace, and the
PriorityClass of FineTunes' training pods (as the chart creates it in the hub: without it the member's API server
refuses every training pod). Before it
hands the token to the hub, join checks that the member enforces the policy (a dry-run namespace create as the
ServiceAccount must be refused by it). On the hub: a Secret ``<cloud>-kubeconfig`` (key ``kubeconfig``: the
member's API server, its CA, the token; labelled ``sovereignsuite.io/member-credentials: "true"``) and the
NationalCloud's ``spec.cluster: member`` and ``spec.kubeconfigSecretRef`` pointing at it. The
NationalCloud must exist on the hub first: nothing is written anywhere otherwise.

Running join again rotates nothing and brings the role and the policy to what this version of the operator needs
(after an upgrade that adds a child kind, the operator asks for exactly that: reconcile/targets.py).

leave: the hub's Secret and reference go first, with ``spec.cluster: local`` (the hub stops using the member), then this cloud's binding (its
token loses every right at once), role, policy, token and ServiceAccount. Another cloud's objects are never
touched; the shared ClusterRoles stay while another join or any RoleBinding (a tenant left in the member) still
uses them, the PriorityClass while another join or any pod at that class (a training run left in the member)
does, and the namespace while another join lives in it.
"""

from __future__ import annotations

import base64
import sys
import time
from typing import Any

import yaml
from kubernetes import client as k8s_client, config as k8s_config
from kubernetes.client.rest import ApiException

from ..api.secret_refs import MEMBER_CREDENTIALS_LABEL
from ..components.finetune import PRIORITY_CLASS
from ..components.tenancy import TENANT_ADMIN_CLUSTER_ROLE
from ..reconcile.kube import ApiError, Kube
from . import names
from .names import LABEL, MANAGER, MEMBER_NAMESPACE
from .policy import RESTRICTED, WITH_PRIVILEGED, policy_objects
from .rbac import SECRET_READER_RULES, TENANT_ADMIN_RULES, member_rules

CLOUDS = ("sovereignsuite.io/v1alpha1", "NationalCloud")
RBAC = "rbac.authorization.k8s.io/v1"
VAP = "admissionregistration.k8s.io/v1"
SCHEDULING = "scheduling.k8s.io/v1"
SHARED_LABELS = {"app.kubernetes.io/managed-by": MANAGER}


class JoinError(Exception):
    pass


def kube_for(path: str | None) -> tuple[Kube, k8s_client.Configuration]:
    cfg = k8s_client.Configuration()
    k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
    return Kube(k8s_client.ApiClient(cfg), user_agent=MANAGER), cfg


def shared_objects() -> list[dict[str, Any]]:
    """What every join to one member shares (fixed names: what the operator writes in tenant namespaces names them)."""
    return [
        {"apiVersion": RBAC, "kind": "ClusterRole",
         "metadata": {"name": TENANT_ADMIN_CLUSTER_ROLE, "labels": SHARED_LABELS}, "rules": TENANT_ADMIN_RULES},
        {"apiVersion": RBAC, "kind": "ClusterRole",
         "metadata": {"name": names.SECRET_READER_ROLE, "labels": SHARED_LABELS}, "rules": SECRET_READER_RULES},
        fine_tuning_priority_class(),
    ]


def fine_tuning_priority_class() -> dict[str, Any]:
    """The class the training Jobs name (components/finetune PRIORITY_CLASS), as the chart's
    templates/priorityclass-finetune.yaml defines it in the hub (tests/test_member_rights.py compares them): below
    serving pods (no class, priority 0) and never preempting, so a training pod waits for a free GPU and a serving
    replica may evict it."""
    return {"apiVersion": SCHEDULING, "kind": "PriorityClass",
            "metadata": {"name": PRIORITY_CLASS, "labels": SHARED_LABELS},
            "value": -100, "preemptionPolicy": "Never", "globalDefault": False,
            "description": "Fine-tuning runs of the Sovereign Suite: below serving, never preempting."}


def cloud_objects(cloud: str, levels: tuple[str, ...] = RESTRICTED) -> list[dict[str, Any]]:
    """This cloud's own objects, in the order join writes them: the policy before the rights it confines, the
    token last (leave deletes in the reverse order: the rights go first)."""
    labels = {LABEL: cloud, **SHARED_LABELS}
    sa, role = names.service_account(cloud), names.cluster_role(cloud)
    meta = {"namespace": MEMBER_NAMESPACE, "labels": labels}
    return [
        *policy_objects(cloud, labels, levels),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, **meta}},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": role, "labels": labels},
         "rules": member_rules()},
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": role, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": MEMBER_NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
         "metadata": {"name": names.token_secret(cloud), **meta,
                      "annotations": {"kubernetes.io/service-account.name": sa}}},
    ]


def legacy_objects() -> list[dict[str, Any]]:
    """What a join before per-cloud names made (one set for every cloud of a member), rights first."""
    meta = {"namespace": MEMBER_NAMESPACE}
    return [
        {"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": names.LEGACY_CLUSTER_ROLE}},
        {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": names.LEGACY_CLUSTER_ROLE}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": names.LEGACY_TOKEN_SECRET, **meta}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": names.LEGACY_SERVICE_ACCOUNT, **meta}},
    ]


def member_kubeconfig(cloud: str, server: str, ca_b64: str, token: str) -> str:
    """The kubeconfig the hub keeps for the member: its API server and CA, the ServiceAccount's token."""
    user = names.service_account(cloud)
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": cloud,
        "clusters": [{"name": cloud, "cluster": {"server": server, "certificate-authority-data": ca_b64}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cloud, "context": {"cluster": cloud, "user": user}}],
    }, sort_keys=True)


def _wait_token(member: Kube, cloud: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        secret = member.get("v1", "Secret", names.token_secret(cloud), MEMBER_NAMESPACE) or {}
        data = secret.get("data") or {}
        if data.get("token") and data.get("ca.crt"):
            return data
        time.sleep(0.3)
    raise JoinError(f"the member's token controller did not fill Secret {MEMBER_NAMESPACE}/"
                    f"{names.token_secret(cloud)} within {timeout:.0f} s")


def _wait_policy(member_cfg: k8s_client.Configuration, cloud: str, timeout: float = 30) -> None:
    """Wait until the member's API server enforces the policy: a dry-run create of an unlabelled namespace, made as
    the hub's ServiceAccount (impersonated: join holds the member's admin credentials), must be refused by it.
    Policies take effect once the API server's informer has them, a moment after they are written."""
    api = k8s_client.ApiClient(member_cfg)
    api.set_default_header("Impersonate-User", names.username(cloud))
    core = k8s_client.CoreV1Api(api)
    probe = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"sovereign-suite-probe-{cloud}"[:63]}}
    deadline, last = time.monotonic() + timeout, "allowed"
    while time.monotonic() < deadline:
        try:
            core.create_namespace(probe, dry_run="All")
        except ApiException as err:
            last = f"{err.status} {err.reason}: {(err.body or '')[:300]}"
            if err.status == 403 and names.policy(cloud) in (err.body or ""):
                return
        time.sleep(0.5)
    raise JoinError(f"the member does not enforce ValidatingAdmissionPolicy {names.policy(cloud)} after "
                    f"{timeout:.0f} s (last answer to a namespace create as the hub: {last}); nothing was given to "
                    "the hub")


def _ensure_namespace(member: Kube, timeout: float = 120) -> None:
    """Create the shared namespace unless it exists (never taken over: leave deletes it only when it carries the
    label set here). One a last leave is deleting is waited for: nothing can be created in it meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        live = member.get("v1", "Namespace", MEMBER_NAMESPACE)
        if live is None:
            member.create({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": MEMBER_NAMESPACE, "labels": SHARED_LABELS}})
            return
        if not live["metadata"].get("deletionTimestamp"):
            return
        if time.monotonic() > deadline:
            raise JoinError(f"namespace {MEMBER_NAMESPACE} in the member is still being deleted after "
                            f"{timeout:.0f} s (nothing was changed)")
        time.sleep(0.5)


def _other_joins(member: Kube, cloud: str) -> list[str]:
    """The other clouds joined to this member (their ServiceAccounts in the shared namespace)."""
    sas = member.list("v1", "ServiceAccount", f"app.kubernetes.io/managed-by={MANAGER}", MEMBER_NAMESPACE)
    others = {(s["metadata"].get("labels") or {}).get(LABEL) for s in sas}
    return sorted(o for o in others if o and o != cloud)


def _referenced(member: Kube, role: str) -> bool:
    return any((b.get("roleRef") or {}).get("kind") == "ClusterRole" and b["roleRef"].get("name") == role
               for kind in ("RoleBinding", "ClusterRoleBinding") for b in member.list(RBAC, kind))


def _remove_legacy(member: Kube, cloud: str) -> None:
    """A pre-per-cloud join's objects, when they are this cloud's (their label names the cloud joined last): the
    cluster-wide rights the hub no longer needs. Another cloud still using them keeps them until it is joined
    again or leaves."""
    for obj in legacy_objects():
        meta = obj["metadata"]
        live = member.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if live and ((live["metadata"].get("labels") or {}).get(LABEL) == cloud):
            member.delete(obj)


def join(cloud: str, member_path: str, hub_path: str | None, secret_namespace: str,
         allow_privileged: bool = False) -> str:
    hub, _ = kube_for(hub_path)
    member, member_cfg = kube_for(member_path)
    if hub.get(*CLOUDS, cloud) is None:
        raise JoinError(f"NationalCloud {cloud!r} not found on the hub: create it first (nothing was changed)")
    if member.kind(VAP, "ValidatingAdmissionPolicy") is None:
        raise JoinError(f"the member's API server does not serve {VAP} ValidatingAdmissionPolicy (Kubernetes 1.30 "
                        "or later): the hub's rights could not be confined there (nothing was changed)")
    _ensure_namespace(member)
    for obj in shared_objects() + cloud_objects(cloud, WITH_PRIVILEGED if allow_privileged else RESTRICTED):
        if obj["kind"] == "Secret":
            _wait_policy(member_cfg, cloud)  # the token exists only once its rights are confined
        member.apply(obj, MANAGER)
    data = _wait_token(member, cloud)
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
    _remove_legacy(member, cloud)  # the hub uses the new token from now on
    return f"{secret_namespace}/{secret_name}"


def leave(cloud: str, member_path: str, hub_path: str | None) -> list[str]:
    """Returns what was kept in the member, and why."""
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
    # the binding first: the token stops working at once, whatever happens next; the policy after the rights
    for obj in reversed(cloud_objects(cloud)):
        member.delete(obj)
    _remove_legacy(member, cloud)
    kept = []
    others = _other_joins(member, cloud)
    if others:
        return [f"namespace {MEMBER_NAMESPACE} and the shared ClusterRoles: still used by {', '.join(others)}"]
    for obj in shared_objects():
        name = obj["metadata"]["name"]
        if obj["kind"] == "PriorityClass":
            if any(p["spec"].get("priorityClassName") == name for p in member.list("v1", "Pod")):
                kept.append(f"PriorityClass {name}: training pods still run at it (FineTunes left in the member)")
            else:
                member.delete(obj)
        elif _referenced(member, name):
            kept.append(f"ClusterRole {name}: RoleBindings still reference it (tenants left in the member)")
        else:
            member.delete(obj)
    live = member.get("v1", "Namespace", MEMBER_NAMESPACE) or {}
    if ((live.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGER:
        member.delete(live)  # made by join (one before per-cloud names labelled it too)
    return kept


def main(args) -> int:
    try:
        if args.action == "join":
            where = join(args.cloud, args.member_kubeconfig, args.hub_kubeconfig, args.secret_namespace,
                         getattr(args, "allow_privileged_tenants", False))
            print(f"joined: NationalCloud {args.cloud} -> kubeconfig Secret {where} on the hub")
        else:
            kept = leave(args.cloud, args.member_kubeconfig, args.hub_kubeconfig)
            print(f"left: NationalCloud {args.cloud} no longer has a member cluster")
            for what in kept:
                print(f"kept in the member: {what}")
    except (JoinError, ApiError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
