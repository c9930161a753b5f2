"""Docs' Redis reads its password from the Secret's file, not from the environment (issue 22, item 17): the
rendered start script and readiness probe, run against a real redis-server (Debian's, installed by
hack/install-federation-tools.sh; the image pins redis 8.2, whose stdin config the renderer cites).

The script's paths and port are the pod's; the test runs it with the Secret file in a temporary folder and on a free
port instead, and checks what a client of the pod would see: no password, no entry; the probe's command passes; the
settings the script gives are in force; the password is in neither the server's command line nor its environment."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sovereign_suite.components.docs import REDIS_PORT
from sovereign_suite.components.docs.secret_env import REDIS_SECRET_DIR

from ..helpers import mounted_secret, pod_specs
from .test_docs import container, get, render_fr

PASSWORD = "Zq7r0wKk2mN5pX8v"  # alphanumeric, as secretgen makes it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(port: int, *args: str, password: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password:
        env["REDISCLI_AUTH"] = password
    return subprocess.run(["redis-cli", "-p", str(port), *args], env=env, capture_output=True, text=True,
                          timeout=10).stdout.strip()


@pytest.fixture
def redis_pod():
    for tool in ("redis-server", "redis-cli"):
        assert shutil.which(tool), f"{tool} missing: run hack/install-federation-tools.sh"
    dep = get(render_fr(), "Deployment", "docs-redis")
    return pod_specs(dep)[0], container(dep)


def test_redis_takes_its_password_from_the_secret_file(redis_pod, tmp_path: Path):
    pod, c = redis_pod
    assert not [e for e in c.get("env", []) if "valueFrom" in e]
    assert mounted_secret(pod, c, f"{REDIS_SECRET_DIR}/REDIS_PASSWORD") == ("docs-secrets", "REDIS_PASSWORD")
    assert pod["securityContext"]["fsGroup"] == 1000  # the 0440 file's group: the redis user (999) reads it

    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    (secret_dir / "REDIS_PASSWORD").write_text(PASSWORD)
    port = _free_port()

    def local(script: str) -> str:
        for pod_value in (REDIS_SECRET_DIR, str(REDIS_PORT)):
            assert pod_value in script
        return script.replace(REDIS_SECRET_DIR, str(secret_dir)).replace(str(REDIS_PORT), str(port))

    assert c["command"][:2] == ["/bin/sh", "-c"]
    server = subprocess.Popen(["/bin/sh", "-c", local(c["command"][2])], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while "NOAUTH" not in _cli(port, "ping"):
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "redis-server did not answer"
            time.sleep(0.1)
        # exec: the shell became redis-server, and the password is nowhere in its command line or environment
        assert Path(f"/proc/{server.pid}/comm").read_text().strip() == "redis-server"
        assert PASSWORD.encode() not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in Path(f"/proc/{server.pid}/environ").read_bytes()

        assert _cli(port, "ping", password="wrong") != "PONG"
        assert _cli(port, "ping", password=PASSWORD) == "PONG"
        probe = c["readinessProbe"]["exec"]["command"]
        assert probe[:2] == ["/bin/sh", "-c"]
        clean = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        assert subprocess.run(["/bin/sh", "-c", local(probe[2])], timeout=10, env=clean).returncode == 0
        # and it fails when the file holds another password
        (secret_dir / "REDIS_PASSWORD").write_text("not-it")
        assert subprocess.run(["/bin/sh", "-c", local(probe[2])], timeout=10, env=clean).returncode != 0
        (secret_dir / "REDIS_PASSWORD").write_text(PASSWORD)
        settings = {}
        for key in ("save", "appendonly", "maxmemory-policy", "maxmemory"):
            name, *value = _cli(port, "config", "get", key, password=PASSWORD).split("\n")
            assert name == key
            settings[key] = value[0] if value else ""
        assert settings == {"save": "", "appendonly": "no", "maxmemory-policy": "volatile-lru",
                            "maxmemory": str(384 * 1024 * 1024)}
    finally:
        server.terminate()
        server.wait(timeout=10)
