"""A real local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with kwok
simulating the nodes of each national cloud. No container engine needed.

The binaries are built from the official Go modules by ``hack/build-tools.sh`` (``make tools``) into a cache
outside the repository. ``kwokctl``'s binary runtime starts them as local processes (it links local binaries
instead of downloading when given paths). Several clusters can run side by side: kwokctl picks free ports and
each cluster has its own name, work folder and kubeconfig.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .kwok_config import kwokctl_config

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent.parent.parent  # operator/sovereign_suite/devcluster -> repository
CLOUDS_FILE = PACKAGE_DIR / "clouds.yaml"
AUDIT_POLICY = PACKAGE_DIR / "audit-policy.yaml"
EXAMPLE_CLOUDS = REPO_ROOT / "manifests" / "examples" / "clouds.yaml"
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kwokctl")


class ClusterError(Exception):
    pass


def cache_dir() -> Path:
    base = os.environ.get("SOVEREIGN_SUITE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sovereign-suite"
    )
    return Path(base)


def bin_dir(build: bool = False) -> Path:
    """Folder of the built binaries. ``build``: run hack/build-tools.sh when some are missing."""
    override = os.environ.get("SOVEREIGN_SUITE_BIN")
    if override:
        return Path(override)
    script = REPO_ROOT / "hack" / "build-tools.sh"
    if not script.exists():
        raise ClusterError(f"{script} not found: set SOVEREIGN_SUITE_BIN to a folder with {', '.join(BINARIES)}")
    path = Path(subprocess.run([str(script), "--print"], check=True, capture_output=True, text=True).stdout.strip())
    missing = [b for b in BINARIES if not (path / b).exists()]
    if missing and build:
        subprocess.run([str(script)], check=True, stdout=subprocess.DEVNULL)
        missing = [b for b in BINARIES if not (path / b).exists()]
    if missing:
        raise ClusterError(f"missing binaries in {path}: {', '.join(missing)} (run `make tools`)")
    return path


@dataclass
class Cluster:
    name: str = "sovereign-suite"

    @property
    def workdir(self) -> Path:
        return cache_dir() / "kwok"

    @property
    def kubeconfig(self) -> Path:
        return cache_dir() / f"kubeconfig-{self.name}.yaml"

    @property
    def cluster_dir(self) -> Path:
        return self.workdir / "clusters" / self.name

    @property
    def logs_dir(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (Metadata level, see audit-policy.yaml)."""
        return self.logs_dir / "audit.log"

    def _env(self, bins: Path) -> dict[str, str]:
        env = dict(os.environ)
        version = subprocess.run(
            [str(bins / "kube-apiserver"), "--version"], check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        env.update(KWOK_WORKDIR=str(self.workdir), KWOK_KUBE_VERSION=version)
        return env

    def _kwokctl(self, bins: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(bins / "kwokctl"), *args], env=self._env(bins), capture_output=True, text=True, timeout=300
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kwokctl {' '.join(args[:3])} failed:\n{proc.stderr[-3000:]}")
        return proc

    def exists(self) -> bool:
        return (self.cluster_dir / "kwok.yaml").exists()

    # ---------------------------------------------------------------------------------------
    def up(self, clouds: bool = True, crds: bool = True, progress=print, attempts: int = 2,
           countries: list[str] | None = None, real_node: bool = False, images: list[Path] | None = None) -> float:
        """Start the cluster (or reuse a running one), then create the simulated clouds. Returns seconds taken.

        kwokctl picks free ports when it creates a cluster; two clusters created at the same moment can pick the
        same one, and a component then fails to listen. A cluster that does not come up is deleted and created
        again (``attempts`` in all). ``real_node``: also start the machine's real node (devcluster/realnode);
        ``images``: the archives it imports (default: every stand-in built, and the operator's image)."""
        if real_node:
            from .realnode import RealNode

            RealNode(self).check_free()  # before starting anything: one real node per machine
        for attempt in range(1, attempts + 1):
            fresh = not self.exists()
            try:
                took = self._up(clouds, crds, progress, countries, real_node)
                break
            except ClusterError as err:
                if attempt == attempts or not fresh:
                    raise
                progress(f"cluster {self.name}: did not come up ({str(err).splitlines()[0][:200]}); retrying")
                self.down()
        if real_node:
            from .realnode import RealNode

            took += RealNode(self).up(progress=progress, images=images)
        return took

    def _up(self, clouds: bool, crds: bool, progress, countries: list[str] | None = None,
            real_node: bool = False) -> float:
        start = time.monotonic()
        bins = bin_dir(build=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.exists():
            progress(f"cluster {self.name}: already created, starting it if stopped")
            self._kwokctl(bins, "start", "cluster", "--name", self.name, "--wait", "2m")
        else:
            config = self.workdir / f"{self.name}-config.yaml"
            advertise = None
            if real_node:
                from .realnode.node import node_ip

                advertise = node_ip()
            config.write_text(kwokctl_config(self.cluster_dir, advertise))
            progress(f"cluster {self.name}: starting etcd, kube-apiserver, controller-manager, scheduler, kwok")
            self._kwokctl(
                bins, "create", "cluster", "--name", self.name, "--runtime", "binary",
                "--config", str(config),
                f"--kube-apiserver-binary={bins / 'kube-apiserver'}",
                f"--kube-controller-manager-binary={bins / 'kube-controller-manager'}",
                f"--kube-scheduler-binary={bins / 'kube-scheduler'}",
                f"--kwok-controller-binary={bins / 'kwok'}",
                f"--etcd-binary={bins / 'etcd'}",
                f"--kubeconfig={self.kubeconfig}",
                # PVCs bind through the in-tree hostPath provisioner (development only; StorageClass "standard")
                "--extra-args=kube-controller-manager=enable-hostpath-provisioner=true",
                f"--kube-audit-policy={AUDIT_POLICY}",
                # room for many suites' Services (the default /24 holds 254)
                "--extra-args=kube-apiserver=service-cluster-ip-range=10.96.0.0/16",
                "--wait=2m",
            )
        self.wait_healthy()
        if crds:
            from . import seed

            seed.install_crds(self.kubeconfig)
        if clouds:
            from . import seed

            seed.create_storage_class(self.kubeconfig)
            simulated = load_clouds()
            wanted = {c.upper() for c in countries} if countries else set(simulated)
            unknown = sorted(wanted - set(simulated))
            if unknown:
                raise ClusterError(f"no simulated cloud for {', '.join(unknown)} (known: {', '.join(sorted(simulated))})")
            nodes = seed.create_nodes(self.kubeconfig, {c: v for c, v in simulated.items() if c in wanted})
            progress(f"cluster {self.name}: {nodes} simulated nodes ({', '.join(sorted(wanted))})")
            if crds and EXAMPLE_CLOUDS.exists():
                seed.apply_national_clouds(self.kubeconfig, EXAMPLE_CLOUDS, countries=wanted,
                                           suite_namespaces=dev_suite_namespaces())
            seed.wait_nodes_ready(self.kubeconfig)
        took = time.monotonic() - start
        progress(f"cluster {self.name}: ready in {took:.1f} s; KUBECONFIG={self.kubeconfig}")
        return took

    def stop_component(self, component: str = "kube-apiserver") -> None:
        """Stop one process of the cluster (SIGTERM, as an administrator would): a member whose API server stops
        answering, for the tests. ``start_component`` runs it again with the same flags, ports and
        certificates, and, like a node's supervisor, restarts the components that exited meanwhile (the
        scheduler and the controller manager exit when they lose their leader lease)."""
        pid = self._save_argv(component)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def start_component(self, component: str = "kube-apiserver") -> None:
        self._run_again(component)
        self._restart_exited(component)

    def pause_component(self, component: str = "kube-apiserver") -> None:
        """Freeze one process (SIGSTOP): its sockets stay open, the kernel still accepts connections and
        acknowledges what is sent, and nothing is ever answered, as with a hung API server or a black-holed route.
        ``resume_component`` lets it go on (SIGCONT); always call it (a frozen process outlives the test)."""
        os.kill(self._save_argv(component), signal.SIGSTOP)

    def resume_component(self, component: str = "kube-apiserver") -> None:
        os.kill(int((self.cluster_dir / "pids" / f"{component}.pid").read_text().strip()), signal.SIGCONT)
        self._restart_exited(component)

    def _save_argv(self, component: str) -> int:
        """Record every running component's command line (to run it again); the pid of ``component``."""
        pids = self.cluster_dir / "pids"
        for f in pids.glob("*.pid"):
            pid = int(f.read_text().strip())
            if process_alive(pid):
                argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
                (self.cluster_dir / f"{f.stem}.argv").write_text("\n".join(argv))
        return int((pids / f"{component}.pid").read_text().strip())

    def _restart_exited(self, component: str) -> None:
        """Once ``component`` answers, run again the others that exited meanwhile (the scheduler and the controller
        manager exit when they lose their leader lease)."""
        self.wait_healthy()
        for f in sorted((self.cluster_dir / "pids").glob("*.pid")):
            if f.stem != component and not process_alive(int(f.read_text().strip())):
                self._run_again(f.stem)

    def _run_again(self, component: str, attempts: int = 5) -> None:
        """Run a component again with its recorded command line. One that exits within 3 s is run again (up to
        ``attempts`` times): its port, free while it was down, may be held for a moment by a cluster being
        created beside this one (kwokctl picks free ports; seen once: "bind: address already in use")."""
        argv = (self.cluster_dir / f"{component}.argv").read_text().split("\n")
        for attempt in range(1, attempts + 1):
            with open(self.logs_dir / f"{component}.log", "a") as log:
                proc = subprocess.Popen(argv, cwd=self.cluster_dir, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            (self.cluster_dir / "pids" / f"{component}.pid").write_text(str(proc.pid))  # `down` stops it
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                return  # running
            if attempt < attempts:
                time.sleep(2)

    def wait_healthy(self, timeout: float = 120) -> None:
        bins = bin_dir()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [str(bins / "kubectl"), "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
                capture_output=True, text=True,
            )
            if proc.returncode == 0 and proc.stdout.strip() == "ok":
                return
            last = (proc.stderr or proc.stdout).strip()[-500:]
            time.sleep(0.5)
        raise ClusterError(f"API server of {self.name} not healthy after {timeout:.0f} s: {last}")

    def _pids(self) -> list[int]:
        pids = []
        for f in sorted((self.cluster_dir / "pids").glob("*.pid")):
            try:
                pids.append(int(f.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def _hostpath_volumes(self) -> list[str]:
        bins = bin_dir()
        proc = subprocess.run(
            [str(bins / "kubectl"), "--kubeconfig", str(self.kubeconfig), "get", "pv", "-o",
             "jsonpath={range .items[*]}{.spec.hostPath.path}{'\\n'}{end}"],
            capture_output=True, text=True,
        )
        return [p for p in proc.stdout.split() if p.startswith("/tmp/hostpath_pv/")]

    def down(self, timeout: float = 30) -> None:
        """Stop every process of the cluster and remove its folder and kubeconfig; waits until they are gone.
        The machine's real node goes first when it belongs to this cluster."""
        from .realnode import RealNode

        node = RealNode(self)
        if (node.state() or {}).get("cluster") == self.name:
            node.down(progress=main_progress)
        bins = bin_dir()
        pids = self._pids()
        volumes = self._hostpath_volumes() if self.exists() else []
        if self.exists():
            self._kwokctl(bins, "delete", "cluster", "--name", self.name, f"--kubeconfig={self.kubeconfig}")
        deadline = time.monotonic() + timeout
        for pid in pids:
            while process_alive(pid):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.1)
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        for path in volumes:  # the hostPath provisioner's folders of this cluster's volumes
            shutil.rmtree(path, ignore_errors=True)
        for f in (self.kubeconfig, self.workdir / f"{self.name}-config.yaml"):
            f.unlink(missing_ok=True)
        for d in (self.workdir / "clusters", self.workdir):
            if d.exists() and not any(d.iterdir()):
                d.rmdir()

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "created": self.exists(), "kubeconfig": str(self.kubeconfig)}
        if not self.exists():
            return info
        bins = bin_dir()
        proc = subprocess.run(
            [str(bins / "kubectl"), "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
            capture_output=True, text=True,
        )
        info["healthy"] = proc.returncode == 0 and proc.stdout.strip() == "ok"
        info["logs"] = str(self.logs_dir)
        from .realnode import RealNode

        node = RealNode(self).state()
        if node and node.get("cluster") == self.name:
            info["realNode"] = {"pids": node.get("pids", {}), "state": str(RealNode(self).layout.state_file)}
        return info


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a process of another user counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def load_clouds(path: Path = CLOUDS_FILE) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())["countries"]


def dev_suite_namespaces(path: Path = CLOUDS_FILE) -> list[str]:
    """The namespaces the dev cluster's NationalClouds admit on top of the examples' (tests, benchmarks)."""
    return list(yaml.safe_load(path.read_text()).get("suiteNamespaces") or [])


def dev_clouds() -> dict[str, Any]:
    """The NationalClouds as the dev cluster holds them (the examples' plus ``dev_suite_namespaces``), parsed:
    what tests and benchmarks render offline for suites in their own namespaces."""
    from ..api.loader import load_files

    _, clouds = load_files([EXAMPLE_CLOUDS])
    extra = dev_suite_namespaces()
    return {n: c.model_copy(update={"spec": c.spec.model_copy(update={"suite_namespaces": [
        *(c.spec.suite_namespaces or []), *(x for x in extra if x not in (c.spec.suite_namespaces or []))]})})
        for n, c in clouds.items()}


def main_progress(msg: str) -> None:
    print(f"[cluster] {msg}", file=sys.stderr, flush=True)
