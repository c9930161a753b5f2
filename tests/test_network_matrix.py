"""The tenants' network matrix, computed by a real NetworkPolicy engine (Cyclonus, tests/netpol_eval.py) from the
rendered four-country example, compared with the matrix we intend (issue 14, network lockdown). No cluster.

Every (source pod or address) -> (destination pod port or external address) pair is asked; a pair the engine
allows and the intended matrix does not (or the reverse) fails the test with the list of such pairs.

Twice: with the embedded databases, and with both databases in CloudNativePG mode, where the instance pods are
CNPG's (not rendered: they are made here with the labels and ports CNPG gives them) and CNPG's operator must
reach them (issue 14, finding 5).
"""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path

import pytest

from sovereign_suite.api.models import SovereignSuite
from sovereign_suite.api.validation import InputError
from sovereign_suite.components.base import CNPG_API, MONITORING_API
from sovereign_suite.render import render_suite

from .helpers import load_example
from .netpol_eval import External, Pod, evaluate, namespace_labels, rendered_pods

INGRESS_NS, MONITORING_NS, OTHER_NS = "ingress-nginx", "monitoring", "unrelated"
# CloudNativePG's operator where the NationalCloud says it runs by default (api/cloud_models.py cloudNativePG).
CNPG_NS, CNPG_OPERATOR = "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}
CNPG_CLUSTER = "cnpg.io/cluster"
# The instance manager's status port and PostgreSQL: what CNPG's operator and the other instances connect to
# (cloudnative-pg docs/src/networking.md; pkg/management/url/url.go StatusPort 8000, v1.27.1).
CNPG_PORTS = {8000, 5432}

# Endpoints the suite declares in this test (api/network.py); documentation ranges (RFC 5737).
DECLARED = {
    "oidc": {"cidrs": ["192.0.2.0/28"], "ports": [{"port": 443}]},
    "s3": {"cidrs": ["198.51.100.0/28"], "ports": [{"port": 443}]},
    "modelHub": {"cidrs": ["203.0.113.0/28"], "ports": [{"port": 443}]},
    "stunTurn": {"cidrs": ["203.0.113.64/28"], "ports": [{"port": 3478, "protocol": "UDP"}]},
}
EXTERNALS = [
    External("192.0.2.5", (("https", 443, "TCP"),), "oidc"),
    External("198.51.100.5", (("https", 443, "TCP"),), "s3"),
    External("203.0.113.5", (("https", 443, "TCP"),), "modelHub"),
    External("203.0.113.70", (("stun", 3478, "UDP"),), "stunTurn"),
    External("169.254.169.254", (("http", 80, "TCP"),), "metadata"),  # cloud metadata: never from a tenant
    External("172.30.0.1", (("https", 6443, "TCP"),), "apiServer"),  # the API server: CNPG instances only
    External("8.8.8.8", (("https", 443, "TCP"), ("dns", 53, "UDP")), "internet"),  # undeclared: never
]
# Which pods may use each declared purpose (who calls out to it, upstream):
# oidc: Docs' backend (suitenumerique/docs, mozilla-django-oidc OIDC_OP_* endpoints); s3: Docs' backend and worker
# (django-storages AWS_S3_ENDPOINT_URL) and the media proxy (media-nginx.conf.j2 proxy_pass); modelHub: vLLM
# downloads weights (vllm-project/vllm, HF_ENDPOINT / huggingface_hub); stunTurn: JVB (jitsi/jitsi-videobridge
# reference.conf ice4j STUN mapping harvester, JVB_STUN_SERVERS in docker-jitsi-meet).
PURPOSE_PODS = {
    "oidc": {"docs-backend"},
    "s3": {"docs-backend", "docs-worker", "docs-media"},
    "modelHub": {"vllm"},
    "stunTurn": {"jitsi-jvb"},
}
# apiServer: CNPG's instance manager watches its Cluster through the API server (cloudnative-pg docs/src/
# networking.md); declared in the CloudNativePG variant only, where those pods exist.
API_SERVER = {"cidrs": ["172.30.0.1/32"], "ports": [{"port": 6443}]}
CNPG_DATABASES = ("matrix-postgres", "docs-postgres")

# Ingress controller -> pod ports the Ingresses route to (container ports behind the Services' target ports).
ROUTED = {
    ("synapse", 8008), ("element-web", 8080),  # matrix: /_matrix, /_synapse/client; Element + /.well-known/matrix
    ("docs-frontend", 8080), ("docs-backend", 8000), ("docs-y-provider", 4444), ("docs-media", 8080),
    ("jitsi-web", 8000),  # docker-jitsi-meet web image, nginx on 8000 unprivileged
    ("llm-gateway", 4000),  # LiteLLM's default port (BerriAI/litellm Dockerfile EXPOSE 4000)
}
# In-namespace (client, server, port): who calls whom.
JITSI = ("jitsi-web", "jitsi-jicofo", "jitsi-jvb")
CLIENTS = {
    ("synapse", "matrix-postgres", 5432),
    *((c, s, p) for c in ("docs-backend", "docs-worker", "docs-migrate")
      for s, p in (("docs-postgres", 5432), ("docs-redis", 6379))),
    ("docs-media", "docs-backend", 8000),  # media-nginx.conf.j2: auth_request to the backend
    ("docs-backend", "docs-y-provider", 4444),  # Y_PROVIDER_API_BASE_URL
    # Prosody: c2s 5222, BOSH/websocket 5280, component 5347 (jitsi/docker-jitsi-meet prosody/rootfs/defaults/
    # prosody.cfg.lua); JVB's private HTTP 8080 (colibri-ws proxied by the web's nginx, jicofo health): Jitsi only
    *((c, "jitsi-prosody", p) for c in JITSI for p in (5222, 5280, 5347)),
    *((c, "jitsi-jvb", 8080) for c in JITSI),
    ("llm-gateway", "vllm", 8000),  # only the gateway reaches vLLM's OpenAI API
}
# Monitoring -> metrics ports: Synapse 9001, the embedded databases' exporter 9187, JVB 8080, vLLM 8000.
METRICS = {("synapse", 9001), ("matrix-postgres", 9187), ("docs-postgres", 9187), ("jitsi-jvb", 8080), ("vllm", 8000)}
# Who calls a public host of the suite (the ingress controller on 443): Synapse federating with the other
# tenants (well-known m.server = matrix.<domain>:443), Docs' y-provider (COLLABORATION_BACKEND_BASE_URL).
PUBLIC_CLIENTS = {"synapse", "docs-y-provider"}


def intended(src, dst, port: int, proto: str, tenants: set[str], media_port: int, cnpg: bool = False) -> bool:
    src_tenant = isinstance(src, Pod) and src.namespace in tenants
    purposes = {**PURPOSE_PODS, **({"apiServer": set(CNPG_DATABASES)} if cnpg else {})}
    if isinstance(dst, External):
        if not src_tenant:
            return True  # no policy outside the tenants: not ours to restrict
        return dst.name in purposes and src.app in purposes[dst.name]
    if dst.namespace not in tenants:
        if not src_tenant:
            return True
        if dst.labels.get("k8s-app") == "kube-dns":
            return port == 53
        return dst.namespace == INGRESS_NS and port == 443 and src.app in PUBLIC_CLIENTS
    # destination in a tenant
    if src_tenant and src.namespace != dst.namespace:
        return False  # no path between two tenants' pods (federation goes through the ingress controller)
    if dst.app == "jitsi-jvb" and proto == "UDP" and port == media_port:
        return True  # media from anywhere (jitsi-jvb-media)
    if src.namespace == INGRESS_NS:
        return (dst.app, port) in ROUTED
    if src.namespace == MONITORING_NS:
        return (dst.app, port) in METRICS
    instance = CNPG_CLUSTER in dst.labels
    if src.namespace == CNPG_NS:
        return instance and port in CNPG_PORTS  # the operator, to every instance
    if src.namespace == dst.namespace:
        if instance and src.labels.get(CNPG_CLUSTER) == dst.labels[CNPG_CLUSTER]:
            return port in CNPG_PORTS  # replication and the status port, between a cluster's instances
        return (src.app, dst.app, port) in CLIENTS
    return False


def extra_pods(first_ip: int) -> tuple[list[Pod], dict[str, dict[str, str]]]:
    def ip(i: int) -> str:
        return f"10.245.0.{first_ip + i}"
    pods = [
        Pod(INGRESS_NS, "ingress-nginx-controller", {"app.kubernetes.io/name": "ingress-nginx"},
            (("http", 80, "TCP"), ("https", 443, "TCP")), ip(0)),
        Pod(MONITORING_NS, "prometheus", {"app.kubernetes.io/name": "prometheus"}, (("web", 9090, "TCP"),), ip(1)),
        Pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")), ip(2)),
        Pod(OTHER_NS, "app", {"app.kubernetes.io/name": "app"}, (("http", 8080, "TCP"),), ip(3)),
        Pod(CNPG_NS, "cnpg-controller-manager", CNPG_OPERATOR, (("webhook-server", 9443, "TCP"),), ip(4)),
    ]
    ns = {n: {"kubernetes.io/metadata.name": n} for n in (INGRESS_NS, "kube-system", OTHER_NS, CNPG_NS)}
    ns[MONITORING_NS] = {"kubernetes.io/metadata.name": MONITORING_NS, "sovereignsuite.io/monitoring": "true"}
    return pods, ns


def cnpg_instances(manifests: list[dict], first_ip: int) -> list[Pod]:
    """Two instance pods per rendered CNPG Cluster, labelled and with the ports CNPG gives them (cloudnative-pg
    pkg/specs/pods.go, v1.27.1: labels cnpg.io/cluster, cnpg.io/instanceName, cnpg.io/podRole=instance; container
    ports postgresql 5432, metrics 9187, status 8000)."""
    pods = []
    for o in manifests:
        if o["kind"] == "Cluster" and o["apiVersion"] == CNPG_API:
            name, ns = o["metadata"]["name"], o["metadata"]["namespace"]
            for i in (1, 2):
                labels = {CNPG_CLUSTER: name, "cnpg.io/instanceName": f"{name}-{i}", "cnpg.io/podRole": "instance"}
                n = first_ip + len(pods)
                pods.append(Pod(ns, name, labels, (("postgresql", 5432, "TCP"), ("metrics", 9187, "TCP"),
                                                   ("status", 8000, "TCP")), f"10.246.{n // 250}.{n % 250 + 1}"))
    return pods


@pytest.fixture(scope="module", params=["embedded", "cloudnative-pg"])
def matrix(request, tmp_path_factory):
    cnpg = request.param == "cloudnative-pg"
    suite, clouds = load_example("four-countries")
    spec = copy.deepcopy(suite.wire())
    spec["spec"]["monitoring"]["serviceMonitors"] = True
    spec["spec"]["network"] = {"egress": {k: [v] for k, v in DECLARED.items()}}
    capabilities = {MONITORING_API}
    if cnpg:
        for component in ("matrix", "docs"):
            spec["spec"]["components"][component]["postgres"] = {"mode": "cloudnative-pg", "instances": 2}
        spec["spec"]["network"]["egress"]["apiServer"] = [API_SERVER]
        capabilities.add(CNPG_API)
    result = render_suite(SovereignSuite.model_validate(spec), clouds, capabilities=frozenset(capabilities))
    objs = result.manifests
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    tenant_ns = namespace_labels(objs)
    pods = rendered_pods(objs)
    instances = cnpg_instances(objs, 10)
    assert bool(instances) == cnpg and len(instances) == (16 if cnpg else 0)  # 4 tenants x 2 clusters x 2
    more, more_ns = extra_pods(10)
    pods += instances + more
    ns_labels = {**tenant_ns, **more_ns}
    cases, names = [], {}
    for dst in pods + EXTERNALS:
        for pname, port, proto in dst.ports:
            names[(dst, port, proto)] = pname
            cases += [(src, dst, port, proto) for src in pods if src is not dst]
    verdicts = evaluate(policies, cases, ns_labels, names, Path(tmp_path_factory.mktemp("netpol")))
    media = {p.namespace: port for p in pods if p.app == "jitsi-jvb" for _, port, proto in p.ports if proto == "UDP"}
    return cases, verdicts, set(tenant_ns), media, cnpg


def _label(end) -> str:
    return f"{end.namespace}/{end.name}" if isinstance(end, Pod) else f"{end.name}({end.ip})"


def test_engine_matrix_is_the_intended_matrix(matrix):
    cases, verdicts, tenants, media, cnpg = matrix
    wrong = [
        f"{_label(s)} -> {_label(d)}:{port}/{proto}: engine {'allows' if got else 'denies'}"
        for (s, d, port, proto), got in zip(cases, verdicts)
        if got != intended(s, d, port, proto, tenants, media.get(getattr(d, "namespace", ""), -1), cnpg)
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} pairs differ:\n" + "\n".join(sorted(wrong)[:80])


def test_no_path_between_tenants_except_federation_through_the_ingress_controller(matrix):
    cases, verdicts, tenants, _, _ = matrix
    allowed = [c for c, ok in zip(cases, verdicts) if ok]
    across = [c for c in allowed if isinstance(c[0], Pod) and isinstance(c[1], Pod)
              and c[0].namespace in tenants and c[1].namespace in tenants and c[0].namespace != c[1].namespace]
    assert not across, [f"{_label(s)} -> {_label(d)}:{p}" for s, d, p, _ in across][:20]
    # federation: every Synapse reaches the ingress controller on 443, which reaches every Synapse on 8008
    out = {s.namespace for s, d, p, _ in allowed
           if isinstance(s, Pod) and s.app == "synapse" and getattr(d, "namespace", "") == INGRESS_NS and p == 443}
    into = {d.namespace for s, d, p, _ in allowed
            if isinstance(s, Pod) and s.namespace == INGRESS_NS and getattr(d, "app", "") == "synapse" and p == 8008}
    assert out == into == tenants


def test_no_tenant_pod_reaches_metadata_api_server_or_undeclared_addresses(matrix):
    cases, verdicts, tenants, _, cnpg = matrix
    leaks = [f"{_label(s)} -> {_label(d)}:{p}" for (s, d, p, _), ok in zip(cases, verdicts)
             if ok and isinstance(d, External) and s.namespace in tenants
             and (d.name in ("metadata", "internet") or (d.name == "apiServer" and CNPG_CLUSTER not in s.labels))]
    assert not leaks, leaks[:20]
    # and the declared endpoints are really reachable from their pods (the policy is not merely absent)
    used = {d.name for (s, d, p, _), ok in zip(cases, verdicts) if ok and isinstance(d, External)
            and s.namespace in tenants}
    assert used == set(PURPOSE_PODS) | ({"apiServer"} if cnpg else set())


def test_cloudnative_pg_operator_reaches_every_instance_and_nothing_else(matrix):
    """With CloudNativePG: every instance on 8000 and 5432; with the embedded databases: no tenant pod (TCP; JVB's
    media UDP port is open to anyone)."""
    cases, verdicts, tenants, _, cnpg = matrix
    from_operator = {(d.namespace, d.labels.get("cnpg.io/instanceName", d.name), p)
                     for (s, d, p, proto), ok in zip(cases, verdicts)
                     if ok and proto == "TCP" and isinstance(s, Pod) and s.namespace == CNPG_NS
                     and isinstance(d, Pod) and d.namespace in tenants}
    expected = {(ns, f"{db}-{i}", p) for ns in tenants for db in CNPG_DATABASES for i in (1, 2) for p in CNPG_PORTS}
    assert from_operator == (expected if cnpg else set())


# ---- issue 22, item 14: a declared range may not reach the cluster's own networks --------------------------
# The example clouds declare the pod networks 10.244.0.0/16 and 10.245.0.0/24 and the Service network
# 10.96.0.0/16 (manifests/examples/clouds.yaml); the rendered pods get 10.244.x addresses and the ingress
# controller, kube-system and the others 10.245.0.x (extra_pods) here, as in that cluster.
SERVICE_NETWORK_ADDRESSES = [
    External("10.96.0.1", (("https", 443, "TCP"),), "apiServerService"),  # the kubernetes Service's ClusterIP
    External("10.96.0.10", (("dns", 53, "UDP"), ("metrics", 9153, "TCP")), "kubeDnsService"),
]
OUTSIDE = External("10.1.2.3", (("https", 443, "TCP"),), "modelHubInTen")  # in 10/8, outside the cluster


def _vllm_cases(policies_of, tmp_path: Path):
    """(case, verdict) for every vLLM pod of FR towards the other pods and the addresses above."""
    suite, clouds = load_example("four-countries")
    doc = copy.deepcopy(suite.wire())
    # 10.0.0.0/8 without the cluster's networks: the widest declaration the check accepts
    rest = [ipaddress.ip_network("10.0.0.0/8")]
    for cluster in ("10.244.0.0/16", "10.245.0.0/24", "10.96.0.0/16"):
        net = ipaddress.ip_network(cluster)
        rest = [piece for r in rest for piece in (r.address_exclude(net) if net.subnet_of(r) else [r])]
    rest = sorted(rest)
    doc["spec"]["network"]["egress"]["modelHub"] = [{"cidrs": [str(n) for n in rest[i:i + 16]]}
                                                    for i in range(0, len(rest), 16)]
    objs = render_suite(SovereignSuite.model_validate(doc), clouds).manifests
    policies = policies_of([o for o in objs if o["kind"] == "NetworkPolicy"])
    pods = rendered_pods(objs)
    more, more_ns = extra_pods(10)
    pods += more
    ns_labels = {**namespace_labels(objs), **more_ns}
    sources = [p for p in pods if p.app == "vllm" and p.namespace == "eu-workplace-fr"]
    assert sources
    cases, names = [], {}
    for dst in pods + SERVICE_NETWORK_ADDRESSES + [OUTSIDE]:
        for pname, port, proto in dst.ports:
            names[(dst, port, proto)] = pname
            cases += [(src, dst, port, proto) for src in sources if src is not dst]
    return list(zip(cases, evaluate(policies, cases, ns_labels, names, tmp_path)))


def _reaches_cluster(verdicts) -> list[str]:
    """vLLM's allowed flows into the cluster beyond what the matrix allows it (kube-dns on 53)."""
    return sorted(f"{_label(d)}:{port}/{proto}" for (s, d, port, proto), ok in verdicts if ok
                  and (isinstance(d, External) and d is not OUTSIDE
                       or isinstance(d, Pod) and d.namespace != s.namespace
                       and not (d.labels.get("k8s-app") == "kube-dns" and port == 53)))


def test_a_range_over_the_cluster_networks_is_refused():
    suite, clouds = load_example("four-countries")
    doc = copy.deepcopy(suite.wire())
    doc["spec"]["network"]["egress"]["modelHub"] = [{"cidrs": ["10.0.0.0/8"]}]
    with pytest.raises(InputError) as err:
        render_suite(SovereignSuite.model_validate(doc), clouds)
    assert [p.path for p in err.value.problems] == ["spec.network.egress.modelHub[0].cidrs[0]"]


def test_the_widest_accepted_range_reaches_no_pod_or_service_of_the_cluster(tmp_path_factory):
    """Cyclonus: with 10.0.0.0/8 minus the cluster's networks declared, vLLM reaches an address of 10/8 outside the
    cluster and nothing of the cluster (no Service address, the API server's among them; no pod of kube-system or
    the ingress controller) beyond DNS. The same policies with the range the check refuses (10.0.0.0/8, what the
    operator rendered before) let it reach them: the engine sees the hole the check closes."""
    accepted = _vllm_cases(lambda ps: ps, Path(tmp_path_factory.mktemp("accepted")))
    assert [ok for (s, d, *_), ok in accepted if d is OUTSIDE] == [True] * len({s for (s, *_), _ in accepted})
    assert _reaches_cluster(accepted) == []

    def widened(policies):
        out = copy.deepcopy(policies)
        for p in out:
            if p["metadata"]["name"] == "allow-egress-model-hub":
                p["spec"]["egress"] = [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}],
                                        "ports": [{"protocol": "TCP", "port": 443}]}]
        return out
    refused = _reaches_cluster(_vllm_cases(widened, Path(tmp_path_factory.mktemp("refused"))))
    assert "apiServerService(10.96.0.1):443/TCP" in refused
    assert "ingress-nginx/ingress-nginx-controller:443/TCP" in refused
