"""Evaluates rendered NetworkPolicies with Cyclonus (github.com/mattfenwick/cyclonus v0.5.6, hack/tools/cyclonus),
a real policy engine, offline: ``cyclonus analyze --mode query-traffic`` reads the policies and a list of
traffic cases and prints, per case in order, an ``IS ALLOWED? | TRUE/FALSE`` row (pkg/cli/analyze.go,
QueryTraffic; pkg/matcher/traffic.go for the case format).

The pods are the rendered workloads' pod templates (their labels and container ports), in namespaces carrying
the rendered Namespace labels plus ``kubernetes.io/metadata.name`` (set by the API server on every namespace).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .helpers import built_tools

WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str  # the workload's name (two vLLM Deployments share their app.kubernetes.io/name)
    labels: dict[str, str] = field(hash=False)
    ports: tuple[tuple[str, int, str], ...]  # (name, port, protocol)
    ip: str

    @property
    def app(self) -> str:
        return self.labels.get("app.kubernetes.io/name", self.name)


@dataclass(frozen=True)
class External:
    ip: str
    ports: tuple[tuple[str, int, str], ...]
    name: str


def cyclonus_bin() -> Path:
    """cyclonus from hack/build-tools.sh's cache (tests/helpers.py: fails under CI=true when missing)."""
    return built_tools(("cyclonus",), "netpol") / "cyclonus"


def namespace_labels(manifests: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    out = {}
    for o in manifests:
        if o["kind"] == "Namespace":
            name = o["metadata"]["name"]
            out[name] = {**o["metadata"].get("labels", {}), "kubernetes.io/metadata.name": name}
    return out


def rendered_pods(manifests: list[dict[str, Any]], first_ip: int = 10) -> list[Pod]:
    pods = []
    for o in manifests:
        if o["kind"] not in WORKLOADS:
            continue
        template = o["spec"]["template"] if o["kind"] != "Job" else o["spec"]["template"]
        ports = tuple(
            (p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
            for c in template["spec"]["containers"] for p in c.get("ports", [])
        )
        n = first_ip + len(pods)
        pods.append(Pod(o["metadata"]["namespace"], o["metadata"]["name"], template["metadata"]["labels"], ports,
                        f"10.244.{n // 250}.{n % 250 + 1}"))
    return pods


def _peer(end: Pod | External, ns_labels: dict[str, dict[str, str]]) -> dict[str, Any]:
    if isinstance(end, External):
        return {"IP": end.ip}
    return {"IP": end.ip, "Internal": {"PodLabels": end.labels, "NamespaceLabels": ns_labels[end.namespace],
                                       "Namespace": end.namespace}}


Case = tuple[Any, Any, int, str]  # (source, destination, port, protocol)


def evaluate(policies: list[dict[str, Any]], cases: list[Case], ns_labels: dict[str, dict[str, str]],
             port_names: dict[tuple[Any, int, str], str], workdir: Path) -> list[bool]:
    """Cyclonus' verdict for each case, in order."""
    policy_dir = workdir / "policies"
    policy_dir.mkdir()
    # one policy per file: given one multi-document file, v0.5.6 reads only part of it
    for i, p in enumerate(policies):
        (policy_dir / f"{i:04d}-{p['metadata']['namespace']}-{p['metadata']['name']}.yaml").write_text(yaml.safe_dump(p))
    traffic = [
        {"Source": _peer(src, ns_labels), "Destination": _peer(dst, ns_labels), "Protocol": proto,
         "ResolvedPort": port, "ResolvedPortName": port_names.get((dst, port, proto), "")}
        for src, dst, port, proto in cases
    ]
    traffic_path = workdir / "traffic.json"
    traffic_path.write_text(json.dumps(traffic))
    proc = subprocess.run(
        [str(cyclonus_bin()), "analyze", "--mode", "query-traffic", "--policy-path", str(policy_dir),
         "--traffic-path", str(traffic_path)],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"cyclonus exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    verdicts = re.findall(r"^\|\s*IS ALLOWED\?\s*\|\s*(TRUE|FALSE)\s*\|", proc.stdout, re.MULTILINE)
    assert len(verdicts) == len(cases), f"cyclonus answered {len(verdicts)} of {len(cases)} cases"
    return [v == "TRUE" for v in verdicts]
