"""The workers' Redis as rendered: its container command run by a real redis-server (Debian's, installed by
hack/install-federation-tools.sh), with the password file and the tenant CA's certificates where the Secret volumes
put them (only those paths and the port remapped). TLS only: a plaintext client, a client without a certificate,
with another CA's or with a server certificate are refused; the suite's client pair is served, then a client without
the password or with a wrong one is refused and the right one served; the password is on no command line."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from sovereign_suite import tlsgen
from sovereign_suite.components import matrix
from sovereign_suite.components.base import build_contexts

from ..helpers import load_example, suite_with
from ..processes import free_port as _free_port

PASSWORD = "Zx" * 32


def _redis_container():
    suite = suite_with("two-countries", {"components": {"matrix": {"workers": {"size": "small"}}}})
    ctx = build_contexts(suite, load_example("two-countries")[1])[0]
    deploy = next(o for o in matrix.render(ctx)
                  if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse-redis")
    return deploy["spec"]["template"]["spec"]


def _ask(port: int, *command: str, context: ssl.SSLContext | None = None) -> bytes:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with (context.wrap_socket(raw, server_hostname="localhost") if context else raw) as s:
        s.sendall(("*%d\r\n" % len(command) + "".join(f"${len(c)}\r\n{c}\r\n" for c in command)).encode())
        return s.recv(200)


def _tls_files(folder: Path, ca: tuple[str, str], pair: tuple[str, str]) -> None:
    folder.mkdir()
    for name, content in (("ca.crt", ca[0]), ("tls.crt", pair[0]), ("tls.key", pair[1])):
        (folder / name).write_text(content)
        (folder / name).chmod(0o600)


@pytest.fixture
def redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is missing: run hack/install-federation-tools.sh")
    pod = _redis_container()
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["password"]["secret"]["items"][0] == {"key": "redis_password", "path": "password"}
    # the tenant CA's server pair for synapse-redis and client pair (what tlsgen puts in tenant-tls)
    ca = tlsgen.new_ca("test tenant CA")
    assert [i["key"] for i in volumes["tls"]["secret"]["items"]] == ["ca.crt", "synapse-redis.crt", "synapse-redis.key"]
    server = tlsgen.new_server(*ca, ("synapse-redis", "localhost", "127.0.0.1"))
    client = tlsgen.new_server(*ca, ("synapse",), client=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "password").write_text(PASSWORD)
    _tls_files(tmp_path / "tls", ca, server)
    _tls_files(tmp_path / "client", ca, client)
    port = _free_port()
    script = container["command"][2]
    for name, local in (("password", "secret"), ("tls", "tls")):
        script = script.replace(mounts[name] + "/", f"{tmp_path / local}/")
    script = script.replace("--tls-port 6379", f"--tls-port {port}")
    assert "--port 0" in script and f"--tls-port {port}" in script  # no plaintext listener
    proc = subprocess.Popen([*container["command"][:2], script], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    tls_ctx = _client_context(tmp_path / "client")
    deadline = time.monotonic() + 15
    while True:
        try:
            _ask(port, "PING", context=tls_ctx)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(proc.stdout.read().decode()[-2000:])
            time.sleep(0.1)
    yield port, proc, tmp_path
    proc.terminate()
    proc.wait(timeout=10)


def _client_context(folder: Path | None, ca: Path | None = None) -> ssl.SSLContext:
    """A client verifying the server (CA and hostname, as redis-cli --tls --cacert does), with ``folder``'s pair."""
    context = ssl.create_default_context(cafile=str(ca or folder / "ca.crt"))
    if folder is not None:
        context.load_cert_chain(str(folder / "tls.crt"), str(folder / "tls.key"))
    return context


def test_rendered_redis_requires_its_password(redis):
    port, proc, tmp_path = redis
    tls_ctx = _client_context(tmp_path / "client")
    assert _ask(port, "PING", context=tls_ctx).startswith(b"-NOAUTH")
    assert b"WRONGPASS" in _ask(port, "AUTH", "not-the-password", context=tls_ctx)
    with tls_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                             server_hostname="localhost") as s:
        s.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(PASSWORD)}\r\n{PASSWORD}\r\n*1\r\n$4\r\nPING\r\n".encode())
        time.sleep(0.3)
        assert s.recv(100) == b"+OK\r\n+PONG\r\n"
    # the password is in no process's command line (exec: redis-server replaced the shell)
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    assert "redis-server" in cmdline and PASSWORD not in cmdline


def _refused(port: int, context: ssl.SSLContext | None) -> bool:
    """True when the server answers no command: the handshake fails, or (TLS 1.3 checks the client's certificate
    after the handshake) the connection closes before a reply."""
    try:
        return _ask(port, "PING", context=context) == b""
    except (ssl.SSLError, ConnectionError):
        return True


def test_rendered_redis_is_tls_only_and_verifies_its_clients(redis):
    port, _, tmp_path = redis
    assert _refused(port, None)  # plaintext: no listener speaks it (port 0)
    # TLS without a client certificate, and with one from another CA: refused (tls-auth-clients yes)
    assert _refused(port, _client_context(None, ca=tmp_path / "client" / "ca.crt"))
    other_ca = tlsgen.new_ca("another CA")
    _tls_files(tmp_path / "stranger", other_ca, tlsgen.new_server(*other_ca, ("synapse",), client=True))
    stranger = _client_context(tmp_path / "stranger", ca=tmp_path / "client" / "ca.crt")
    assert _refused(port, stranger)
    # a server certificate of the tenant CA is no client certificate (extended key usage serverAuth only)
    _tls_files(tmp_path / "server-as-client", tlsgen.new_ca("unused"),
               tuple((tmp_path / "tls" / n).read_text() for n in ("tls.crt", "tls.key")))
    assert _refused(port, _client_context(tmp_path / "server-as-client", ca=tmp_path / "client" / "ca.crt"))
    # the suite's client pair is served (then asks for the password)
    assert _ask(port, "PING", context=_client_context(tmp_path / "client")).startswith(b"-NOAUTH")
    # and the client refuses a server whose certificate another CA signed (what redis-cli --cacert does)
    with pytest.raises(ssl.SSLCertVerificationError):
        _ask(port, "PING", context=_client_context(tmp_path / "stranger"))
