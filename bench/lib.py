"""Shared by the benchmarks: a dedicated local cluster, the operator as a process, kubectl, the audit log.

Every figure comes from this machine at run time; nothing is estimated. Times are wall-clock seconds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from kubernetes import config  # noqa: E402

from sovereign_suite.devcluster.cluster import Cluster, bin_dir, dev_clouds  # noqa: E402
from sovereign_suite.reconcile.credentials import kubeconfig_client  # noqa: E402
from sovereign_suite.reconcile.kube import Kube  # noqa: E402
from tests.cluster.conftest import wait_for  # noqa: E402,F401 - the same polling helper as the tests
from tests.cluster.operator_fixture import (  # noqa: E402
    Audit, OperatorProcess, condition, create_referenced_secrets)

RESULTS = ROOT / "bench" / "results"
SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    """A throwaway cluster for one benchmark run."""

    def __init__(self, name: str):
        self.cluster = Cluster(f"bench-{name}-{os.getpid()}")

    def __enter__(self) -> "Bench":
        try:
            self.cluster.up(progress=log)
        except Exception:
            self.cluster.down()
            raise
        # the operator's own client (reconcile/credentials.py), as `sovereign-suite run` builds it: an operator
        # context made on it (member_cost.py, memory_breakdown.py) uses the clients the operator uses
        self.kube = Kube(kubeconfig_client(str(self.cluster.kubeconfig)), user_agent="sovereign-suite-bench")
        self.audit = Audit(self.cluster)
        self.kubectl = str(bin_dir() / "kubectl")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cluster.down()

    def operator(self, drift_interval: float = 60.0) -> OperatorProcess:
        return OperatorProcess(self.cluster, drift_interval=drift_interval)

    def namespace(self, name: str) -> str:
        self.kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, "bench")
        create_referenced_secrets(_core(self.cluster), name)
        return name

    def kubectl_run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl, "--kubeconfig", str(self.cluster.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
        return proc

    def delete_namespaces(self, names: list[str], timeout: float = 600) -> None:
        for n in names:
            self.kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})
        for n in names:
            wait_for(lambda: self.kube.get("v1", "Namespace", n) is None, timeout, 0.5, f"namespace {n} deleted")

    def ready(self, doc: dict[str, Any]) -> bool:
        s = self.kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])
        c = condition(s, "Ready")
        return bool(c and c["status"] == "True" and s["status"].get("observedGeneration") ==
                    s["metadata"]["generation"])

    def applied(self, doc: dict[str, Any]) -> bool:
        """The suite's last pass applied every child: Ready, or not Ready only because pods are not (yet)."""
        s = self.kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])
        c = condition(s, "Ready")
        return bool(c and c["reason"] in ("Ready", "ComponentsNotReady") and
                    s["status"].get("observedGeneration") == s["metadata"]["generation"])

    def workloads_ready(self, namespaces: list[str]) -> bool:
        for ns in namespaces:
            for kind in ("Deployment", "StatefulSet"):
                for w in self.kube.list("apps/v1", kind, namespace=ns):
                    want = w["spec"].get("replicas", 1)
                    st = w.get("status") or {}
                    if (st.get("readyReplicas") or 0) < want or (st.get("updatedReplicas") or 0) < want:
                        return False
        return True

    def operator_writes(self, since: int) -> list[dict[str, Any]]:
        return [e for e in self.audit.events(since)
                if e.get("verb") in ("create", "update", "patch", "delete", "deletecollection")]


def _core(cluster: Cluster):
    from kubernetes import client

    return client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))


def audit_time(ev: dict[str, Any]) -> float:
    stamp = ev.get("stageTimestamp") or ev["requestReceivedTimestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def suite_doc(example: str, namespace: str, name: str, patch: dict | None = None) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "manifests" / "examples" / f"{example}.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": namespace}
    for k, v in (patch or {}).items():
        doc["spec"][k] = v
    return doc


def rendered_yaml(doc: dict[str, Any], generate_secrets: bool = True) -> str:
    """What ``sovereign-suite render [--generate-secrets]`` prints for a suite document (in-process)."""
    from sovereign_suite.api.validation import parse_suite
    from sovereign_suite.cli import _dump_all
    from sovereign_suite.render import render_suite, with_secrets
    from sovereign_suite.secretgen import missing_keys

    result = render_suite(parse_suite(doc), dev_clouds())  # the clouds as the dev cluster holds them
    values = {(s.namespace, s.name): missing_keys(s, None) for s in result.secrets} if generate_secrets else None
    return _dump_all(with_secrets(result, values))


def count_objects(text: str) -> int:
    return text.count("\nkind: ") + text.startswith("kind: ")


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def table(rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)
