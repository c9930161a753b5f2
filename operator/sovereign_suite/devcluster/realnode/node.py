"""Start and stop the real node: containerd, kubelet, kube-proxy and kube-router as local processes, joined to a
local cluster's control plane. One per machine (fixed ports, one pod range, one bridge)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from ..cluster import Cluster, ClusterError, bin_dir, process_alive
from . import configs, host
from .configs import NODE_NAME, Layout
from .procs import http_ok, pids_of, port_busy, raise_inotify_instances, stop_process

NODE_BINARIES = ("kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "kube-router", "pause")
REPO_HACK = Path(__file__).resolve().parents[4] / "hack"
PROGRAMS = ("kube-router", "kube-proxy", "kubelet", "containerd")  # stop order
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def node_bin_dir(build: bool = False) -> Path:
    """The real node's binaries, beside the control plane's (``hack/build-tools.sh node``)."""
    path = bin_dir()
    missing = [b for b in NODE_BINARIES if not (path / b).exists()]
    if missing and build and (REPO_HACK / "build-tools.sh").exists():
        subprocess.run([str(REPO_HACK / "build-tools.sh"), "node"], check=True, stdout=subprocess.DEVNULL)
        missing = [b for b in NODE_BINARIES if not (path / b).exists()]
    if missing:
        raise ClusterError(f"missing real-node binaries in {path}: {', '.join(missing)} (run `make real-node-tools`)")
    return path


def host_tools(install: bool = False) -> None:
    """runc, the CNI plugins, iptables, ipset, conntrack (``hack/install-real-node-deps.sh``)."""
    script = REPO_HACK / "install-real-node-deps.sh"
    if install and script.exists():
        subprocess.run([str(script)], check=True)
    missing = [t for t in ("runc", "iptables", "ipset", "ip", "conntrack") if not shutil.which(t, path=PATH)]
    missing += [f"{configs.CNI_BIN}/{p}" for p in ("bridge", "host-local", "loopback", "portmap")
                if not os.access(f"{configs.CNI_BIN}/{p}", os.X_OK)]
    if missing:
        raise ClusterError(f"the real node needs {', '.join(missing)} (run hack/install-real-node-deps.sh)")


def node_ip() -> str:
    """The machine's address on its default route (the API server reaches kubelet there for logs and exec)."""
    out = subprocess.run(["ip", "-o", "route", "get", "192.0.2.255"], capture_output=True, text=True).stdout
    words = out.split()
    return words[words.index("src") + 1] if "src" in words else "127.0.0.1"


class RealNode:
    def __init__(self, cluster: Cluster, layout: Layout = Layout()):
        self.cluster, self.layout = cluster, layout

    # ---- state ------------------------------------------------------------------------------------
    def state(self) -> dict | None:
        try:
            return json.loads(self.layout.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _save_state(self, state: dict) -> None:
        self.layout.state_file.write_text(json.dumps(state, indent=1))

    @property
    def logs(self) -> Path:
        return self.cluster.logs_dir

    def _kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:3])}: {proc.stderr.strip()[-1000:]}")
        return proc

    # ---- up -----------------------------------------------------------------------------------------
    def check_free(self) -> None:
        """Refuse when a real node already runs on this machine (ours or another cluster's)."""
        state = self.state()
        if state:
            alive = [p for p in state.get("pids", {}).values() if process_alive(p)]
            raise ClusterError(
                f"a real node already runs on this machine (cluster {state.get('cluster')!r}, "
                f"{len(alive)} of its processes alive; state in {self.layout.state_file}): one real node per machine. "
                f"Stop it with `sovereign-suite cluster down --name {state.get('cluster')}`.")
        busy = [p for p in configs.PORTS if port_busy(p)]
        if busy:
            raise ClusterError(f"ports {busy} are in use on this machine (another kubelet or kube-proxy?): "
                               "one real node per machine")

    def up(self, progress=print, images: list[Path] | None = None) -> float:
        """Start the node. ``images``: archives to import (default: every stand-in already built, build.built(),
        and the operator's image when built for the current sources)."""
        start = time.monotonic()
        self.check_free()
        bins = node_bin_dir(build=True)
        host_tools(install=True)
        ca = self.cluster.cluster_dir / "pki" / "ca.crt"
        if not ca.exists():
            raise ClusterError(f"cluster {self.cluster.name} has no CA at {ca}: start it first")
        lay = self.layout
        lay.run.mkdir(parents=True, exist_ok=False)
        before = host.Snapshot.take()  # before anything of the node exists
        before.save(lay.run / "host-before.json")
        state = {"cluster": self.cluster.name, "kubeconfig": str(self.cluster.kubeconfig), "pids": {},
                 "started": time.time()}
        self._save_state(state)
        try:
            self._start(bins, ca, state, progress, images)
        except BaseException:
            progress("real node: start failed, restoring the machine")
            self.down(progress=progress)
            raise
        took = time.monotonic() - start
        progress(f"real node {NODE_NAME}: Ready in {took:.1f} s (region {configs.REGION})")
        return took

    def _certs(self, ca: Path) -> dict[str, tuple[Path, Path]]:
        pki = self.layout.pki
        pki.mkdir(parents=True, exist_ok=True)
        ca_key = ca.with_name("ca.key")
        out = {}
        ip = node_ip()
        for who, subject in (("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}"),
                             ("kube-proxy", "/CN=system:kube-proxy")):
            key, csr, crt = pki / f"{who}.key", pki / f"{who}.csr", pki / f"{who}.crt"
            subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                            "-subj", subject, "-out", str(csr)], check=True, capture_output=True)
            ext = pki / f"{who}.ext"
            ext.write_text("extendedKeyUsage=clientAuth,serverAuth\n"
                           f"subjectAltName=DNS:{NODE_NAME},IP:{ip},IP:127.0.0.1\n")
            subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                            "-CAcreateserial", "-CAserial", str(pki / "ca.srl"), "-days", "30", "-sha256",
                            "-extfile", str(ext), "-out", str(crt)], check=True, capture_output=True)
            out[who] = (crt, key)
        return out

    def _spawn(self, state: dict, name: str, argv: list[str]) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"realnode-{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={"PATH": f"{argv[0].rsplit('/', 1)[0]}:{PATH}",
                                                             "HOME": "/root", "NODE_NAME": NODE_NAME})
        log.close()
        state["pids"][name] = proc.pid
        self._save_state(state)
        return proc.pid

    def _wait(self, what: str, ok, timeout: float, pid: int | None = None, log: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            if pid is not None and not process_alive(pid):
                break
            time.sleep(0.5)
        tail = ""
        if log and (self.logs / log).exists():
            tail = "\n".join((self.logs / log).read_text(errors="replace").splitlines()[-15:])
        raise ClusterError(f"real node: {what} not ready after {timeout:.0f} s\n{tail}")

    def _start(self, bins: Path, ca: Path, state: dict, progress, images: list[Path] | None) -> None:
        lay = self.layout
        for d in (lay.conf, lay.kubelet_root, lay.cni_conf_dir, lay.cni_data):
            d.mkdir(parents=True, exist_ok=True)
        certs = self._certs(ca)
        server = yaml.safe_load(self.cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        for who, (crt, key) in certs.items():
            user = f"system:node:{NODE_NAME}" if who == "kubelet" else "system:kube-proxy"
            (lay.conf / f"{who}.kubeconfig").write_text(configs.kubeconfig(server, ca, crt, key, user))
        (lay.conf / "containerd.toml").write_text(configs.containerd_config(lay, bins))
        (lay.cni_conf_dir / "10-sovereign-suite.conflist").write_text(configs.cni_config(lay))
        (lay.conf / "kubelet.yaml").write_text(configs.kubelet_config(lay, ca))
        (lay.conf / "kube-proxy.yaml").write_text(configs.kube_proxy_config(lay.conf / "kube-proxy.kubeconfig"))

        progress("real node: starting containerd")
        # before containerd: its CRI plugin takes an inotify instance too (its CNI config watcher); without one it
        # fails to load ("couldn't initialize inotify: too many open files", seen 2026-12-04 with other helpers'
        # clusters up) while containerd still answers, and kubelet exits ("unknown service runtime.v1.RuntimeService")
        raise_inotify_instances()
        pid = self._spawn(state, "containerd", [str(bins / "containerd"), "--config", str(lay.conf / "containerd.toml")])
        self._wait("containerd", lambda: self._ctr("version").returncode == 0, 30, pid, "realnode-containerd.log")
        self._wait("containerd's CRI plugin", self._cri_ok, 15, pid, "realnode-containerd.log")
        from . import images as images_mod

        from .build import built

        from .operator_image import archive_path as operator_archive

        if images is None:  # every stand-in built, and the operator's image when `make operator-image` made it
            images = [*built(), *[a for a in (operator_archive(),) if a.exists()]]
        for archive in [images_mod.pause_archive(bins), *images]:
            self.import_image(archive)
        progress("real node: starting kubelet")
        pid = self._spawn(state, "kubelet", [
            str(bins / "kubelet"), f"--config={lay.conf / 'kubelet.yaml'}",
            f"--kubeconfig={lay.conf / 'kubelet.kubeconfig'}", f"--root-dir={lay.kubelet_root}",
            f"--cert-dir={lay.pki}", f"--hostname-override={NODE_NAME}", f"--node-ip={node_ip()}",
            "--node-labels=" + ",".join(f"{k}={v}" for k, v in configs.node_labels().items()), "--v=1",
        ])
        self._wait(f"node {NODE_NAME}", self._node_ready, 90, pid, "realnode-kubelet.log")
        progress("real node: starting kube-proxy and kube-router (NetworkPolicy only)")
        pid = self._spawn(state, "kube-proxy", [str(bins / "kube-proxy"), f"--config={lay.conf / 'kube-proxy.yaml'}",
                                                "--v=1"])
        self._wait("kube-proxy", lambda: http_ok(configs.PROXY_HEALTHZ, "/healthz"), 60, pid,
                   "realnode-kube-proxy.log")
        pid = self._spawn(state, "kube-router", [
            str(bins / "kube-router"), f"--kubeconfig={self.cluster.kubeconfig}", f"--hostname-override={NODE_NAME}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--enable-ipv6=false", f"--health-port={configs.ROUTER_HEALTH}",
            f"--metrics-port={configs.ROUTER_METRICS}", "--v=1",
        ])
        self._wait("kube-router", lambda: http_ok(configs.ROUTER_HEALTH, "/healthz"), 60, pid,
                   "realnode-kube-router.log")
        self._start_dns(server, progress)

    def _start_dns(self, server: str, progress) -> None:
        """kube-dns for the node's pods (dns.py), from its image (built once, cached)."""
        from .build import build
        from .standins import DNS

        self.import_image(build(DNS, progress))
        objs = configs.dns_objects(DNS.name, server, self.cluster.cluster_dir / "pki")
        proc = subprocess.run([str(bin_dir() / "kubectl"), "--kubeconfig", str(self.cluster.kubeconfig), "apply",
                               "--server-side", "-f", "-"], input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                               "items": objs}),
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ClusterError(f"real node: kube-dns: {proc.stderr.strip()[-800:]}")
        for pod in (f"kube-dns-resolver-{NODE_NAME}", f"kube-dns-{NODE_NAME}"):
            self._wait(pod, lambda: self._kubectl(
                "-n", "kube-system", "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].ready}",
                check=False).stdout == "true", 90)

    def _cri_status(self) -> str:
        """The status of containerd's CRI gRPC plugin (``ctr plugins ls``: TYPE ID PLATFORMS STATUS; kubelet
        talks to it), or "absent"."""
        for line in self._ctr("plugins", "ls", timeout=30).stdout.splitlines():
            fields = line.split()
            if fields[:2] == ["io.containerd.grpc.v1", "cri"]:
                return fields[-1]
        return "absent"

    def _cri_ok(self) -> bool:
        return self._cri_status() == "ok"

    def _ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(bin_dir() / "ctr"), "--address", str(self.layout.containerd_sock), "-n", "k8s.io",
                               *args], capture_output=True, text=True, timeout=timeout)

    def import_image(self, archive: Path) -> None:
        proc = self._ctr("images", "import", str(archive))
        if proc.returncode != 0:
            raise ClusterError(f"ctr images import {archive.name}: {proc.stderr.strip()[-800:]}")

    def alias_images(self, registry: str) -> list[str]:
        """Tag every image of the node's containerd under ``registry`` as well, at the reference a NationalCloud
        with that imageRegistry makes of it (imageref.rewrite): the country's own mirror, locally."""
        from ...imageref import rewrite

        made = []
        for name in self._ctr("images", "ls", "-q", timeout=30).stdout.split():
            target = rewrite(name, registry)
            if name.startswith("sha256:") or name.startswith(registry + "/"):
                continue
            proc = self._ctr("images", "tag", "--force", name, target, timeout=30)
            if proc.returncode != 0:
                raise ClusterError(f"ctr images tag {name} {target}: {proc.stderr.strip()}")
            made.append(target)
        return made

    def _node_ready(self) -> bool:
        proc = self._kubectl("get", "node", NODE_NAME, "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
        return proc.returncode == 0 and proc.stdout.strip() == "True"

    # ---- down ---------------------------------------------------------------------------------------
    def down(self, progress=print, timeout: float = 90) -> bool:
        """Stop everything the node started and put the machine back as it was. False: no node was running."""
        lay = self.layout
        state = self.state()
        if state is None and not lay.run.exists() and not lay.base.exists():
            return False
        state = state or {"pids": {}}
        pids: dict[str, int] = state.get("pids", {})
        if pids.get("kubelet") and process_alive(pids["kubelet"]) and self.cluster.exists():
            self._evict(progress, timeout)
        for name in PROGRAMS[:3]:
            stop_process(pids.get(name))
        self._remove_containers()
        stop_process(pids.get("containerd"))
        for pid in pids_of(str(bin_dir() / "containerd-shim-runc-v2")):  # shims of containers not removed
            stop_process(pid, grace=5)
        if self.cluster.exists():
            self._kubectl("delete", "node", NODE_NAME, "--ignore-not-found", "--wait=false", check=False)
        before_file = lay.run / "host-before.json"
        before = host.Snapshot.load(before_file) if before_file.exists() else None
        host.unmount_under([str(lay.base), str(lay.run)])
        if before is not None:
            host.restore(before, own_links=(configs.BRIDGE, "veth"))
        for d in (lay.base, lay.run):
            if d.exists():
                subprocess.run(["rm", "-rf", "--one-file-system", str(d)], capture_output=True)
        progress(f"real node {NODE_NAME}: stopped, machine restored")
        return True

    def _evict(self, progress, timeout: float) -> None:
        """Taint the node NoExecute: every pod leaves it through kubelet, which tears down its sandbox (network
        namespace, veth, IP lease, CNI chains) the regular way."""
        progress(f"real node: evicting pods from {NODE_NAME}")
        self._kubectl("taint", "node", NODE_NAME, "sovereignsuite.io/shutdown=true:NoExecute", "--overwrite",
                      check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self._kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={NODE_NAME}", "-o", "name",
                                 check=False)
            if proc.returncode == 0 and not proc.stdout.strip():
                break
            time.sleep(1)
        while time.monotonic() < deadline:  # sandboxes stopped (kubelet stops them after the pods are gone)
            proc = self._ctr("tasks", "ls", "-q", timeout=20)
            if proc.returncode != 0 or not proc.stdout.strip():
                return
            time.sleep(1)

    def _remove_containers(self) -> None:
        if not self.layout.containerd_sock.exists():
            return
        tasks = self._ctr("tasks", "ls", "-q", timeout=20).stdout.split()
        for t in tasks:
            self._ctr("tasks", "kill", "-s", "SIGKILL", t, timeout=20)
        for t in tasks:
            for _ in range(20):
                if self._ctr("tasks", "delete", "-f", t, timeout=20).returncode == 0:
                    break
                time.sleep(0.3)
        for c in self._ctr("containers", "ls", "-q", timeout=20).stdout.split():
            self._ctr("containers", "delete", c, timeout=20)
