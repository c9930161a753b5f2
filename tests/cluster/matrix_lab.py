"""A private network in which the Matrix tenants the operator applied run for real (tests/cluster/test_matrix_federation.py).

Everything runs inside a network namespace the test creates (``ip netns add``): its loopback interface holds
one address per "ingress", Synapse, Element Web pod and PostgreSQL; nothing of the machine's network is
touched. Each process sees its own ``/etc/hosts`` (bind-mounted inside a private mount namespace, ``unshare -m``):
the tenants' hostnames point at their ingress, and ``matrix-postgres`` at the tenant's own PostgreSQL, as the
namespace-scoped Service name would in the cluster. A local CA (openssl) stands in for cert-manager; Debian's
nginx plays the ingress controller (TLS on 443, routes taken from the applied Ingresses) and the Element Web pods
(the rendered server block). PostgreSQL runs as ``nobody`` (it refuses root); Synapse and nginx run as root
because the Synapse venv lives under root's home (0700) — inside the namespace they can reach nothing else.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..processes import stop_process

# Addresses inside the namespace only. Not a private range on purpose: Synapse refuses to federate with private,
# loopback and test-net addresses by default (DEFAULT_IP_RANGE_BLOCKLIST in synapse/config/server.py, 1.163.2),
# and the test must not widen that list. 100.128.0.0/16 is outside 100.64.0.0/10 (CGNAT) and every other entry.
NET = "100.128"
NOBODY = ("nobody", "nogroup")

CLIENT = r"""
import json, ssl, sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                     urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=sys.argv[1])))
for line in sys.stdin:
    req = json.loads(line)
    data = None if req.get("body") is None else json.dumps(req["body"]).encode()
    r = urllib.request.Request(req["url"], data=data, method=req["method"],
                               headers={"Content-Type": "application/json", **req.get("headers", {})})
    try:
        with opener.open(r, timeout=req.get("timeout", 60)) as resp:
            out = {"status": resp.status, "body": resp.read().decode(), "type": resp.headers.get("Content-Type")}
    except urllib.error.HTTPError as e:
        out = {"status": e.code, "body": e.read().decode(), "type": e.headers.get("Content-Type")}
    except Exception as e:
        out = {"status": 0, "body": repr(e), "type": None}
    print(json.dumps(out), flush=True)
"""


def b64(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


@dataclass
class Applied:
    """What the operator applied for one tenant's Matrix component, read from the cluster."""

    namespace: str
    domain: str
    configmaps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    deployments: dict[str, dict[str, Any]]
    statefulsets: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]
    ingresses: list[dict[str, Any]]

    @classmethod
    def read(cls, kube, namespace: str) -> "Applied":
        sel = "sovereignsuite.io/component=matrix"
        items = {kind: kube.list(api, kind, label_selector=sel, namespace=namespace)
                 for api, kind in (("v1", "ConfigMap"), ("v1", "Secret"), ("apps/v1", "Deployment"),
                                   ("apps/v1", "StatefulSet"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"))}
        by_name = lambda kind: {o["metadata"]["name"]: o for o in items[kind]}  # noqa: E731
        configmaps = {n: o.get("data", {}) for n, o in by_name("ConfigMap").items()}
        server_name = yaml.safe_load(configmaps["synapse"]["homeserver.yaml"])["server_name"]
        secrets = {n: b64(o.get("data")) for n, o in by_name("Secret").items()}
        # the tenant's TLS Secret (its CA and the database's certificate) belongs to the tenancy component
        tenant_tls = kube.get("v1", "Secret", "tenant-tls", namespace)
        if tenant_tls:
            secrets["tenant-tls"] = b64(tenant_tls.get("data"))
        return cls(namespace, server_name, configmaps, secrets,
                   by_name("Deployment"), by_name("StatefulSet"), by_name("Service"), items["Ingress"])

    def container(self, workload: dict, name: str, init: bool = False) -> dict[str, Any]:
        spec = workload["spec"]["template"]["spec"]
        return next(c for c in spec.get("initContainers" if init else "containers", []) if c["name"] == name)

    def env(self, container: dict) -> dict[str, str]:
        """A container's environment as the kubelet would give it (values and secretKeyRefs)."""
        out = {}
        for e in container.get("env", []):
            if "value" in e:
                out[e["name"]] = e["value"]
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                out[e["name"]] = self.secrets[ref["name"]][ref["key"]]
        return out

    def volume_files(self, volume: dict) -> dict[str, str]:
        """A Secret or ConfigMap volume's files (relative path -> content), ``items`` applied as the kubelet does."""
        source = volume.get("secret") or volume.get("configMap")
        data = self.secrets[source["secretName"]] if "secret" in volume else self.configmaps[source["name"]]
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        return {i["path"]: data[i["key"]] for i in items}

    def mounted(self, workload: dict, container: dict, path: str) -> str:
        """The content of the Secret key a container sees at ``path`` (a Secret volume, ``items`` mapping keys to
        paths, as the kubelet mounts it)."""
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            prefix = mount["mountPath"].rstrip("/") + "/"
            secret = volumes.get(mount["name"], {}).get("secret")  # a claim template is no volume
            if secret is None or not path.startswith(prefix):
                continue
            rel = path[len(prefix):]
            keys = {i["path"]: i["key"] for i in secret.get("items", [])} or None
            return self.secrets[secret["secretName"]][keys[rel] if keys else rel]
        raise KeyError(f"nothing mounted at {path} in container {container['name']}")

    @property
    def synapse(self) -> dict:
        return self.deployments["synapse"]

    @property
    def homeserver(self) -> dict[str, Any]:
        return yaml.safe_load(self.configmaps["synapse"]["homeserver.yaml"])


class Netns:
    def __init__(self, addresses: list[str]):
        self.name = f"sovsuite-fed-{uuid.uuid4().hex[:6]}"
        self.addresses = addresses
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        # The addresses go on the namespace's loopback: no kernel module needed (a dummy interface needs one,
        # which containers and CI machines often cannot load), and the namespace stays unreachable from outside.
        try:
            for cmd in (["ip", "-n", self.name, "link", "set", "lo", "up"],
                        *[["ip", "-n", self.name, "addr", "add", f"{a}/32", "dev", "lo"] for a in addresses]):
                done = subprocess.run(cmd, capture_output=True, text=True)
                assert done.returncode == 0, f"{cmd}: {done.stderr}"
        except BaseException:
            self.delete()
            raise

    def argv(self, argv: list[str], hosts: Path, user: tuple[str, str] | None = None) -> list[str]:
        """``argv`` inside the namespace, with ``hosts`` as /etc/hosts in a private mount namespace."""
        drop = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--clear-groups"] if user else []
        return ["ip", "netns", "exec", self.name, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *drop, *argv]

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Lab:
    """The namespace, the CA, the processes; stopped and removed by ``close``."""

    def __init__(self, synapse_python: Path):
        self.python = synapse_python
        self.root = Path(tempfile.mkdtemp(prefix="sovsuite-fed-"))
        self.root.chmod(0o755)  # PostgreSQL (nobody) and nginx's workers need to traverse it
        self.procs: dict[str, subprocess.Popen] = {}
        self.postgres: dict[str, Path] = {}
        self.hosts: dict[str, str] = {"localhost": "127.0.0.1"}
        self.tenants: dict[str, int] = {}
        # (tenant, Service) -> address of a backend the Ingresses name besides synapse and element-web (the
        # Synapse router of a worker topology: tests/cluster/matrix_workers_lab.py)
        self.backends: dict[tuple[str, str], str] = {}
        self.netns: Netns | None = None
        self.client_proc: subprocess.Popen | None = None
        self.ca = self.root / "ca.pem"
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Sovereign Suite test CA",
                      "-keyout", str(self.root / "ca.key"), "-out", str(self.ca))
        self.pg_bin = Path(subprocess.run(["hack/install-federation-tools.sh", "--print"], check=True,
                                          capture_output=True, text=True, cwd=Path(__file__).parents[2]).stdout.strip())

    # -- addresses -------------------------------------------------------------------------------------------
    def ip(self, tenant: str, role: str) -> str:
        """One address per tenant and role: 1 ingress, 2 synapse, 3 postgres, 4 element-web."""
        index = self.tenants.setdefault(tenant, len(self.tenants) + 1)
        return f"{NET}.{index}.{['ingress', 'synapse', 'postgres', 'element-web'].index(role) + 1}"

    def up(self, tenants: list[str], names: dict[str, list[str]]) -> None:
        """Create the namespace; ``names``: the hostnames of each tenant's ingress."""
        for t in tenants:
            for h in names[t]:
                self.hosts[h] = self.ip(t, "ingress")
        addrs = [self.ip(t, r) for t in tenants for r in ("ingress", "synapse", "postgres", "element-web")]
        self.netns = Netns(addrs)

    def hosts_file(self, tenant: str | None = None) -> Path:
        lines = [f"{ip}\t{name}" for name, ip in self.hosts.items()]
        if tenant:  # the tenant's namespace-scoped Service name of its database
            lines.append(f"{self.ip(tenant, 'postgres')}\tmatrix-postgres")
        path = self.root / f"hosts-{tenant or 'all'}"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)
        return path

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def certificate(self, name: str, hosts: list[str]) -> tuple[Path, Path]:
        """What cert-manager would put in the Ingress's TLS Secret: a leaf for ``hosts``, signed by the CA."""
        key, csr, crt, ext = (self.root / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n")
        self._openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hosts[0]}", "-keyout", str(key),
                      "-out", str(csr))
        self._openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.root / "ca.key"),
                      "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))
        return crt, key

    # -- processes --------------------------------------------------------------------------------------------
    def start(self, name: str, argv: list[str], tenant: str | None = None, user=None) -> subprocess.Popen:
        assert self.netns
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(self.netns.argv(argv, self.hosts_file(tenant), user), stdout=log,
                                stderr=subprocess.STDOUT, cwd=self.root)
        self.procs[name] = proc
        return proc

    def stop(self, name: str, timeout: float = 30) -> None:
        proc = self.procs.pop(name, None)
        stop_process(proc, timeout)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run(self, argv: list[str], tenant: str | None = None, user=None, env=None) -> subprocess.CompletedProcess:
        assert self.netns
        return subprocess.run(self.netns.argv(argv, self.hosts_file(tenant), user), capture_output=True, text=True,
                              env=env)

    # -- PostgreSQL, as the embedded database's image would set it up -------------------------------------------
    def start_postgres(self, tenant: str, app: Applied) -> None:
        """Initialise (first time only, as the postgres image's entrypoint does) from the applied StatefulSet's
        environment — POSTGRES_USER, POSTGRES_PASSWORD (its Secret), POSTGRES_DB, POSTGRES_INITDB_ARGS — then
        start it on the tenant's address, port 5432, as nobody."""
        sts = app.statefulsets["matrix-postgres"]
        env = app.env(app.container(sts, "postgres"))
        if "POSTGRES_PASSWORD_FILE" in env:  # the image's file_env (docker-library/postgres docker-entrypoint.sh)
            env["POSTGRES_PASSWORD"] = app.mounted(sts, app.container(sts, "postgres"), env["POSTGRES_PASSWORD_FILE"])
        # the container's port; the Service maps the same number (matrix-postgres:5432 in homeserver.yaml)
        port = next(p["containerPort"] for p in app.container(sts, "postgres")["ports"] if p["name"] == "postgres")
        base = self.root / f"pg-{tenant}"
        data, sock = base / "data", base / "sock"
        fresh = not data.exists()
        if fresh:
            sock.mkdir(parents=True)
            pwfile = base / "pwfile"
            pwfile.write_text(env["POSTGRES_PASSWORD"] + "\n")
            shutil.chown(base, *NOBODY)
            shutil.chown(sock, *NOBODY)
            shutil.chown(pwfile, *NOBODY)
            pwfile.chmod(0o600)
            init = self.run([str(self.pg_bin / "initdb"), "-D", str(data), f"--username={env['POSTGRES_USER']}",
                             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                             *env["POSTGRES_INITDB_ARGS"].split()], user=NOBODY)
            assert init.returncode == 0, init.stdout + init.stderr
            pwfile.unlink()
            # the image's entrypoint opens the server to the pod network with passwords (docker-library/postgres,
            # docker-entrypoint.sh, pg_setup_hba_conf: `host all all all scram-sha-256` by default)
            with open(data / "pg_hba.conf", "a") as hba:
                hba.write("\nhost all all all scram-sha-256\n")
        # the container's arguments (TLS with the tenant's certificate, the ConfigMap's hostssl-only pg_hba.conf),
        # their Secret and ConfigMap volumes written under the tenant's folder: root-owned, group nogroup standing
        # in for the pod's fsGroup, the volume's mode (PostgreSQL accepts a root-owned key file up to 0640)
        container = app.container(sts, "postgres")
        volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
        args = list(container.get("args", []))
        for mount in container["volumeMounts"]:
            volume = volumes.get(mount["name"], {})
            if "secret" not in volume and "configMap" not in volume:
                continue
            folder = base / "mounts" / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.parent.chmod(0o755)
            folder.chmod(0o755)
            for rel, content in app.volume_files(volume).items():
                f = folder / rel
                f.write_text(content)
                shutil.chown(f, "root", NOBODY[1])
                f.chmod(volume["secret"].get("defaultMode", 0o644) if "secret" in volume else 0o644)
            args = [a.replace(mount["mountPath"], str(folder)) for a in args]
        options = " ".join([*args, f"-c listen_addresses={self.ip(tenant, 'postgres')} -p {port} -k {sock}"])
        start = self.run([str(self.pg_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "postgres.log"), "-w", "-t",
                          "60", "-o", options, "start"], user=NOBODY)
        assert start.returncode == 0, start.stdout + start.stderr + (base / "postgres.log").read_text()
        self.postgres[tenant] = base
        if fresh and env["POSTGRES_DB"] != "postgres":
            create = self.run([str(self.pg_bin / "createdb"), "-h", str(sock), "-p", str(port), "-U",
                               env["POSTGRES_USER"], env["POSTGRES_DB"]], user=NOBODY)
            assert create.returncode == 0, create.stderr

    def stop_postgres(self, tenant: str) -> None:
        base = self.postgres.pop(tenant, None)
        if base:
            self.run([str(self.pg_bin / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"], user=NOBODY)

    # -- Synapse, from the applied ConfigMap, Secret and Deployment -------------------------------------------
    def remap(self, tenant: str, path: str) -> str:
        """A container path (/synapse/...) to the tenant's folder: only paths change."""
        return str(self.root / f"synapse-{tenant}") + path if path.startswith("/") else path

    def start_synapse(self, tenant: str, app: Applied, extra: dict[str, Any] | None = None) -> None:
        dep = app.synapse
        pod = dep["spec"]["template"]["spec"]
        main, init = app.container(dep, "synapse"), app.container(dep, "database-config", init=True)
        volumes = {v["name"]: v for v in pod["volumes"]}
        # the pod's volumes at their mount paths: the ConfigMap, the Secret's files, the emptyDirs, the PVC
        for mount in main["volumeMounts"] + init["volumeMounts"]:
            target = Path(self.remap(tenant, mount["mountPath"]))
            target.mkdir(parents=True, exist_ok=True)
            source = volumes[mount["name"]]
            if "configMap" in source or "secret" in source:
                files = app.volume_files(source)
            else:
                continue
            for key, value in files.items():
                f = target / key
                f.write_text(value)
                f.chmod(0o600 if "secret" in source else 0o644)
        # homeserver.yaml: paths and listener addresses remapped, nothing else
        hs_path = Path(self.remap(tenant, next(a for a in main["command"] if a.endswith("homeserver.yaml"))))
        hs = yaml.safe_load(hs_path.read_text())
        for key, value in list(hs.items()):
            if key.endswith("_path") and isinstance(value, str):
                hs[key] = self.remap(tenant, value)
        for key, value in list((hs.get("redis") or {}).items()):  # the workers' Redis: password, CA files
            if key.endswith(("_path", "_file")) and isinstance(value, str):
                hs["redis"][key] = self.remap(tenant, value)
        db_args = hs["database"]["args"]
        if "sslrootcert" in db_args:  # the database's CA certificate (the volume database-ca)
            db_args["sslrootcert"] = self.remap(tenant, db_args["sslrootcert"])
        for listener in hs["listeners"]:
            listener["bind_addresses"] = [self.ip(tenant, "synapse")]
        Path(hs["media_store_path"]).mkdir(parents=True, exist_ok=True)
        hs_path.write_text(yaml.safe_dump(hs))
        # the init container: the rendered script, its arguments, its environment (the database Secret)
        init_run = subprocess.run([str(self.python), *[self.remap(tenant, a) for a in init["command"][1:]]],
                                  env={**os.environ, **app.env(init)}, capture_output=True, text=True)
        assert init_run.returncode == 0, init_run.stderr
        # the test's only addition: trust the local CA standing in for cert-manager's issuer
        overrides = self.root / f"synapse-{tenant}-ca.yaml"
        overrides.write_text(yaml.safe_dump({"federation_custom_ca_list": [str(self.ca)], **(extra or {})}))
        argv = [str(self.python), *[self.remap(tenant, a) for a in main["command"][1:]], "--config-path", str(overrides)]
        self.start(f"synapse-{tenant}", argv, tenant=tenant)

    def start_rogue_synapse(self, tenant: str, server_name: str) -> str:
        """A homeserver outside the suite, federating with anybody, on SQLite; returns its shared secret."""
        base = self.root / f"synapse-{tenant}"
        base.mkdir()
        subprocess.run([str(self.python), "-m", "synapse._scripts.generate_signing_key", "-o",
                        str(base / "signing.key")], check=True)
        secret = uuid.uuid4().hex
        (base / "homeserver.yaml").write_text(yaml.safe_dump({
            "server_name": server_name, "public_baseurl": f"https://matrix.{server_name}/", "report_stats": False,
            "listeners": [{"port": 8008, "type": "http", "tls": False, "x_forwarded": True,
                           "bind_addresses": [self.ip(tenant, "synapse")],
                           "resources": [{"names": ["client", "federation"]}]}],
            "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
            "media_store_path": str(base / "media"), "signing_key_path": str(base / "signing.key"),
            "registration_shared_secret": secret, "macaroon_secret_key": uuid.uuid4().hex,
            "form_secret": uuid.uuid4().hex, "trusted_key_servers": [], "federation_custom_ca_list": [str(self.ca)],
        }))
        self.start(f"synapse-{tenant}", [str(self.python), "-m", "synapse.app.homeserver", "--config-path",
                                         str(base / "homeserver.yaml")], tenant=tenant)
        return secret

    # -- nginx: the ingress controller and the Element Web pods -------------------------------------------------
    def start_nginx(self, apps: dict[str, Applied], static: dict[str, dict[str, str]]) -> None:
        """``apps``: tenant -> what the operator applied; ``static``: tenant -> {hostname: well-known server body}
        for homeservers outside the suite."""
        base = self.root / "nginx"
        tmp = base / "tmp"
        tmp.mkdir(parents=True)
        shutil.chown(tmp, *NOBODY)
        servers: list[str] = []
        for tenant, app in apps.items():
            servers += self._ingress_servers(tenant, app)
            servers.append(self._element_server(tenant, app))
        for tenant, files in static.items():
            for host, body in files.items():
                crt, key = self.certificate(f"{tenant}-{host}", [host, f"matrix.{host}"])
                servers.append(f"""server {{
    listen {self.ip(tenant, 'ingress')}:443 ssl;
    server_name {host};
    ssl_certificate {crt}; ssl_certificate_key {key};
    location = /.well-known/matrix/server {{ default_type application/json; return 200 '{body}'; }}
}}
server {{
    listen {self.ip(tenant, 'ingress')}:443 ssl;
    server_name matrix.{host};
    ssl_certificate {crt}; ssl_certificate_key {key};
    location /_matrix {{ proxy_pass http://{self.ip(tenant, 'synapse')}:8008; proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto https; }}
}}""")
        conf = base / "nginx.conf"
        conf.write_text(f"""user {NOBODY[0]} {NOBODY[1]};
worker_processes 1;
daemon off;
pid {base}/nginx.pid;
error_log {base}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    log_format hosts '$host "$request" $status';
    access_log {base}/access.log hosts;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
{chr(10).join(servers)}
}}
""")
        self.start("nginx", ["/usr/sbin/nginx", "-e", str(base / "error.log"), "-p", str(base), "-c", str(conf)])

    def access_log(self) -> str:
        path = self.root / "nginx" / "access.log"
        return path.read_text() if path.exists() else ""

    def _ingress_servers(self, tenant: str, app: Applied) -> list[str]:
        """One TLS server per Ingress host, as an ingress controller would serve it: the certificate cert-manager
        would issue for the Ingress's TLS hosts, its paths, its Services' target ports, its body-size annotation."""
        backends = {"synapse": "synapse", "element-web": "element-web"}
        out = []
        for ing in app.ingresses:
            tls_hosts = [h for t in ing["spec"].get("tls", []) for h in t["hosts"]]
            body = ing["metadata"].get("annotations", {}).get("nginx.ingress.kubernetes.io/proxy-body-size", "1m")
            for rule in ing["spec"]["rules"]:
                host = rule["host"]
                assert host in tls_hosts, f"{ing['metadata']['name']}: no TLS for {host}"
                crt, key = self.certificate(f"{tenant}-{host}", [host])
                locations = []
                for p in rule["http"]["paths"]:
                    svc_ref = p["backend"]["service"]
                    svc = app.services[svc_ref["name"]]
                    port = next(sp for sp in svc["spec"]["ports"] if sp["port"] == svc_ref["port"].get("number")
                                or sp.get("name") == svc_ref["port"].get("name"))
                    target = port.get("targetPort", port["port"])
                    if isinstance(target, str):  # a named container port: the Deployment's
                        dep = app.deployments[backends.get(svc_ref["name"], svc_ref["name"])]
                        target = next(cp["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"]
                                      for cp in c.get("ports", []) if cp.get("name") == target)
                    address = self.backends.get((tenant, svc_ref["name"])) or self.ip(tenant, backends[svc_ref["name"]])
                    upstream = f"{address}:{target}"
                    exact = "= " if p["pathType"] == "Exact" else ""
                    locations.append(f"""    location {exact}{p['path']} {{
        proxy_pass http://{upstream}; proxy_set_header Host $host; proxy_http_version 1.1;
        proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto https;
    }}""")
                out.append(f"""server {{
    listen {self.ip(tenant, 'ingress')}:443 ssl;
    server_name {host};
    ssl_certificate {crt}; ssl_certificate_key {key};
    client_max_body_size {body};
{chr(10).join(locations)}
}}""")
        return out

    def _element_server(self, tenant: str, app: Applied) -> str:
        """The rendered server block of the Element Web pod, with its listen address and mounted paths remapped."""
        dep = app.deployments["element-web"]
        pod = dep["spec"]["template"]["spec"]
        main = pod["containers"][0]
        volumes = {v["name"]: v for v in pod["volumes"]}
        base = self.root / f"element-{tenant}"
        mounts: dict[str, str] = {}
        conf = None
        for mount in main["volumeMounts"]:
            source = volumes[mount["name"]]
            if "configMap" not in source:
                continue
            data = app.configmaps[source["configMap"]["name"]]
            local = base / mount["mountPath"].lstrip("/")
            if "subPath" in mount:
                if mount["subPath"] == "default.conf":
                    conf = data["default.conf"]
                    continue
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_text(data[mount["subPath"]])
            else:
                local.mkdir(parents=True, exist_ok=True)
                for item in source["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                    (local / item["path"]).write_text(data[item["key"]])
            mounts[mount["mountPath"]] = str(local)
        assert conf is not None, "no nginx server block mounted"
        # The image serves /app (where config.json is mounted) as /usr/share/nginx/html: element-web's Dockerfile
        # (element-hq/element-web, Dockerfile: `ln -s /app /usr/share/nginx/html`).
        mounts["/usr/share/nginx/html"] = str(base / "app")
        for container_path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
            conf = conf.replace(f'"{container_path}/"', f'"{local}/"').replace(f" {container_path};", f" {local};")
        conf = re.sub(r"listen (\d+);", lambda m: f"listen {self.ip(tenant, 'element-web')}:{m.group(1)};", conf)
        return conf

    # -- the client: a long-lived process inside the namespace -------------------------------------------------
    def request(self, method: str, url: str, body: Any = None, token: str | None = None,
                timeout: float = 60) -> tuple[int, Any]:
        if self.client_proc is None or self.client_proc.poll() is not None:
            self.client_proc = subprocess.Popen(
                self.netns.argv([str(self.python), "-u", "-c", CLIENT, str(self.ca)], self.hosts_file()),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client_proc.stdin.write(json.dumps({"method": method, "url": url, "body": body, "headers": headers,
                                                 "timeout": timeout}) + "\n")
        self.client_proc.stdin.flush()
        out = json.loads(self.client_proc.stdout.readline())
        try:
            return out["status"], json.loads(out["body"])
        except ValueError:
            return out["status"], out["body"]

    def wait_http(self, url: str, timeout: float = 300, proc: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = self.request("GET", url, timeout=5)
            if status == 200:
                return
            if proc and self.procs[proc].poll() is not None:
                raise AssertionError(f"{proc} exited:\n{self.log(proc)[-4000:]}")
            time.sleep(1)
        raise AssertionError(f"{url} not answering after {timeout} s\n{self.log(proc)[-4000:] if proc else ''}")

    def close(self) -> None:
        if self.client_proc and self.client_proc.poll() is None:
            self.client_proc.stdin.close()
            self.client_proc.wait(10)
        for name in list(self.procs):
            self.stop(name)
        for tenant in list(self.postgres):
            self.stop_postgres(tenant)
        if self.netns:
            self.netns.delete()
        if os.environ.get("SOVEREIGN_SUITE_KEEP_LAB") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
