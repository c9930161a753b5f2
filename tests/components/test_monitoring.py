"""Monitoring objects of the renderers (spec.monitoring.serviceMonitors): ServiceMonitors/PodMonitors, the
embedded databases' exporter and the tenancy NetworkPolicy that lets Prometheus scrape them (no cluster).

The cross-check that matters: every port a monitor scrapes resolves to a container port of the pods it selects,
and the tenant's NetworkPolicy lets the monitoring namespace reach exactly that port.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from sovereign_suite.components.postgres import EXPORTER_IMAGE, EXPORTER_PORT
from sovereign_suite.components.tenancy import MONITORING_NAMESPACE_LABEL
from sovereign_suite.render import render_suite

from ..helpers import K8S_SCHEMA_VERSION, load_example, pod_specs, suite_with

MONITORING = "monitoring.coreos.com/v1"
ON = {"monitoring": {"serviceMonitors": True}}


def render(patch: dict[str, Any] | None = None, capabilities: frozenset[str] = frozenset({MONITORING})):
    _, clouds = load_example("four-countries")
    return render_suite(suite_with("four-countries", patch or {}), clouds, capabilities).manifests


@pytest.fixture(scope="module")
def objs():
    return render(ON)


def select(objs, kind: str, namespace: str, match: dict[str, str]) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and o["metadata"]["namespace"] == namespace
            and match.items() <= o["metadata"]["labels"].items()]


def pods_selected(objs, namespace: str, match: dict[str, str]) -> list[dict]:
    """Pod specs of the workloads whose pod template carries ``match``."""
    return [pod_specs(o)[0] for o in objs
            if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["namespace"] == namespace
            and match.items() <= o["spec"]["template"]["metadata"]["labels"].items()]


def container_port(pod: dict, port: str | int) -> dict | None:
    for c in pod["containers"]:
        for p in c.get("ports", []):
            if port in (p.get("name"), p["containerPort"]):
                return p
    return None


def scraped(objs) -> list[tuple[str, str, str, dict]]:
    """(monitor, namespace, path, container port) of every endpoint of every ServiceMonitor/PodMonitor."""
    out = []
    for m in (o for o in objs if o["apiVersion"] == MONITORING):
        ns, match = m["metadata"]["namespace"], m["spec"]["selector"]["matchLabels"]
        if m["kind"] == "ServiceMonitor":
            services = select(objs, "Service", ns, match)
            assert services, f"ServiceMonitor {ns}/{m['metadata']['name']} selects no Service"
            for svc in services:
                for ep in m["spec"]["endpoints"]:
                    [sp] = [p for p in svc["spec"]["ports"] if p["name"] == ep["port"]]
                    pods = pods_selected(objs, ns, svc["spec"]["selector"])
                    assert pods, svc["metadata"]["name"]
                    for pod in pods:
                        cp = container_port(pod, sp["targetPort"])
                        assert cp, f"{svc['metadata']['name']}: no container port {sp['targetPort']}"
                        out.append((m["metadata"]["name"], ns, ep["path"], cp))
        else:
            assert m["kind"] == "PodMonitor", m["kind"]
            pods = pods_selected(objs, ns, match)
            assert pods, f"PodMonitor {ns}/{m['metadata']['name']} selects no pod"
            for pod in pods:
                for ep in m["spec"]["podMetricsEndpoints"]:
                    cp = container_port(pod, ep["port"])
                    assert cp, f"PodMonitor {m['metadata']['name']}: no container port {ep['port']}"
                    out.append((m["metadata"]["name"], ns, ep["path"], cp))
    return out


def test_monitors_of_every_tenant(objs):
    by_ns: dict[str, set[tuple[str, str, str]]] = {}
    for o in objs:
        if o["apiVersion"] == MONITORING:
            by_ns.setdefault(o["metadata"]["namespace"], set()).add((o["kind"], o["metadata"]["name"],
                                                                    o["metadata"]["labels"]["sovereignsuite.io/component"]))
    assert set(by_ns) == {"eu-workplace-fr", "eu-workplace-de", "eu-workplace-lu", "eu-workplace-se"}
    for ns, monitors in by_ns.items():
        assert {("ServiceMonitor", "synapse", "matrix"), ("PodMonitor", "matrix-postgres", "matrix"),
                ("PodMonitor", "docs-postgres", "docs"), ("ServiceMonitor", "jitsi-jvb", "jitsi"),
                ("PodMonitor", "vllm", "llm")} <= monitors, ns
    # no gateway monitor: LiteLLM's Prometheus metrics are Enterprise-only in the pinned release
    assert not [o for o in objs if o["apiVersion"] == MONITORING and "gateway" in o["metadata"]["name"]]


def test_every_scraped_port_is_a_real_port_and_let_through(objs):
    endpoints = scraped(objs)
    paths = {(name, path, cp["containerPort"]) for name, _, path, cp in endpoints}
    assert {("synapse", "/_synapse/metrics", 9001), ("matrix-postgres", "/metrics", EXPORTER_PORT),
            ("vllm", "/metrics", 8000), ("jitsi-jvb", "/metrics", 8080)} <= paths
    for name, ns, _, cp in endpoints:
        # allow-monitoring (every pod's port named metrics) or allow-monitoring-<pod> (that pod's HTTP port only)
        policies = [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == ns
                    and o["metadata"]["name"] in ("allow-monitoring", f"allow-monitoring-{name}")]
        allowed = set()
        for policy in policies:
            [rule] = policy["spec"]["ingress"]
            assert rule["from"] == [{"namespaceSelector": {"matchLabels": {MONITORING_NAMESPACE_LABEL: "true"}}}]
            assert policy["spec"]["podSelector"] in ({}, {"matchLabels": {"app.kubernetes.io/name": name}})
            allowed |= {p["port"] for p in rule["ports"]}
        assert {cp["containerPort"], cp.get("name")} & allowed, f"{ns}: {name} port {cp} not allowed"


def test_vllm_pod_monitor_selects_every_model_and_not_the_gateway(objs):
    [monitor] = [o for o in objs if o["kind"] == "PodMonitor" and o["metadata"]["name"] == "vllm"
                 and o["metadata"]["namespace"] == "eu-workplace-fr"]
    match = monitor["spec"]["selector"]["matchLabels"]
    models = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "eu-workplace-fr"
              and o["metadata"]["name"].startswith("vllm-")]
    assert len(models) == 2
    assert all(match.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in models)
    gateway = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "llm-gateway"
               and o["metadata"]["namespace"] == "eu-workplace-fr"]
    assert gateway and not match.items() <= gateway[0]["spec"]["template"]["metadata"]["labels"].items()
    assert monitor["spec"]["podTargetLabels"] == ["sovereignsuite.io/model"]


def test_postgres_exporter_sidecar(objs):
    [sts] = [o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "matrix-postgres"
             and o["metadata"]["namespace"] == "eu-workplace-fr"]
    pod = pod_specs(sts)[0]
    assert [c["name"] for c in pod["containers"]] == ["postgres", "metrics"]
    c = pod["containers"][1]
    assert c["image"] == EXPORTER_IMAGE and ":v" in EXPORTER_IMAGE  # pinned, never :latest
    env = {e["name"]: e for e in c["env"]}
    # over TLS, verifying the server with the tenant's CA (localhost is one of its certificate's names)
    assert env["DATA_SOURCE_URI"]["value"] == "localhost:5432/matrix?sslmode=verify-full&sslrootcert=/etc/postgres-tls-ca/ca.crt"
    assert {"name": "tls-ca", "mountPath": "/etc/postgres-tls-ca", "readOnly": True} in c["volumeMounts"]
    [ca] = [v for v in pod["volumes"] if v["name"] == "tls-ca"]
    assert ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]  # not the server's key
    assert env["DATA_SOURCE_USER"]["value"] == "matrix"
    assert "DATA_SOURCE_PASS" not in env  # a file of the Secret instead (tests/test_secret_files.py)
    assert env["DATA_SOURCE_PASS_FILE"]["value"] == "/etc/postgres-password/password"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "readinessProbe" not in c  # the exporter never takes the database out of its Service
    assert c["resources"]["limits"]["memory"]


def test_every_built_in_object_validates(objs):
    for o in objs:
        if o["apiVersion"] != MONITORING:
            kubernetes_validate.validate(o, K8S_SCHEMA_VERSION, strict=True)


@pytest.mark.parametrize("patch,capabilities", [
    (None, frozenset({MONITORING})),  # not asked for
    (ON, frozenset()),  # asked for, but the cluster has no Prometheus Operator
])
def test_nothing_without_service_monitors(patch, capabilities):
    objs = render(patch, capabilities)
    assert not [o for o in objs if o["apiVersion"] == MONITORING]
    assert not [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-monitoring"]
    stss = [o for o in objs if o["kind"] == "StatefulSet"]
    assert stss and all(len(pod_specs(s)[0]["containers"]) == 1 for s in stss)


def test_policy_ports_follow_the_enabled_components():
    objs = render({**ON, "components": {"jitsi": {"enabled": False}, "llm": {"enabled": False}}})
    ports = {ns: [p["port"] for p in o["spec"]["ingress"][0]["ports"]] for o in objs
             if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "allow-monitoring"
             for ns in [o["metadata"]["namespace"]]}
    assert ports and all(p == ["metrics"] for p in ports.values())
    assert not [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].startswith("allow-monitoring-")]


def test_synapse_workers_are_scraped_on_their_metrics_port():
    """With workers, every worker pod's metrics listener (9001) is scraped through its type's headless Service,
    and no Service without a metrics port is selected (the router's -http and the sticky per-pod Services)."""
    objs = render({**ON, "components": {"matrix": {"workers": {"size": "large"}}}})
    endpoints = [(name, ns, path, cp["containerPort"]) for name, ns, path, cp in scraped(objs)
                 if name == "synapse-workers"]
    ns = "eu-workplace-fr"
    mine = [e for e in endpoints if e[1] == ns]
    # one endpoint per worker type (a Service per type; its pods share one pod template)
    types = [o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["namespace"] == ns
             and o["metadata"]["name"].startswith("synapse-")]
    assert len(mine) == len(types) == 10 and {(p, port) for _, _, p, port in mine} == {("/_synapse/metrics", 9001)}
