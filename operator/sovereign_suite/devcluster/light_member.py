"""A light member cluster for scale tests and benchmarks: one kube-apiserver, its objects in another cluster's etcd
under a prefix of its own (bench/eu_scale.py, tests/cluster/test_multiplexed_watches.py).

What it is, and is not: a real API server (discovery, admission, RBAC, server-side apply, watches with bookmarks,
its own audit log), with the flags, certificates and etcd of the development cluster it is made from (the host)
except ``--etcd-prefix`` (``/members/<name>``: its objects are its own), ``--secure-port`` and the audit log path.
No controller manager, scheduler or kwok: a Deployment is stored but never rolls out, a namespace deleted stays
Terminating, no token controller fills a ServiceAccount token (so ``cloud join`` cannot run against it: the hub
reaches it with the host's admin certificate, written as its kubeconfig Secret directly, with no confining
policy). Where a suite's Ready is measured, use a full ``Cluster``. 27 of these cost about what their
kube-apiservers cost (the etcd is shared), which is what lets 27 members run on one machine.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

from .cluster import Cluster, ClusterError, bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flag(argv: list[str], name: str) -> str:
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    raise ClusterError(f"the host's kube-apiserver has no --{name}")


class LightMember:
    def __init__(self, host: Cluster, name: str):
        self.host, self.name = host, name
        self.dir = host.cluster_dir / "light-members" / name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _host_argv(self) -> list[str]:
        pid = int((self.host.cluster_dir / "pids" / "kube-apiserver.pid").read_text().strip())
        return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]

    def start(self) -> LightMember:
        """Start its kube-apiserver (does not wait: ``wait_ready``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        argv = []
        for a in self._host_argv():
            if a.startswith("--etcd-prefix="):
                a = f"--etcd-prefix=/members/{self.name}"
            elif a.startswith("--secure-port="):
                a = f"--secure-port={self.port}"
            elif a.startswith("--audit-log-path="):
                a = f"--audit-log-path={self.audit_log}"
            argv.append(a)
        if not any(a.startswith("--etcd-prefix=") for a in argv):
            argv.append(f"--etcd-prefix=/members/{self.name}")
        with open(self.dir / "kube-apiserver.log", "ab") as out:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def kubeconfig(self) -> dict:
        """A kubeconfig with its server and the host's admin certificate, inline (members/kubeconfig.py reads
        data only, never a file)."""
        argv = self._host_argv()
        data = {k: base64.b64encode(Path(_flag(argv, f)).read_bytes()).decode()
                for k, f in (("ca", "client-ca-file"), ("cert", "tls-cert-file"), ("key", "tls-private-key-file"))}
        return {"apiVersion": "v1", "kind": "Config", "current-context": self.name,
                "clusters": [{"name": self.name, "cluster": {"server": self.server,
                                                             "certificate-authority-data": data["ca"]}}],
                "users": [{"name": "admin", "user": {"client-certificate-data": data["cert"],
                                                     "client-key-data": data["key"]}}],
                "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "admin"}}]}

    def write_kubeconfig(self) -> Path:
        path = self.dir / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(self.kubeconfig()))
        return path

    def wait_ready(self, timeout: float = 180) -> None:
        path = self.write_kubeconfig()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ClusterError(f"light member {self.name}: kube-apiserver exited ({self.dir}/kube-apiserver.log)")
            p = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(path), "get", "--raw", "/readyz"],
                               capture_output=True, text=True)
            if p.returncode == 0 and p.stdout.strip() == "ok":
                return
            last = (p.stderr or p.stdout).strip()[-300:]
            time.sleep(1.0)
        raise ClusterError(f"light member {self.name} not ready after {timeout:.0f} s: {last}")

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (a hung API server). Always ``resume``."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, timeout: float = 15) -> None:
        """Its process ends (its objects stay in the host's etcd, gone with the host): SIGTERM, then SIGKILL after
        ``timeout`` (an API server whose etcd is gone may never finish its graceful shutdown)."""
        stop_all([self], timeout)


def stop_all(members: list[LightMember], timeout: float = 15) -> None:
    """Stop every member at once: SIGCONT (a paused one), SIGTERM, SIGKILL after ``timeout`` for those left."""
    running = [m.proc for m in members if m.proc is not None and m.proc.poll() is None]
    for p in running:
        for sig in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for p in running:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
