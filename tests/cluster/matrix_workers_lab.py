"""A tenant's Synapse worker topology run for real inside the Matrix lab (tests/cluster/matrix_lab.py).

From what the operator applied: the Redis Deployment ``synapse-redis`` (its rendered shell command, its Secret
volumes written to files), every pod of every Synapse worker StatefulSet (its two init containers run as the
kubelet would — the database file, then the worker file named after the pod — then its command), and the router
``synapse-router`` (its rendered nginx server block inside a minimal nginx.conf that logs, per request, the
upstream address nginx chose). Each pod gets its own address in the lab's network namespace; the names the
rendered configuration uses (the Services' and pods' DNS names in ``instance_map`` and ``redis.host``, the short
Service names in the router's upstreams) resolve to them through the processes' /etc/hosts. Only paths and listen
addresses are remapped, as for the main process.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Collection

import yaml

from .matrix_lab import NOBODY, Applied, Lab

POD_NET = "100.129"  # the pods' addresses (the lab's own are 100.128.<tenant>.<role>)


class Workers:
    """One tenant's Redis, workers and router in ``lab``; processes are the lab's (stopped by ``lab.close``)."""

    def __init__(self, lab: Lab, tenant: str, app: Applied):
        self.lab, self.tenant, self.app = lab, tenant, app
        self.index = lab.tenants[tenant]
        self.addresses: dict[str, str] = {}  # pod or Deployment name -> address
        self.ns = app.namespace
        self.base = lab.root / f"synapse-{tenant}"
        self.pods: dict[str, list[str]] = {}  # StatefulSet -> pod names

    # -- addresses and names ------------------------------------------------------------------------------------
    def address(self, name: str) -> str:
        if name not in self.addresses:
            ip = f"{POD_NET}.{self.index}.{len(self.addresses) + 1}"
            done = subprocess.run(["ip", "-n", self.lab.netns.name, "addr", "add", f"{ip}/32", "dev", "lo"],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            self.addresses[name] = ip
        return self.addresses[name]

    def plan(self) -> None:
        """Give every pod an address and publish the cluster DNS names the rendered configuration uses."""
        svc = f"{self.ns}.svc.cluster.local"
        self.lab.hosts[f"synapse.{svc}"] = self.lab.ip(self.tenant, "synapse")  # main: instance_map.main
        self.lab.hosts[f"synapse-redis.{svc}"] = self.address("synapse-redis")
        for name, sts in sorted(self.app.statefulsets.items()):
            if not name.startswith("synapse-"):
                continue
            pods = [f"{name}-{i}" for i in range(sts["spec"]["replicas"])]
            self.pods[name] = pods
            for pod in pods:  # the headless Service's pod names (instance_map)
                self.lab.hosts[f"{pod}.{name}.{svc}"] = self.address(pod)
        self.lab.backends[(self.tenant, "synapse-router")] = self.address("synapse-router")

    def router_hosts(self) -> Path:
        """The router's short Service names: main, each sticky pool's per-pod Service, each type's -http Service
        (the ClusterIP would balance over the type's pods; the lab's name points at the first)."""
        names = {"synapse": self.lab.ip(self.tenant, "synapse")}
        for sts, pods in self.pods.items():
            names[f"{sts}-http"] = self.addresses[pods[0]]
            names.update({pod: self.addresses[pod] for pod in pods})
        path = self.lab.root / f"hosts-{self.tenant}-router"
        path.write_text("".join(f"{ip}\t{n}\n" for n, ip in {**self.lab.hosts, **names}.items()))
        path.chmod(0o644)
        return path

    def start(self, name: str, argv: list[str], hosts: Path | None = None) -> None:
        log = open(self.lab.root / f"{name}.log", "ab")
        self.lab.procs[name] = subprocess.Popen(
            self.lab.netns.argv(argv, hosts or self.lab.hosts_file(self.tenant)), stdout=log,
            stderr=subprocess.STDOUT, cwd=self.lab.root)

    # -- the pods ----------------------------------------------------------------------------------------------
    def _write_secret_mounts(self, workload: dict, container: dict, folder: Path) -> dict[str, str]:
        """The container's Secret volumes written under ``folder``; returns mount path -> local folder."""
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
        out = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "secret" not in volume and "configMap" not in volume:
                continue
            local = folder / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            for rel, content in self.app.volume_files(volume).items():
                (local / rel).write_text(content)
                (local / rel).chmod(0o600)
            out[mount["mountPath"]] = str(local)
        return out

    def start_redis(self) -> None:
        dep = self.app.deployments["synapse-redis"]
        container = self.app.container(dep, "redis")
        mounts = self._write_secret_mounts(dep, container, self.lab.root / "redis")
        script = container["command"][2]
        probe = container["readinessProbe"]["exec"]["command"][2]
        for path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            script, probe = script.replace(path, local), probe.replace(path, local)
        # the pod's address instead of every address of the namespace (the pod has only its own), and the
        # loopback the readiness probe uses (its own pod's)
        script = script.replace("exec redis-server -",
                                f"exec redis-server - --bind {self.address('synapse-redis')} 127.0.0.1", 1)
        self.redis_probe = probe
        self.start("synapse-redis", [container["command"][0], container["command"][1], script])

    def redis_ready(self) -> bool:
        return self.lab.run(["sh", "-c", self.redis_probe], tenant=self.tenant).returncode == 0

    def start_workers(self, skip: Collection[str] = (), only: Collection[str] | None = None) -> None:
        """Every worker pod (of the StatefulSets in ``only``, or not in ``skip``): after Lab.start_synapse wrote
        the tenant's shared files (homeserver.yaml, keys, database CA) in its folder, add the synapse-workers
        ConfigMap (the projected config volume), run the two init containers with the pod's own runtime folder,
        then the worker."""
        config = self.base / "synapse" / "config"
        for key, value in self.app.configmaps["synapse-workers"].items():
            (config / key).write_text(value)
        overrides = self.lab.root / f"synapse-{self.tenant}-ca.yaml"  # the local CA, as for main
        for sts_name, pods in self.pods.items():
            if sts_name in skip or (only is not None and sts_name not in only):
                continue
            sts = self.app.statefulsets[sts_name]
            db_init = self.app.container(sts, "database-config", init=True)
            worker_init = self.app.container(sts, "worker-config", init=True)
            main = self.app.container(sts, "synapse")
            runtime_mount = next(m["mountPath"] for m in main["volumeMounts"] if m["name"] == "runtime")
            for pod in pods:
                runtime = self.lab.root / "pods" / pod / "runtime"
                shutil.rmtree(runtime, ignore_errors=True)  # an emptyDir: a new pod's is empty
                runtime.mkdir(parents=True)

                def remap(arg: str) -> str:
                    if arg.startswith(runtime_mount + "/"):
                        return str(runtime) + arg[len(runtime_mount):]
                    return self.lab.remap(self.tenant, arg)

                for init, env in ((db_init, self.app.env(db_init)), (worker_init, {"POD_NAME": pod})):
                    done = subprocess.run([str(self.lab.python), *[remap(a) for a in init["command"][1:]]],
                                          env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
                    assert done.returncode == 0, f"{pod} {init['name']}: {done.stderr}"
                # the worker file: its listeners on the pod's address (they bind every address in the pod)
                worker_file = runtime / "worker.yaml"
                worker = yaml.safe_load(worker_file.read_text())
                assert worker["worker_name"] == pod
                for listener in worker["worker_listeners"]:
                    listener["bind_addresses"] = [self.addresses[pod]]
                worker_file.write_text(json.dumps(worker))
                argv = [str(self.lab.python), *[remap(a) for a in main["command"][1:]], "--config-path",
                        str(overrides)]
                self.start(pod, argv)

    def start_router(self) -> None:
        """The rendered server block inside an nginx.conf of the test's: the access log says, per request, which
        upstream address answered (``$upstream_addr``)."""
        base = self.lab.root / "router"
        tmp = base / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)  # started again after a writer set change (matrix_workers_roll.py)
        shutil.chown(tmp, *NOBODY)
        server = self.app.configmaps["synapse-router"]["default.conf"]
        ip = self.addresses["synapse-router"]
        server = re.sub(r"listen \[::\]:(\d+);\n", "", server)
        server = re.sub(r"listen (\d+);", lambda m: f"listen {ip}:{m.group(1)};", server)
        conf = base / "nginx.conf"
        conf.write_text(f"""user {NOBODY[0]} {NOBODY[1]};
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format upstream '"$request" $status $upstream_addr';
    access_log {base}/access.log upstream;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
{server}
}}
""")
        self.start("synapse-router", ["/usr/sbin/nginx", "-e", str(base / "error.log"), "-p", str(base), "-c",
                                      str(conf)], hosts=self.router_hosts())

    def router_log(self) -> list[tuple[str, int, str]]:
        """(request line, status, upstream addresses) per request the router proxied."""
        path = self.lab.root / "router" / "access.log"
        out = []
        for line in (path.read_text() if path.exists() else "").splitlines():
            m = re.fullmatch(r'"(.*)" (\d+) (.+)', line)
            if m:
                out.append((m.group(1), int(m.group(2)), m.group(3)))
        return out

    def wait_healthy(self, timeout: float = 240) -> None:
        """Every worker's /health (the readiness probe's path) answering on its own address."""
        deadline = time.monotonic() + timeout
        waiting = {pod for pods in self.pods.values() for pod in pods}
        while waiting and time.monotonic() < deadline:
            for pod in sorted(waiting):
                if self.lab.procs[pod].poll() is not None:
                    raise AssertionError(f"{pod} exited:\n{self.lab.log(pod)[-4000:]}")
                status, _ = self.lab.request("GET", f"http://{self.addresses[pod]}:8008/health", timeout=5)
                if status == 200:
                    waiting.discard(pod)
            time.sleep(1)
        assert not waiting, {pod: self.lab.log(pod)[-2000:] for pod in waiting}

    def pod_of(self, address: str) -> str:
        """The pod that answered, from the router's ``$upstream_addr`` (``ip:port``, or a list of the servers
        tried, ``a:p, b:p``, when the first failed: the last one answered)."""
        ip = address.split(", ")[-1].rsplit(":", 1)[0]
        if ip == self.lab.ip(self.tenant, "synapse"):
            return "main"
        return next(n for n, a in self.addresses.items() if a == ip)


def sql(lab: Lab, tenant: str, app: Applied, query: str) -> list[list[str]]:
    """A query on the tenant's database over its local socket (the rows, tab-separated by psql)."""
    env = app.env(app.container(app.statefulsets["matrix-postgres"], "postgres"))
    base = lab.postgres[tenant]
    done = lab.run([str(lab.pg_bin / "psql"), "-h", str(base / "sock"), "-p", "5432", "-U", env["POSTGRES_USER"],
                    "-d", env["POSTGRES_DB"], "-At", "-F", "\t", "-c", query], user=NOBODY)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def has_workers(app: Applied) -> bool:
    """The tenant runs a worker topology: the operator applied worker StatefulSets (synapse-<type>)."""
    return any(name.startswith("synapse-") for name in app.statefulsets)


def start_tenants(lab: Lab, apps: dict[str, Applied], extra: dict | None = None) -> dict[str, Workers]:
    """Every tenant of ``apps`` running in ``lab`` from what the operator applied, and healthy: the namespace with
    the Ingresses' hosts, PostgreSQL, the workers' Redis, main, the workers, the router, the ingress. Returns the
    workers of the tenants that have a worker topology (the others are monoliths). ``extra``: keys added to the
    test's override file, which main and the workers read (Lab.start_synapse)."""
    hosts = {cc: sorted(r["host"] for ing in app.ingresses for r in ing["spec"]["rules"]) for cc, app in apps.items()}
    lab.up(list(apps), hosts)
    workers = {cc: Workers(lab, cc, app) for cc, app in apps.items() if has_workers(app)}
    for w in workers.values():
        w.plan()
    for cc, app in apps.items():
        lab.start_postgres(cc, app)
    for w in workers.values():
        w.start_redis()
    for cc, app in apps.items():
        lab.start_synapse(cc, app, extra)
    for cc in apps:
        lab.wait_http(f"http://{lab.ip(cc, 'synapse')}:8008/health", proc=f"synapse-{cc}")
    # workers refuse a database main has not upgraded yet (prepare_database.py: "run the main synapse process
    # to upgrade the database schema before starting worker processes"); in the cluster the kubelet restarts
    # them until main is done, here they start once main answers
    for w in workers.values():
        w.start_workers()
        w.start_router()
    lab.start_nginx(apps, {})
    for w in workers.values():
        w.wait_healthy()
        assert w.redis_ready(), "the workers' Redis is not ready"
    return workers


def print_logs(lab: Lab | None, access_log: bool = False) -> None:
    """On a failure: the end of every lab process's log (and the ingress's access log), for the test's output."""
    if lab:
        for proc in list(lab.procs):
            print(f"----- {proc}\n{lab.log(proc)[-2500:]}")
        if access_log:
            print(f"----- ingress access log\n{lab.access_log()[-2000:]}")
