"""The operator as a real process (``sovereign-suite run``) against the test cluster, and what tests read
about it: suites' status, and the operator's own requests in the API server's audit log."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.rest import ApiException

from sovereign_suite.devcluster.cluster import Cluster, cache_dir

from ..helpers import EXAMPLE_FILES
from ..processes import free_port

OPERATOR_AGENTS = ("sovereign-suite-operator", "kopf/")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
SUITES = ("sovereignsuite.io/v1alpha1", "SovereignSuite")


class OperatorProcess:
    def __init__(self, cluster: Cluster, drift_interval: float = 3.0, env: dict[str, str] | None = None,
                 tag: str = "operator", args: tuple[str, ...] = ()):
        self.cluster = cluster
        self.args = tuple(args)  # extra arguments of `sovereign-suite run` (e.g. --local-cloud)
        self.drift_interval = drift_interval
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = cache_dir() / "test-logs" / f"{cluster.name}-{tag}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ, KUBECONFIG=str(self.cluster.kubeconfig),
                   SOVEREIGN_SUITE_DRIFT_INTERVAL=str(self.drift_interval), **self.extra_env)
        self.metrics_port = free_port()
        log = open(self.log_path, "a")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')}\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sovereign_suite.cli", "run", "--metrics-port", str(self.metrics_port),
             "--liveness-port", str(free_port()), *self.args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def metrics_text(self) -> str:
        """Everything the metrics endpoint serves ("" when not serving yet)."""
        import urllib.error
        import urllib.request

        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        except (urllib.error.URLError, ConnectionError):
            return ""  # not serving yet (just started)

    def series(self, name: str, **labels: str) -> list[str]:
        """The metric's sample lines matching ``labels`` (none when absent or not serving yet)."""
        text = self.metrics_text()
        return [line for line in text.splitlines()
                if (line.startswith(name + "{") or line.startswith(name + " "))
                and all(f'{k}="{v}"' in line for k, v in labels.items())]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples matching ``labels`` (0 when absent)."""
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.series(name, **labels))


class Audit:
    """Reads the operator's requests (user agents starting with one of ``agents``) from the API server's audit log,
    from a mark on."""

    agents: tuple[str, ...] = OPERATOR_AGENTS

    def __init__(self, cluster: Cluster):
        self.path = cluster.audit_log

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int) -> list[dict[str, Any]]:
        out = []
        with open(self.path, "rb") as f:
            f.seek(since)
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("userAgent", "").startswith(self.agents):
                    out.append(ev)
        return out

    def writes(self, since: int) -> list[str]:
        """The operator's mutating requests since ``since``, as 'verb resource/namespace/name' strings."""
        out = []
        for ev in self.events(since):
            if ev.get("verb") in WRITE_VERBS:
                ref = ev.get("objectRef") or {}
                out.append(f"{ev['verb']} {ref.get('resource')}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
                           f" {ref.get('namespace', '')}/{ref.get('name', '')}")
        return out


def suite_doc(example: str, namespace: str, name: str | None = None, patch: dict | None = None) -> dict[str, Any]:
    doc = yaml.safe_load(Path(EXAMPLE_FILES[example]).read_text())
    doc["metadata"] = {"name": name or f"s{uuid.uuid4().hex[:6]}", "namespace": namespace}

    def merge(a, b):
        for k, v in b.items():
            if isinstance(v, dict) and isinstance(a.get(k), dict):
                merge(a[k], v)
            else:
                a[k] = copy.deepcopy(v)

    merge(doc["spec"], patch or {})
    return doc


def create_referenced_secrets(core, namespace: str) -> None:
    for name, data in (("oidc-client", {"client-secret": "not-a-real-secret"}),
                       ("docs-s3", {"AWS_S3_ACCESS_KEY_ID": "id", "AWS_S3_SECRET_ACCESS_KEY": "key"}),
                       ("hf-token", {"token": "hf_test"})):
        try:
            # the owner of a Secret opts in to letting suites read it (docs/security.md)
            core.create_namespaced_secret(namespace, {"metadata": {
                "name": name, "labels": {"sovereignsuite.io/referenceable": "true"}}, "stringData": data})
        except ApiException as exc:
            if exc.status != 409:
                raise


def condition(suite: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((suite or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return None


def get_suite(kube, doc: dict[str, Any]) -> dict[str, Any] | None:
    return kube.get(*SUITES, doc["metadata"]["name"], doc["metadata"]["namespace"])


def wait_ready(kube, doc: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    """The suite once Ready for its current generation."""
    from .conftest import wait_for

    def ready():
        s = get_suite(kube, doc)
        c = condition(s, "Ready")
        gen = (s or {}).get("metadata", {}).get("generation")
        return s if c and c["status"] == "True" and s["status"].get("observedGeneration") == gen else None

    return wait_for(ready, timeout=timeout, what=f"suite {doc['metadata']['name']} Ready")
