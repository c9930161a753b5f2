"""The tenant's NetworkPolicies (issue 14, network lockdown): deny both directions, then open each path a
component needs, to the pods and ports that serve it.

Ingress, per serving pod (``app.kubernetes.io/name``): from the ingress controller's namespace only to the
ports the Ingresses route to; from the in-namespace clients that call it (Postgres from its application,
Redis from Docs' backend and worker, Prosody and JVB's REST API from the Jitsi pods, vLLM from the LLM
gateway). With ``spec.monitoring.serviceMonitors``, the monitoring namespace (labelled
``sovereignsuite.io/monitoring: "true"``, docs/observability.md) reaches the metrics ports only: every container
port named ``metrics`` (Synapse 9001, the embedded databases' exporter 9187) and, on those pods only, the HTTP
ports of the servers that publish /metrics on them (JVB 8080, vLLM 8000).

Egress: DNS to kube-system's kube-dns pods; any pod of the own namespace (the serving pod's ingress policy
decides who gets in); the ingress controller on 443 for the pods that call a public host of the suite
(Synapse federating with the other tenants, Docs' y-provider asking the backend about access); the CIDRs the
NationalCloud and the suite declare per purpose (api/network.py), to the pods of that purpose only. No rule
reaches the cloud metadata address (declared CIDRs may not contain it) or the API server (CloudNativePG's
instances excepted, when declared).

Why federation goes through the ingress controller: a homeserver finds another through
``https://<domain>/.well-known/matrix/server`` = ``matrix.<domain>:443`` (matrix renderer ``well_known``),
the public host, which the ingress controller serves; there is no direct path between two tenants' pods.
"""

from __future__ import annotations

from typing import Any

from ...api.network import merged
from ..base import RenderContext
from ..docs import BACKEND_PORT, FRONTEND_PORT, MEDIA_PORT, REDIS_PORT, Y_PROVIDER_PORT
from ..jitsi import JVB_HTTP_PORT, PROSODY_PORTS, WEB_PORT
from ..llm import GATEWAY_PORT, MODEL_LABEL, VLLM_PORT
from ..matrix import ELEMENT_PORT, HTTP_PORT as SYNAPSE_PORT
from ..matrix.network import synapse_database_clients, synapse_servers, synapse_federation_pods
from ..postgres import CNPG_OPERATOR_PORTS, PORT as POSTGRES_PORT

NAME = "app.kubernetes.io/name"
MONITORING_NAMESPACE_LABEL = "sovereignsuite.io/monitoring"
MONITORING = {"namespaceSelector": {"matchLabels": {MONITORING_NAMESPACE_LABEL: "true"}}}
CNPG_CLUSTER = "cnpg.io/cluster"
# CoreDNS keeps the kube-dns label for compatibility (kubernetes/kubernetes cluster/addons/dns/coredns/coredns.yaml.base).
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
INGRESS_CONTROLLER_PORT = 443  # the public hosts are https on 443 (well-known server file, Ingress TLS)
JITSI_PODS = ("jitsi-web", "jitsi-jicofo", "jitsi-jvb")
DOCS_DB_CLIENTS = ("docs-backend", "docs-worker", "docs-migrate")
BACKUP_POD = "backup"  # components/backup: app.kubernetes.io/name of the backup job's pods
FINETUNE_POD = "finetune"  # components/finetune: app.kubernetes.io/name of the FineTunes' training pods
FINETUNE_LABEL = "sovereignsuite.io/finetune"  # ... which carry their FineTune's name (their own egress policy each)


def _ports(*ports: int, protocol: str = "TCP") -> list[dict[str, Any]]:
    return [{"protocol": protocol, "port": p} for p in ports]


def _names(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    return {"matchExpressions": [{"key": NAME, "operator": "In", "values": sorted(set(names))}]}


def _policy(ctx: RenderContext, name: str, selector: dict[str, Any], **spec: Any) -> dict[str, Any]:
    types = [t for t, key in (("Ingress", "ingress"), ("Egress", "egress")) if key in spec]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": ctx.labels("tenancy")},
        "spec": {"podSelector": selector, "policyTypes": types, **spec},
    }


def _databases(ctx: RenderContext) -> list[tuple[str, str, tuple[str, ...]]]:
    """(database object name, mode, client pods) of each enabled component's PostgreSQL. The backup job's pod
    dumps the embedded ones when the tenant backs its databases up."""
    out = []
    dumps = ctx.backups.enabled and ctx.backups.include.databases
    for name, comp, clients in (("matrix", ctx.components.matrix, synapse_database_clients(ctx)),
                                ("docs", ctx.components.docs, DOCS_DB_CLIENTS)):
        if comp.enabled:
            mode = comp.postgres.mode
            out.append((f"{name}-postgres", mode, clients + (BACKUP_POD,) if dumps and mode == "embedded" else clients))
    return out


def servers(ctx: RenderContext) -> list[tuple[str, dict[str, Any], list[int], list[tuple[tuple[str, ...], list[int]]]]]:
    """(policy name, pod selector, ports routed from the ingress controller, [(client pods, ports)])."""
    c = ctx.components
    out: list[tuple[str, dict[str, Any], list[int], list[tuple[tuple[str, ...], list[int]]]]] = []

    def pod(name: str) -> dict[str, Any]:
        return {"matchLabels": {NAME: name}}

    if c.matrix.enabled:
        out += synapse_servers(ctx, pod, SYNAPSE_PORT)
        out.append(("element-web", pod("element-web"), [ELEMENT_PORT], []))
    if c.docs.enabled:
        out.append(("docs-frontend", pod("docs-frontend"), [FRONTEND_PORT], []))
        # the media proxy asks the backend whether a user may read a file (media-nginx.conf.j2, auth_request)
        out.append(("docs-backend", pod("docs-backend"), [BACKEND_PORT], [(("docs-media",), [BACKEND_PORT])]))
        out.append(("docs-media", pod("docs-media"), [MEDIA_PORT], []))
        # the backend calls the y-provider's API (Y_PROVIDER_API_BASE_URL, COLLABORATION_API_URL)
        out.append(("docs-y-provider", pod("docs-y-provider"), [Y_PROVIDER_PORT],
                    [(("docs-backend",), [Y_PROVIDER_PORT])]))
        # REDIS_URL and the Celery broker (docs renderer): the backend, the worker and the migration Job
        out.append(("docs-redis", pod("docs-redis"), [], [(DOCS_DB_CLIENTS, [REDIS_PORT])]))
    for db, mode, clients in _databases(ctx):
        if mode == "embedded":
            out.append((db, pod(db), [], [(clients, [POSTGRES_PORT])]))
        elif mode == "cloudnative-pg":
            # the instances replicate from each other and report status on 8000 (CNPG_OPERATOR_PORTS)
            cluster = {"matchLabels": {CNPG_CLUSTER: db}}
            out.append((db, cluster, [], [(clients, [POSTGRES_PORT])]))
            out.append((f"{db}-instances", cluster, [], [((f"{CNPG_CLUSTER}={db}",), list(CNPG_OPERATOR_PORTS))]))
    if c.jitsi.enabled:
        out.append(("jitsi-web", pod("jitsi-web"), [WEB_PORT], []))
        # XMPP client, BOSH/websocket and the component port: only Jitsi's own pods
        out.append(("jitsi-prosody", pod("jitsi-prosody"), [], [(JITSI_PODS, sorted(PROSODY_PORTS.values()))]))
        # JVB's REST/colibri-ws port (the web's nginx proxies /colibri-ws/ to it); media UDP is jitsi-jvb-media
        out.append(("jitsi-jvb", pod("jitsi-jvb"), [], [(JITSI_PODS, [JVB_HTTP_PORT])]))
    if c.llm.enabled:
        out.append(("llm-gateway", pod("llm-gateway"), [GATEWAY_PORT], []))
        if c.llm.models:
            out.append(("vllm", pod("vllm"), [], [(("llm-gateway",), [VLLM_PORT])]))
    return out


def _client_peer(clients: tuple[str, ...]) -> dict[str, Any]:
    if len(clients) == 1 and "=" in clients[0]:  # a label=value selector (CNPG instances)
        key, value = clients[0].split("=", 1)
        return {"podSelector": {"matchLabels": {key: value}}}
    return {"podSelector": _names(clients)}


def ingress_policies(ctx: RenderContext) -> list[dict[str, Any]]:
    controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ctx.suite.spec.ingress_namespace}}}
    out = []
    for name, selector, routed, clients in servers(ctx):
        rules = []
        if routed:
            rules.append({"from": [controller], "ports": _ports(*routed)})
        rules += [{"from": [_client_peer(pods)], "ports": _ports(*ports)} for pods, ports in clients]
        out.append(_policy(ctx, f"allow-to-{name}", selector, ingress=rules))
    return out + monitoring_policies(ctx)


def monitoring_policies(ctx: RenderContext) -> list[dict[str, Any]]:
    """The metrics ports from the monitoring namespace, when the monitoring objects are rendered."""
    if not ctx.service_monitors:
        return []
    out = [_policy(ctx, "allow-monitoring", {}, ingress=[
        {"from": [MONITORING], "ports": [{"protocol": "TCP", "port": "metrics"}]}])]
    # servers whose /metrics is on their HTTP port: that port on those pods only (not every pod's 8000)
    if ctx.components.jitsi.enabled:
        out.append(_policy(ctx, "allow-monitoring-jitsi-jvb", {"matchLabels": {NAME: "jitsi-jvb"}}, ingress=[
            {"from": [MONITORING], "ports": _ports(JVB_HTTP_PORT)}]))
    if ctx.components.llm.enabled and ctx.components.llm.models:
        out.append(_policy(ctx, "allow-monitoring-vllm", {"matchLabels": {NAME: "vllm"}}, ingress=[
            {"from": [MONITORING], "ports": _ports(VLLM_PORT)}]))
    return out


def _purpose_pods(ctx: RenderContext) -> dict[str, dict[str, Any] | None]:
    """purpose -> pod selector of the pods that may use it (None: no such pod in this tenant)."""
    c = ctx.components
    dbs = _databases(ctx)
    external_db = [p for _, mode, pods in dbs if mode == "external" for p in pods]
    cnpg = any(mode == "cloudnative-pg" for _, mode, _ in dbs)
    return {
        "oidc": _names(["docs-backend"]) if c.docs.enabled and ctx.suite.spec.identity.oidc else None,
        "s3": _names(["docs-backend", "docs-worker", "docs-media"]) if c.docs.enabled else None,
        "model_hub": _names(["vllm"]) if c.llm.enabled and c.llm.models else None,
        "stun_turn": _names(["jitsi-jvb"]) if c.jitsi.enabled else None,
        "matrix_federation": synapse_federation_pods(ctx, _names) if c.matrix.enabled and c.matrix.federation.enabled
        else None,
        "databases": _names(external_db) if external_db else None,
        "api_server": {"matchExpressions": [{"key": CNPG_CLUSTER, "operator": "Exists"}]} if cnpg else None,
        "object_storage": _object_storage_pods(ctx, cnpg),
    }


def _object_storage_pods(ctx: RenderContext, cnpg: bool) -> dict[str, Any] | None:
    """The backup job's pods (CloudNativePG's instances, which archive there too, get their own policy)."""
    return _names([BACKUP_POD]) if ctx.backups.enabled else None


def egress_policies(ctx: RenderContext) -> list[dict[str, Any]]:
    c = ctx.components
    out = [
        _policy(ctx, "allow-egress-dns", {}, egress=[
            {"to": [DNS_PEER], "ports": _ports(53, protocol="UDP") + _ports(53)}]),
        # every pod but the backup job's, which reaches only the databases it dumps (components/backup), and the
        # FineTunes' training pods, which reach only the object storage (components/finetune: they carry the
        # FineTune label; DoesNotExist, not NotIn on the name: pods without a name label, CloudNativePG's
        # instances, stay selected)
        _policy(ctx, "allow-egress-same-namespace", {"matchExpressions": (
                    [{"key": NAME, "operator": "NotIn", "values": [BACKUP_POD]}] if ctx.backups.enabled else [])
                    + [{"key": FINETUNE_LABEL, "operator": "DoesNotExist"}]},
                egress=[{"to": [{"podSelector": {}}]}]),
    ]
    public_clients = []
    if c.matrix.enabled and c.matrix.federation.enabled and ctx.peers:
        senders = synapse_federation_pods(ctx, _names)
        if senders == _names(["synapse"]):
            public_clients.append("synapse")
        else:  # workers: only the federation senders go out (outbound_federation_restricted_to)
            controller = {"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": ctx.suite.spec.ingress_namespace}}}
            out.append(_policy(ctx, "allow-egress-public-hosts-synapse", senders, egress=[
                {"to": [controller], "ports": _ports(INGRESS_CONTROLLER_PORT)}]))
    if c.docs.enabled:  # COLLABORATION_BACKEND_BASE_URL is the public origin
        public_clients.append("docs-y-provider")
    if public_clients:
        controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ctx.suite.spec.ingress_namespace}}}
        out.append(_policy(ctx, "allow-egress-public-hosts", _names(public_clients), egress=[
            {"to": [controller], "ports": _ports(INGRESS_CONTROLLER_PORT)}]))
    declared = merged(ctx.cloud.spec.network, ctx.suite.spec.network)
    for purpose, selector in _purpose_pods(ctx).items():
        rules = declared[purpose]
        if not rules or (selector is None and not (purpose == "object_storage" and _adapter_models(ctx))):
            continue
        egress = [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in r.cidrs],
                   "ports": [{"protocol": p.protocol, "port": p.port} for p in r.ports]} for r in rules]
        if selector is not None:
            out.append(_policy(ctx, f"allow-egress-{purpose.replace('_', '-')}", selector, egress=egress))
        if purpose == "object_storage" and _adapter_models(ctx):
            # the adapter loader beside vLLM downloads the adapters (components/llm/adapters.py): a policy selects
            # pods, not containers, so the pods of the models that serve adapters get this egress, the others not
            out.append(_policy(ctx, "allow-egress-object-storage-adapters", {"matchLabels": {NAME: "vllm"},
                               "matchExpressions": [{"key": MODEL_LABEL, "operator": "In",
                                                     "values": _adapter_models(ctx)}]}, egress=egress))
        if purpose == "object_storage" and _cnpg_archives(ctx):  # the Barman Cloud plugin's sidecar uploads too
            out.append(_policy(ctx, "allow-egress-object-storage-cnpg",
                               {"matchExpressions": [{"key": CNPG_CLUSTER, "operator": "Exists"}]}, egress=egress))
    return out


def _adapter_models(ctx: RenderContext) -> list[str]:
    """The models whose pods load LoRA adapters from the object storage."""
    if not (ctx.components.llm.enabled and ctx.adapters):
        return []
    return sorted({a.base_model for a in ctx.adapters} & {m.name for m in ctx.components.llm.models})


def _cnpg_archives(ctx: RenderContext) -> bool:
    return (ctx.backups.enabled and ctx.backups.include.databases
            and any(mode == "cloudnative-pg" for _, mode, _ in _databases(ctx)))


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    deny = [
        _policy(ctx, "default-deny-ingress", {}, ingress=[]),
        _policy(ctx, "default-deny-egress", {}, egress=[]),
    ]
    for p in deny:  # an empty rule list: nothing allowed (the spec keeps only policyTypes, as before)
        p["spec"].pop("ingress", None)
        p["spec"].pop("egress", None)
    return deny + ingress_policies(ctx) + egress_policies(ctx)
