"""Real traffic against the FR tenant's NetworkPolicies, enforced by kube-router on the real node: from a pod in
the other tenant's namespace, the ingress controller's namespace, a monitoring namespace, an unrelated namespace
and from Synapse itself, a TCP connection to each serving port of FR's pods. The measured matrix must equal the
one Cyclonus computes from the policies in the cluster (tests/netpol_eval.py), and hold both outcomes. (Synapse
reaching its own address is measured apart: kube-router does not filter a pod's traffic to itself.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..netpol_eval import Pod, evaluate
from .realnode_fixture import FR_NS, INGRESS_NS, Real, ensure_suite

pytestmark = [pytest.mark.realnode, pytest.mark.slow]

SOURCES = (  # (namespace, extra namespace labels)
    ("rn-de", {}),  # the other tenant
    (INGRESS_NS, {}),
    ("rn-monitoring", {"sovereignsuite.io/monitoring": "true"}),
    ("rn-unrelated", {}),
)
PROBE = """import json,socket,sys
from concurrent.futures import ThreadPoolExecutor
def ok(t):
    try:
        socket.create_connection((t[0], t[1]), timeout=3).close(); return True
    except OSError:
        return False
with ThreadPoolExecutor(16) as ex: print(json.dumps(list(ex.map(ok, json.loads(sys.argv[1])))))
"""


def _pod(obj: dict) -> Pod:
    ports = tuple((p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
                  for c in obj["spec"]["containers"] for p in c.get("ports", []))
    return Pod(obj["metadata"]["namespace"], obj["metadata"]["name"], obj["metadata"].get("labels", {}), ports,
               obj["status"]["podIP"])


def test_measured_matrix_equals_the_policies(real: Real, tmp_path: Path):
    r = real
    ensure_suite(r)
    fr = [json.loads(r.kubectl("-n", FR_NS, "get", "pod", p, "-o", "json")) for p in
          r.kubectl("-n", FR_NS, "get", "pods", "-o", "jsonpath={.items[*].metadata.name}").split()]
    targets = [(pod, port, proto) for pod in map(_pod, fr) for _, port, proto in pod.ports if proto == "TCP"]
    assert {t[0].app for t in targets} >= {"synapse", "element-web", "matrix-postgres"}, targets
    sources: list[tuple[Pod, str]] = []
    for ns, labels in SOURCES:
        name = r.client_pod(ns, "probe", labels)
        sources.append((_pod(json.loads(r.kubectl("-n", ns, "get", "pod", name, "-o", "json"))), "c"))
    synapse = next(p for p in fr if p["metadata"]["labels"].get("app.kubernetes.io/name") == "synapse")
    sources.append((_pod(synapse), "synapse"))  # from inside the tenant: Synapse to its database and neighbours

    measured, cases = [], []
    for src, container in sources:
        out = r.kubectl("-n", src.namespace, "exec", src.name, "-c", container, "--", "python3", "-c", PROBE,
                        json.dumps([[dst.ip, port] for dst, port, _ in targets]), timeout=180)
        measured += json.loads(out)
        cases += [(src, dst, port, proto) for dst, port, proto in targets]

    namespaces = json.loads(r.kubectl("get", "namespaces", "-o", "json"))["items"]
    ns_labels = {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in namespaces}
    policies = [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": p["metadata"]["name"], "namespace": p["metadata"]["namespace"]},
                 "spec": p["spec"]}
                for p in json.loads(r.kubectl("get", "networkpolicies", "-A", "-o", "json"))["items"]]
    port_names = {(dst, port, proto): name for dst in {t[0] for t in targets} for name, port, proto in dst.ports}
    computed = evaluate(policies, cases, ns_labels, port_names, tmp_path)

    table = [f"{'ALLOW' if m else 'deny '} {'ALLOW' if c else 'deny '}  {s.namespace}/{s.app} -> {d.app}:{p}"
             for (s, d, p, _), m, c in zip(cases, measured, computed)]
    print("measured computed  connection\n" + "\n".join(table))
    assert any(measured) and not all(measured), "the matrix must hold allowed and refused connections"
    # A pod reaching its own address is not filtered by kube-router (its chains see the pod's own traffic
    # as the pod's, and Kubernetes does not define a pod's policy on itself); Cyclonus applies the ingress rules.
    # Those cases are measured (they connect) and left out of the comparison.
    own = [s.ip == d.ip for s, d, _, _ in cases]
    assert all(m for m, o in zip(measured, own) if o)
    assert [m for m, o in zip(measured, own) if not o] == [c for c, o in zip(computed, own) if not o], \
        "\n".join(t for t, m, c, o in zip(table, measured, computed, own) if m != c and not o)
