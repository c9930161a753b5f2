"""The workers' Redis as rendered: its container command run by a real redis-server (Debian's, installed by
hack/install-federation-tools.sh), with the password file where the Secret's volume puts it (only that path
remapped). A client without the password is refused, a wrong password is refused, the right one is served, and
the password is on no command line."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sovereign_suite.components import matrix
from sovereign_suite.components.base import build_contexts

from ..helpers import load_example, suite_with

PASSWORD = "Zx" * 32


def _redis_container():
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": {"size": "small"}}}})
    ctx = build_contexts(suite, load_example("two-countries")[1])[0]
    deploy = next(o for o in matrix.render(ctx)
                  if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse-redis")
    return deploy["spec"]["template"]["spec"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(port: int, *command: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("*%d\r\n" % len(command) + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)).encode())
        return s.recv(200)


@pytest.fixture
def redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: run hack/install-federation-tools.sh")
    pod = _redis_container()
    [container] = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "password")["mountPath"]
    item = next(v for v in pod["volumes"] if v["name"] == "password")["secret"]["items"][0]
    assert item == {"key": "redis_password", "path": "password"}
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "password").write_text(PASSWORD)
    port = _free_port()
    script = container["command"][2].replace(mount, str(tmp_path / "secret"))
    script = script.replace("--port 6379", f"--port {port}")
    assert script.count(str(tmp_path)) == 1 and f"--port {port}" in script  # only the path and the port changed
    proc = subprocess.Popen([*container["command"][:2], script], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            _ask(port, "PING")
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(proc.stdout.read().decode()[-2000:])
            time.sleep(0.1)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_rendered_redis_requires_its_password(redis):
    port, proc = redis
    assert _ask(port, "PING").startswith(b"-NOAUTH")
    assert b"WRONGPASS" in _ask(port, "AUTH", "not-the-password")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(PASSWORD)}\r\n{PASSWORD}\r\n*1\r\n$4\r\nPING\r\n".encode())
        time.sleep(0.3)
        assert s.recv(100) == b"+OK\r\n+PONG\r\n"
    # the password is in no process's command line (exec: redis-server replaced the shell)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    assert "redis-server" in cmdline and PASSWORD not in cmdline
