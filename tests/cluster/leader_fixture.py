"""Two operator processes with ``--leader-elect`` on the test cluster, and what the tests read about them: which
one leads (the Lease and each process's log), and each replica's requests in the API server's audit log (each
replica's identity is in its user agents: ``sovereign-suite-operator/<id>`` for the work,
``sovereign-suite-leader-election/<id>`` for the Lease)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from sovereign_suite.devcluster.cluster import Cluster
from sovereign_suite.leader.lease import LEASE, record_of
from sovereign_suite.leader.work import LEASE_AGENT
from sovereign_suite.reconcile.kube import USER_AGENT

from .conftest import wait_for
from .operator_fixture import WRITE_VERBS, Audit, OperatorProcess, free_port

LEASE_NAME = "sovereign-suite-operator"


class Replica(OperatorProcess):
    """``kubeconfig``: another way to the API server than the cluster's own (a proxy that can cut it off)."""

    def __init__(self, cluster: Cluster, lease_namespace: str, tag: str, drift_interval: float = 3.0,
                 kubeconfig: Path | None = None):
        super().__init__(cluster, drift_interval=drift_interval, tag=tag,
                         args=("--leader-elect", "--leader-elect-resource-namespace", lease_namespace))
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.identity = ""
        self._log_from = 0

    def start(self) -> None:
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.identity = ""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig),
                   SOVEREIGN_SUITE_DRIFT_INTERVAL=str(self.drift_interval))
        self.metrics_port = free_port()
        log = open(self.log_path, "a")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')}\n")
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sovereign_suite.cli", "run", "--metrics-port", str(self.metrics_port),
             "--liveness-port", str(free_port()), *self.args], env=env, stdout=log, stderr=subprocess.STDOUT)

    def campaigning(self) -> str:
        """This process's identity once its elector runs (after its caches synced), else ''."""
        if not self.identity:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                f.seek(self._log_from)
                m = re.search(r"campaigning as (\S+) ", f.read())
            self.identity = m.group(1) if m else ""
        return self.identity

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            f.seek(self._log_from)
            return f.read()


def holder(kube, namespace: str) -> str:
    lease = kube.get(*LEASE, LEASE_NAME, namespace)
    return record_of(lease).holder if lease else ""


def kubeconfig_via(cluster: Cluster, port: int, path: Path) -> Path:
    """The cluster's kubeconfig with the API server reached on 127.0.0.1:``port`` instead."""
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    for c in cfg["clusters"]:
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(cfg))
    return path


def api_server_port(cluster: Cluster) -> int:
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    return int(cfg["clusters"][0]["cluster"]["server"].rsplit(":", 1)[1])


def start_pair(cluster: Cluster, kube, namespace: str, a_kubeconfig: Path | None = None
               ) -> tuple[Replica, Replica]:
    """Start A, wait until it leads, then B, until it campaigns (a standby with synced caches)."""
    a = Replica(cluster, namespace, "leader-a", kubeconfig=a_kubeconfig)
    b = Replica(cluster, namespace, "leader-b")
    a.start()
    wait_for(lambda: a.campaigning() and holder(kube, namespace) == a.identity, timeout=120, what="A leads")
    b.start()
    wait_for(b.campaigning, timeout=120, what="B campaigns")
    assert holder(kube, namespace) == a.identity
    return a, b


def stamp(ev: dict[str, Any], field: str = "requestReceivedTimestamp") -> dt.datetime:
    return dt.datetime.fromisoformat(ev[field].replace("Z", "+00:00"))


class ReplicaAudit(Audit):
    """Every request of the replicas (work, Lease and Kopf's) in the audit log, from a mark on."""

    agents = (USER_AGENT, LEASE_AGENT, "kopf/")

    @staticmethod
    def writes_by(events: list[dict[str, Any]], agent_prefix: str) -> list[dict[str, Any]]:
        return [e for e in events if e.get("verb") in WRITE_VERBS and e["userAgent"].startswith(agent_prefix)]


def work_agent(identity: str) -> str:
    return f"{USER_AGENT}/{identity}"


def lease_agent(identity: str) -> str:
    return f"{LEASE_AGENT}/{identity}"


def describe(ev: dict[str, Any]) -> str:
    ref = ev.get("objectRef") or {}
    return (f"{ev['requestReceivedTimestamp']} {ev['verb']} {ref.get('resource')}/{ref.get('namespace', '')}/"
            f"{ref.get('name', '')} {ev.get('responseStatus', {}).get('code')} by {ev['userAgent']}")


def duplicates_created(events: list[dict[str, Any]]) -> list[str]:
    """Objects the replicas created successfully more than once (a create answered 201 twice for one name)."""
    seen: dict[tuple, int] = {}
    for e in events:
        ref = e.get("objectRef") or {}
        if e.get("verb") == "create" and (e.get("responseStatus") or {}).get("code") == 201 and ref.get("name"):
            key = (ref.get("resource"), ref.get("namespace"), ref.get("name"))
            seen[key] = seen.get(key, 0) + 1
    return [f"{k}: {n}" for k, n in seen.items() if n > 1]


def seconds_written_by_two(events: list[dict[str, Any]]) -> list[str]:
    """The seconds (of the API server's clock) in which work writes came from more than one replica."""
    by_second: dict[str, set[str]] = {}
    for e in events:
        if e.get("verb") in WRITE_VERBS and e["userAgent"].startswith(USER_AGENT + "/"):
            by_second.setdefault(e["requestReceivedTimestamp"][:19], set()).add(e["userAgent"])
    return [f"{s}: {sorted(agents)}" for s, agents in sorted(by_second.items()) if len(agents) > 1]


def wait_exit(replica: Replica, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while replica.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    code = replica.proc.poll()
    assert code is not None, f"{replica.log_path}: still running {timeout:.0f} s later"
    return code
