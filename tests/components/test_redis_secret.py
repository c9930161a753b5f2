"""Docs' Redis reads its password from the Secret's file, not from the environment (issue 22, item 17): the
rendered start script and readiness probe, run against a real redis-server (Debian's, installed by
hack/install-federation-tools.sh; the image pins redis 8.2, whose stdin config the renderer cites).

The script's paths and port are the pod's; the test runs it (tests/components/rendered_servers.py) with the Secret's
files and the tenant's certificates in a temporary folder and on a free port instead, and checks what a client of the pod would see: no password, no entry; the probe's command passes; the
settings the script gives are in force; the password is in neither the server's command line nor its environment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sovereign_suite.components import docs, tls
from sovereign_suite.components.base import build_contexts
from sovereign_suite.components.docs.secret_env import REDIS_SECRET_DIR, REDIS_TLS_DIR

from ..helpers import load_example, mounted_secret, pod_specs
from . import rendered_servers as rs
from .test_docs import container, get

PASSWORD = "Zq7r0wKk2mN5pX8v"  # alphanumeric, as secretgen makes it


def _cli(server: dict, *args: str, password: str | None = None) -> str:
    """redis-cli as a client in the tenant: over TLS, verifying the server with the tenant's CA."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password:
        env["REDISCLI_AUTH"] = password
    ca = f"{server['where'][REDIS_TLS_DIR]}/{tls.CA_CERT}"
    return subprocess.run(["redis-cli", "--tls", "--cacert", ca, "-h", "localhost", "-p", str(server["port"]), *args],
                          env=env, capture_output=True, text=True, timeout=10).stdout.strip()


@pytest.fixture
def fr():
    rs.redis_server()  # hack/install-federation-tools.sh: redis-server and redis-cli
    assert shutil.which("redis-cli"), "redis-cli missing: run hack/install-federation-tools.sh"
    suite, clouds = load_example("four-countries")
    return build_contexts(suite, clouds)[0]


def test_redis_takes_its_password_from_the_secret_file(fr):
    objs = docs.render(fr)
    dep = get(objs, "Deployment", "docs-redis")
    pod, c = pod_specs(dep)[0], container(dep)
    assert not [e for e in c.get("env", []) if "valueFrom" in e]
    assert mounted_secret(pod, c, f"{REDIS_SECRET_DIR}/REDIS_PASSWORD") == ("docs-secrets", "REDIS_PASSWORD")
    assert pod["securityContext"]["fsGroup"] == 1000  # the 0440 file's group: the redis user (999) reads it

    secrets = {"tenant-tls": rs.tenant_tls(fr), "docs-secrets": {"REDIS_PASSWORD": PASSWORD}}
    with rs.redis(objs, "docs-redis", secrets, PASSWORD) as server:
        pid = server["proc"].pid
        assert "NOAUTH" in _cli(server, "ping")
        # exec: setpriv and the shell became redis-server, and the password is nowhere in its command line or
        # environment
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server"
        assert PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in Path(f"/proc/{pid}/environ").read_bytes()

        assert _cli(server, "ping", password="wrong") != "PONG"
        assert _cli(server, "ping", password=PASSWORD) == "PONG"
        probe = c["readinessProbe"]["exec"]["command"]
        assert probe[:2] == ["/bin/sh", "-c"]
        script = rs.remap_all(probe[2], server["where"]).replace("-p 6379", f"-p {server['port']}")
        clean = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        assert subprocess.run(["/bin/sh", "-c", script], timeout=10, env=clean).returncode == 0
        # and it fails when the file holds another password
        password_file = Path(server["where"][REDIS_SECRET_DIR]) / "REDIS_PASSWORD"
        password_file.write_text("not-it")
        assert subprocess.run(["/bin/sh", "-c", script], timeout=10, env=clean).returncode != 0
        password_file.write_text(PASSWORD)
        settings = {}
        for key in ("save", "appendonly", "maxmemory-policy", "maxmemory", "port"):
            name, *value = _cli(server, "config", "get", key, password=PASSWORD).split("\n")
            assert name == key
            settings[key] = value[0] if value else ""
        assert settings == {"save": "", "appendonly": "no", "maxmemory-policy": "volatile-lru",
                            "maxmemory": str(384 * 1024 * 1024), "port": "0"}  # port 0: no plaintext listener
