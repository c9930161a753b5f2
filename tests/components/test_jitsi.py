"""The Jitsi renderer: web, prosody, jicofo, jvb and the three JVB media exposures (no cluster)."""

from __future__ import annotations

import importlib
from typing import Any

import kubernetes_validate
import pytest

from ..helpers import K8S_SCHEMA_VERSION, load_example, pod_specs, suite_with, with_host_ports
from sovereign_suite.api.validation import InputError
from sovereign_suite.components import COMPONENT_MODULES, jitsi, tenancy
from sovereign_suite.components.base import RenderContext, build_contexts, dump_yaml

FR, DE, LU, SE = 0, 1, 2, 3  # tenant indexes in the four-country example
BUILTIN_GROUPS = ("v1", "apps/v1", "policy/v1", "networking.k8s.io/v1")


def contexts(patch: dict[str, Any] | None = None, example: str = "four-countries",
             capabilities: frozenset[str] = frozenset({"monitoring.coreos.com/v1"}),
             host_ports: bool = False) -> list[RenderContext]:
    """``host_ports``: the clouds allow host ports 10000-10100 (NationalCloud spec.hostPorts)."""
    suite, clouds = load_example(example)
    if patch:
        suite = suite_with(example, patch)
    return build_contexts(suite, with_host_ports(clouds) if host_ports else clouds, capabilities)


def jitsi_patch(**fields: Any) -> dict[str, Any]:
    return {"components": {"jitsi": fields}}


def tenant_patch(example: str, index: int, jitsi_fields: dict[str, Any]) -> dict[str, Any]:
    """A patch setting a per-tenant override (spec.tenants is a list: the whole list is replaced)."""
    from ..helpers import example_dict

    tenants = example_dict(example)["spec"]["tenants"]
    comps = tenants[index].setdefault("components", {})
    comps["jitsi"] = {**comps.get("jitsi", {}), **jitsi_fields}
    return {"tenants": tenants}


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    return jitsi.render(ctx)


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def absent(objs: list[dict[str, Any]], kind: str, name: str) -> bool:
    return not [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def port_of(c: dict[str, Any], name: str) -> dict[str, Any]:
    (port,) = [p for p in c["ports"] if p["name"] == name]
    return port


def problems_of(err: pytest.ExceptionInfo[InputError]) -> dict[str, str]:
    return {p.path: p.message for p in err.value.problems}


# ---- the examples ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", ["two-countries", "four-countries"])
def test_examples_render_and_validate_strictly(example: str) -> None:
    for ctx in contexts(example=example):
        objs = render(ctx)
        kinds = sorted(o["kind"] for o in objs)
        assert kinds.count("Deployment") == 4
        for obj in objs:
            assert obj["apiVersion"] in BUILTIN_GROUPS, obj["apiVersion"]  # no ServiceMonitor unless asked
            kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def test_suite_render_includes_jitsi_once_per_tenant() -> None:
    for name in COMPONENT_MODULES:  # the suite renderer needs every component module
        try:
            importlib.import_module(f"sovereign_suite.components.{name}")
        except ImportError:
            pytest.skip(f"component module {name} is not written yet")
    from sovereign_suite.render import render_suite

    suite, clouds = load_example("four-countries")
    result = render_suite(suite, clouds)
    for country in ("fr", "de", "lu", "se"):
        objs = result.by_component[(country, "jitsi")]
        assert find(objs, "Deployment", "jitsi-jvb")["metadata"]["namespace"] == f"eu-workplace-{country}"
    assert sum(1 for s in result.secrets if s.name == "jitsi-auth") == 4


def test_render_is_deterministic() -> None:
    a = [dump_yaml(o) for ctx in contexts() for o in render(ctx)]
    b = [dump_yaml(o) for ctx in contexts() for o in render(ctx)]
    assert a == b


def test_labels_namespace_and_selectors() -> None:
    ctx = contexts()[FR]
    for obj in render(ctx):
        meta = obj["metadata"]
        assert meta["namespace"] == "eu-workplace-fr"
        assert meta["labels"]["sovereignsuite.io/component"] == "jitsi"
        assert meta["labels"]["app.kubernetes.io/instance"] == "eu-workplace-fr"
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert "app.kubernetes.io/version" not in selector
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
            assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == "stable-11146-1"
        if obj["kind"] == "Service":
            assert "app.kubernetes.io/version" not in obj["spec"]["selector"]


# ---- pods ------------------------------------------------------------------------------------------------

def test_every_container_is_restricted_with_resources_and_writable_volumes() -> None:
    ctx = contexts()[DE]
    deployments = [o for o in render(ctx) if o["kind"] == "Deployment"]
    assert sorted(d["metadata"]["name"] for d in deployments) == [
        "jitsi-jicofo", "jitsi-jvb", "jitsi-prosody", "jitsi-web"]
    for d in deployments:
        (pod,) = pod_specs(d)
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"}}
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "topology.kubernetes.io/region", "operator": "In",
                                                "values": ["eu01"]}]}]
        assert "initContainers" not in pod
        c = container(d)
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "runAsUser": 1000, "runAsGroup": 1000, "readOnlyRootFilesystem": True,
            "seccompProfile": {"type": "RuntimeDefault"}}
        assert c["resources"]["requests"] and c["resources"]["limits"]
        assert c["resources"]["requests"].keys() == c["resources"]["limits"].keys() == {"cpu", "memory"}
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert {"/run", "/tmp"} <= mounts.keys()  # s6-overlay needs a writable /run
        for name in mounts.values():
            assert "sizeLimit" in volumes[name]["emptyDir"]
        assert c["envFrom"] == [{"configMapRef": {"name": "jitsi-env"}}]
    jvb = find(deployments, "Deployment", "jitsi-jvb")
    assert container(jvb)["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"},
                                           "limits": {"cpu": "8", "memory": "8Gi"}}
    prosody = container(find(deployments, "Deployment", "jitsi-prosody"))
    assert {m["mountPath"] for m in prosody["volumeMounts"]} == {"/run", "/tmp", "/var/lib/prosody"}


def test_probes_and_ports() -> None:
    objs = render(contexts()[FR])
    web = container(find(objs, "Deployment", "jitsi-web"))
    assert port_of(web, "http")["containerPort"] == 8000  # the hardened web image's unprivileged port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert web[probe]["httpGet"] == {"path": "/", "port": "http"}
    prosody = container(find(objs, "Deployment", "jitsi-prosody"))
    assert {p["name"]: p["containerPort"] for p in prosody["ports"]} == {
        "xmpp-c2s": 5222, "http": 5280, "xmpp-component": 5347}
    assert prosody["readinessProbe"]["httpGet"] == {"path": "/http-bind", "port": "http"}
    jicofo = container(find(objs, "Deployment", "jitsi-jicofo"))
    assert port_of(jicofo, "http")["containerPort"] == 8888
    assert jicofo["livenessProbe"]["tcpSocket"] == {"port": "http"}
    jvb = container(find(objs, "Deployment", "jitsi-jvb"))
    assert port_of(jvb, "http")["containerPort"] == 8080
    assert jvb["readinessProbe"]["httpGet"] == {"path": "/about/health", "port": "http"}


def test_services_and_ingress() -> None:
    ctx = contexts()[FR]
    objs = render(ctx)
    web_svc = find(objs, "Service", "jitsi-web")
    assert web_svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    prosody_svc = find(objs, "Service", "jitsi-prosody")
    assert {p["name"]: p["port"] for p in prosody_svc["spec"]["ports"]} == {
        "xmpp-c2s": 5222, "http": 5280, "xmpp-component": 5347}
    assert absent(objs, "Service", "jitsi-jicofo")
    ingress = find(objs, "Ingress", "jitsi-web")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["meet.fr.workplace.example.eu"],
                                       "secretName": "meet.fr.workplace.example.eu-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "meet.fr.workplace.example.eu"
    assert rule["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "jitsi-web", "port": {"name": "http"}}}}]
    assert not ingress["metadata"].get("annotations")


def test_common_environment() -> None:
    ctx = contexts()[DE]
    objs = render(ctx)
    data = find(objs, "ConfigMap", "jitsi-env")["data"]
    assert data["PUBLIC_URL"] == "https://meet.de.workplace.example.eu"
    assert data["XMPP_DOMAIN"] == "meet.jitsi"
    assert data["XMPP_AUTH_DOMAIN"] == "auth.meet.jitsi"
    assert data["XMPP_MUC_DOMAIN"] == "muc.meet.jitsi"
    assert data["XMPP_INTERNAL_MUC_DOMAIN"] == "internal-muc.meet.jitsi"
    assert data["TZ"] == "UTC"
    assert data["ENABLE_AUTH"] == "0"
    # XMPP_SERVER is the prosody Service; nginx (no search path) gets its fully qualified name
    assert data["XMPP_SERVER"] == find(objs, "Service", "jitsi-prosody")["metadata"]["name"]
    assert data["XMPP_BOSH_URL_BASE"] == "http://jitsi-prosody.eu-workplace-de.svc.cluster.local:5280"
    assert all(isinstance(v, str) for v in data.values())
    web_env = env_of(container(find(objs, "Deployment", "jitsi-web")))
    assert web_env["DISABLE_HTTPS"] == "1"  # TLS ends at the Ingress


# ---- secrets ---------------------------------------------------------------------------------------------

def test_secrets_are_declared_and_only_referenced() -> None:
    ctx = contexts()[FR]
    (spec,) = jitsi.secrets(ctx)
    assert spec.name == "jitsi-auth" and spec.namespace == "eu-workplace-fr" and spec.component == "jitsi"
    # no JICOFO_COMPONENT_SECRET: no file of docker-jitsi-meet stable-11146-1's images reads it
    assert set(spec.keys) == {"JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"}
    assert {(k.generator, k.length) for k in spec.keys.values()} == {("random", 32)}
    objs = render(ctx)
    assert not [o for o in objs if o["kind"] == "Secret"]
    refs: dict[str, set[str]] = {}
    for d in (o for o in objs if o["kind"] == "Deployment"):
        for e in container(d)["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "jitsi-auth" and ref["key"] in spec.keys and ref["key"] == e["name"]
                refs.setdefault(d["metadata"]["name"], set()).add(ref["key"])
            if e["name"].endswith(("PASSWORD", "SECRET")):
                assert "value" not in e, f"{e['name']} has a plain value"
    assert refs == {
        "jitsi-prosody": set(spec.keys),
        "jitsi-jicofo": {"JICOFO_AUTH_PASSWORD"},
        "jitsi-jvb": {"JVB_AUTH_PASSWORD"},
    }


def test_no_secret_in_config_maps_or_annotations() -> None:
    ctx = contexts(jitsi_patch(extraConfig={"ENABLE_PREJOIN_PAGE": "1"}))[FR]
    for obj in render(ctx):
        if obj["kind"] == "ConfigMap":
            for key in obj["data"]:
                assert "PASSWORD" not in key and "SECRET" not in key, key
        annotations = {**obj["metadata"].get("annotations", {}),
                       **obj.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})}
        for key in annotations:
            assert key == "sovereignsuite.io/config-hash"


# ---- extraConfig -----------------------------------------------------------------------------------------

def test_extra_config_is_merged_and_may_override_defaults() -> None:
    base = render(contexts()[FR])
    objs = render(contexts(jitsi_patch(extraConfig={"ENABLE_PREJOIN_PAGE": "1", "TZ": "Europe/Paris"}))[FR])
    data = find(objs, "ConfigMap", "jitsi-env")["data"]
    assert data["ENABLE_PREJOIN_PAGE"] == "1"
    assert data["TZ"] == "Europe/Paris"
    hash_key = "sovereignsuite.io/config-hash"
    before = find(base, "Deployment", "jitsi-jvb")["spec"]["template"]["metadata"]["annotations"][hash_key]
    after = find(objs, "Deployment", "jitsi-jvb")["spec"]["template"]["metadata"]["annotations"][hash_key]
    assert before != after  # a config change rolls the pods


@pytest.mark.parametrize("name", ["XMPP_DOMAIN", "PUBLIC_URL", "XMPP_SERVER", "JVB_PORT", "JVB_ADVERTISE_IPS",
                                  "DISABLE_HTTPS", "JVB_AUTH_PASSWORD", "JVB_STUN_SERVERS", "JVB_DISABLE_STUN",
                                  "P2P_STUN_SERVERS", "ENABLE_P2P", "JICOFO_ENABLE_REST"])
def test_extra_config_clash_names_the_field(name: str) -> None:
    ctx = contexts(jitsi_patch(extraConfig={name: "x", "ENABLE_PREJOIN_PAGE": "1"}))[FR]
    with pytest.raises(InputError) as err:
        render(ctx)
    assert list(problems_of(err)) == [f"spec.components.jitsi.extraConfig.{name}"]
    assert "set by the operator" in problems_of(err)[f"spec.components.jitsi.extraConfig.{name}"]


def test_extra_config_clash_in_a_tenant_override_names_the_tenant() -> None:
    patch = tenant_patch("four-countries", LU, {"extraConfig": {"PUBLIC_URL": "https://meet.example.lu"}})
    ctx = contexts(patch)[LU]
    with pytest.raises(InputError) as err:
        render(ctx)
    assert list(problems_of(err)) == ["spec.tenants[2].components.jitsi.extraConfig.PUBLIC_URL"]


# ---- replicas --------------------------------------------------------------------------------------------

def test_replicas_and_disruption_budgets() -> None:
    ctxs = contexts(jitsi_patch(webReplicas=3, jvbReplicas=2))
    objs = render(ctxs[FR])
    assert find(objs, "Deployment", "jitsi-web")["spec"]["replicas"] == 3
    assert find(objs, "Deployment", "jitsi-jvb")["spec"]["replicas"] == 2
    for name in ("jitsi-web", "jitsi-jvb"):
        pdb = find(objs, "PodDisruptionBudget", name)
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": find(
            objs, "Deployment", name)["spec"]["selector"]["matchLabels"]}}
    for name in ("jitsi-prosody", "jitsi-jicofo"):
        d = find(objs, "Deployment", name)
        assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"] == {"type": "Recreate"}
        assert absent(objs, "PodDisruptionBudget", name)
    # LU overrides webReplicas to 1 (the example); the suite-wide jvbReplicas still applies
    lu = render(ctxs[LU])
    assert find(lu, "Deployment", "jitsi-web")["spec"]["replicas"] == 1
    assert absent(lu, "PodDisruptionBudget", "jitsi-web")
    assert find(lu, "Deployment", "jitsi-jvb")["spec"]["replicas"] == 2


def test_single_bridge_has_no_budget() -> None:
    objs = render(contexts()[FR])
    assert find(objs, "Deployment", "jitsi-jvb")["spec"]["replicas"] == 1
    assert absent(objs, "PodDisruptionBudget", "jitsi-jvb")
    assert find(objs, "PodDisruptionBudget", "jitsi-web")  # webReplicas defaults to 2


# ---- JVB exposure ----------------------------------------------------------------------------------------

def anti_affinity(jvb: dict[str, Any]) -> list[dict[str, Any]] | None:
    return jvb["spec"]["template"]["spec"]["affinity"].get("podAntiAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")


def media_policy(objs: list[dict[str, Any]]) -> dict[str, Any]:
    policy = find(objs, "NetworkPolicy", "jitsi-jvb-media")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    return rule


def test_nodeport_listens_on_and_advertises_the_node_port() -> None:
    ctxs = contexts(jitsi_patch(jvbReplicas=3))
    objs = render(ctxs[FR])
    jvb = find(objs, "Deployment", "jitsi-jvb")
    c = container(jvb)
    media = port_of(c, "media")
    svc = find(objs, "Service", "jitsi-jvb-media")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    (port,) = svc["spec"]["ports"]
    # nodePort not set anywhere: each country gets its own (node ports are cluster-wide)
    assert port == {"name": "media", "protocol": "UDP", "port": 30011, "targetPort": "media", "nodePort": 30011}
    assert media == {"name": "media", "containerPort": 30011, "protocol": "UDP"}  # no hostPort
    env = env_of(c)
    assert env["JVB_PORT"] == "30011"
    assert env["JVB_ADVERTISE_IPS"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert anti_affinity(jvb) == [{"labelSelector": {"matchLabels": jvb["spec"]["selector"]["matchLabels"]},
                                   "topologyKey": "kubernetes.io/hostname"}]
    assert media_policy(objs)["ports"] == [{"protocol": "UDP", "port": 30011}]
    assert jvb["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    ports = {ctx.country: port_of(container(find(render(ctx), "Deployment", "jitsi-jvb")), "media")["containerPort"]
             for ctx in ctxs}
    assert len(set(ports.values())) == 4, ports


def test_nodeport_set_per_tenant_is_used_as_given() -> None:
    patch = tenant_patch("four-countries", SE, {"jvb": {"nodePort": 31000}})
    objs = render(contexts(patch)[SE])
    (port,) = find(objs, "Service", "jitsi-jvb-media")["spec"]["ports"]
    assert port["nodePort"] == port["port"] == 31000
    assert env_of(container(find(objs, "Deployment", "jitsi-jvb")))["JVB_PORT"] == "31000"


def test_nodeport_shared_by_two_tenants_is_refused() -> None:
    ctxs = contexts(jitsi_patch(jvb={"nodePort": 31000}))
    render(ctxs[FR])  # the first tenant keeps it
    with pytest.raises(InputError) as err:
        render(ctxs[DE])
    problems = problems_of(err)
    assert list(problems) == ["spec.components.jitsi.jvb.nodePort"]
    assert "spec.tenants[0] (FR)" in problems["spec.components.jitsi.jvb.nodePort"]


def test_hostport_one_bridge_per_node() -> None:
    ctx = contexts(jitsi_patch(jvbReplicas=3, jvb={"type": "HostPort", "udpPort": 10001}), host_ports=True)[FR]
    objs = render(ctx)
    jvb = find(objs, "Deployment", "jitsi-jvb")
    c = container(jvb)
    assert port_of(c, "media") == {"name": "media", "containerPort": 10001, "hostPort": 10001, "protocol": "UDP"}
    assert env_of(c)["JVB_PORT"] == "10001"
    assert env_of(c)["JVB_ADVERTISE_IPS"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert absent(objs, "Service", "jitsi-jvb-media")
    assert anti_affinity(jvb) == [{"labelSelector": {"matchLabels": jvb["spec"]["selector"]["matchLabels"]},
                                   "topologyKey": "kubernetes.io/hostname"}]
    assert media_policy(objs)["ports"] == [{"protocol": "UDP", "port": 10001}]
    assert c["securityContext"]["runAsNonRoot"] is True  # hostPort does not relax the container context
    assert tenancy.pod_security_level(ctx) == "privileged"  # the namespace admits hostPort
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def test_loadbalancer_advertises_the_given_address() -> None:
    ctx = contexts(jitsi_patch(jvb={"type": "LoadBalancer", "advertisedAddress": "198.51.100.7"}))[FR]
    objs = render(ctx)
    jvb = find(objs, "Deployment", "jitsi-jvb")
    c = container(jvb)
    svc = find(objs, "Service", "jitsi-jvb-media")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["externalTrafficPolicy"] == "Local"
    assert svc["spec"]["ports"] == [{"name": "media", "protocol": "UDP", "port": 10000, "targetPort": "media"}]
    assert port_of(c, "media") == {"name": "media", "containerPort": 10000, "protocol": "UDP"}
    assert env_of(c)["JVB_PORT"] == "10000"
    assert env_of(c)["JVB_ADVERTISE_IPS"] == "198.51.100.7"
    assert anti_affinity(jvb) is None
    assert media_policy(objs)["ports"] == [{"protocol": "UDP", "port": 10000}]
    assert tenancy.pod_security_level(ctx) == "restricted"
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)


def test_advertised_address_overrides_the_node_ip_with_one_bridge() -> None:
    objs = render(contexts(jitsi_patch(jvb={"advertisedAddress": "203.0.113.4"}))[DE])
    assert env_of(container(find(objs, "Deployment", "jitsi-jvb")))["JVB_ADVERTISE_IPS"] == "203.0.113.4"


@pytest.mark.parametrize("jvb, replicas, path, words", [
    ({"type": "LoadBalancer"}, 1, "spec.components.jitsi.jvb.advertisedAddress", "required"),
    ({"type": "LoadBalancer", "advertisedAddress": "198.51.100.7"}, 2, "spec.components.jitsi.jvbReplicas",
     "must be 0 or 1"),
    ({"type": "NodePort", "advertisedAddress": "198.51.100.7"}, 2, "spec.components.jitsi.jvb.advertisedAddress",
     "same address"),
    ({"type": "HostPort", "advertisedAddress": "198.51.100.7"}, 3, "spec.components.jitsi.jvb.advertisedAddress",
     "same address"),
])
def test_exposures_that_cannot_carry_media_are_refused(jvb: dict[str, Any], replicas: int, path: str,
                                                       words: str) -> None:
    ctx = contexts(jitsi_patch(jvb=jvb, jvbReplicas=replicas), host_ports=True)[FR]
    with pytest.raises(InputError) as err:
        render(ctx)
    problems = problems_of(err)
    assert list(problems) == [path]
    assert words in problems[path]


def test_exposure_error_in_a_tenant_override_names_the_tenant() -> None:
    patch = tenant_patch("four-countries", DE, {"jvb": {"type": "LoadBalancer"}})
    with pytest.raises(InputError) as err:
        render(contexts(patch)[DE])
    # type is the tenant's, advertisedAddress is missing everywhere: the suite-wide field is named
    assert list(problems_of(err)) == ["spec.components.jitsi.jvb.advertisedAddress"]
    patch = tenant_patch("four-countries", DE, {"jvb": {"type": "LoadBalancer", "advertisedAddress": "192.0.2.1"},
                                                "jvbReplicas": 2})
    with pytest.raises(InputError) as err:
        render(contexts(patch)[DE])
    assert list(problems_of(err)) == ["spec.tenants[1].components.jitsi.jvbReplicas"]


# ---- metrics ---------------------------------------------------------------------------------------------

def test_metrics_port_and_service_monitor() -> None:
    objs = render(contexts()[FR])
    svc = find(objs, "Service", "jitsi-jvb")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    assert env_of(container(find(objs, "Deployment", "jitsi-jvb")))["COLIBRI_REST_ENABLED"] == "true"
    assert not [o for o in objs if o["kind"] == "ServiceMonitor"]

    objs = render(contexts({"monitoring": {"serviceMonitors": True}})[FR])
    monitor = find(objs, "ServiceMonitor", "jitsi-jvb")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    selected = [o["metadata"]["name"] for o in objs if o["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= o["metadata"]["labels"].items()]
    assert selected == ["jitsi-jvb"]  # not the media Service
    # asked for, but the cluster has no Prometheus Operator: nothing the API server would refuse
    objs = render(contexts({"monitoring": {"serviceMonitors": True}}, capabilities=frozenset())[FR])
    assert not [o for o in objs if o["kind"] == "ServiceMonitor"]
