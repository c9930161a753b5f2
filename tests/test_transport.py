"""How the operator reaches an API server that does not answer (reconcile/transport.py, kube.py), against real
sockets on loopback and no API server at all: a listener that accepts connections and never answers (what a
stopped kube-apiserver does), a port nobody listens on, a TLS server with an expired certificate. Every one of
them is that cluster's ``ClusterUnreachable``, within its deadlines, asked once (no retry hidden in the client)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import urllib3
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from sovereign_suite.reconcile.apiclient import ApiClient, ClientConfig

from sovereign_suite.reconcile.cache import ClusterCache
from sovereign_suite.reconcile.informer import Informer
from sovereign_suite.reconcile.kube import Kind, Kube, Unreachable
from sovereign_suite.reconcile.pools import ClusterPools
from sovereign_suite.reconcile.problems import Severity, from_api_error
from sovereign_suite.reconcile.targets import Target
from sovereign_suite.reconcile.transport import Deadlines, Reachability, client_configuration, transport_error

FAST = Deadlines(connect=0.5, read=0.5, watch=1)


class Silent:
    """A TCP listener on loopback that accepts every connection and never sends a byte; counts connections."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.tls = tls
        self.accepted = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.tls is not None:
                try:  # answers the TLS handshake (the client refuses the certificate), nothing else
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    pass
            self._held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self._held:
            c.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


def kube_for(host: str, deadlines: Deadlines = FAST, cfg: ClientConfig | None = None, **kw) -> Kube:
    cfg = cfg or client_configuration()
    cfg.host = host
    return Kube(ApiClient(cfg), deadlines=deadlines, **kw)


def test_a_silent_server_is_asked_once_and_is_unreachable_after_the_read_deadline(silent):
    changes = []
    kube = kube_for(f"http://127.0.0.1:{silent.port}", max_retries=6, reachability=Reachability(
        lambda: changes.append(kube.reachability.failure())))
    for method in ("GET", "DELETE", "PATCH"):
        before, started = silent.accepted, time.monotonic()
        with pytest.raises(Unreachable) as err:
            kube.request(method, "/api/v1/namespaces/x/configmaps/y", body={} if method != "GET" else None,
                         what="ConfigMap/x/y")
        took = time.monotonic() - started
        assert 0.4 < took < 2.0, took  # one read deadline, no retry on top (neither urllib3's nor the operator's)
        assert silent.accepted - before == 1, method
        problem = from_api_error(err.value, None)
        assert (problem.reason, problem.severity) == ("ClusterUnreachable", Severity.DEGRADED)
        assert err.value.status == 0 and "timed out" in problem.message
    assert kube.reachability.failure() and "ConfigMap/x/y" in kube.reachability.failure()
    assert len(changes) == 1  # marked down once, not per request


def test_the_clients_own_default_asks_a_silent_server_four_times(silent):
    """Why ``retries = False``: the kubernetes client's default configuration hands urllib3 its default Retry(3),
    which reads again after a read timeout on GET and DELETE (transport.py cites both)."""
    cfg = k8s_client.Configuration()
    cfg.host = f"http://127.0.0.1:{silent.port}"
    api = k8s_client.ApiClient(cfg)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        api.rest_client.request("GET", cfg.host + "/api", _request_timeout=(0.5, 0.3))
    assert silent.accepted == 4


def test_a_refused_connection_is_tried_once_more_then_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    kube = kube_for(f"http://127.0.0.1:{port}", max_retries=1, max_delay=0.05)
    with pytest.raises(Unreachable) as err:
        kube.request("POST", "/api/v1/namespaces", body={}, what="Namespace/x")
    assert kube.requests["POST"] == 2  # the operator's own retry, once
    assert "refused" in err.value.message.lower() and kube.reachability.failure()


def _expired_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 valid for one day in 2020, made by the openssl command (3.0 has no
    ``req -not_after``: ``ca -selfsign`` takes the dates)."""
    (folder / "index.txt").write_text("")
    (folder / "serial").write_text("01\n")
    (folder / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\ndefault_md = sha256\n"
        "policy = p\ncopy_extensions = copy\nunique_subject = no\n[p]\ncommonName = supplied\n")
    run = dict(cwd=folder, check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], **run)
    subprocess.run(["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", "key.pem", "-in",
                    "req.csr", "-out", "cert.pem", "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
                    "-notext"], **run)
    return folder / "cert.pem", folder / "key.pem"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_an_expired_member_certificate_is_unreachable_not_the_clients_exception(tmp_path):
    cert, key = _expired_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    server = Silent(tls=server_tls)
    try:
        cfg = client_configuration()
        cfg.ssl_ca_cert = str(cert)  # trusted, but expired
        kube = kube_for(f"https://127.0.0.1:{server.port}", cfg=cfg, max_retries=6)
        with pytest.raises(Unreachable) as err:
            kube.request("GET", "/api/v1/namespaces", what="list Namespace")
        assert server.accepted == 1  # a TLS failure is not retried
        assert err.value.message.startswith("TLS:") and "expired" in err.value.message
        assert from_api_error(err.value, None).reason == "ClusterUnreachable"
    finally:
        server.close()


def test_a_watch_that_brings_nothing_ends_after_its_timeout_plus_the_read_deadline(silent):
    """A watch asks the server to end it after ``watch`` seconds; no byte for ``watch + read`` is a server that
    does not answer (the informer then fails and relists), not a watch left waiting 330 s."""
    kube = kube_for(f"http://127.0.0.1:{silent.port}")
    kube._groups["v1"] = (time.monotonic(), {"Pod": Kind("v1", "Pod", "pods", True)})  # discovery already done
    started = time.monotonic()
    with pytest.raises(Unreachable):
        list(kube.watch("v1", "Pod", "1", timeout=FAST.watch))
    assert 1.3 < time.monotonic() - started < 3.0
    assert "watch Pod" in kube.reachability.failure()
    assert Informer(kube, "v1", "Pod", strip=dict).watch_timeout == FAST.watch  # the cluster's deadline by default


def test_transport_errors_and_the_rest():
    assert transport_error(urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out.")).retriable is False
    assert transport_error(urllib3.exceptions.NewConnectionError(None, "refused")).retriable is True
    assert transport_error(urllib3.exceptions.ProtocolError("Connection aborted.")).retriable is True
    assert transport_error(ConnectionResetError(104, "reset")).retriable is True
    tls = transport_error(ApiException(status=0, reason="SSLError\ncertificate has expired"))
    assert tls == ("TLS: certificate has expired", False)
    assert transport_error(ApiException(status=500, reason="Internal")) is None  # an answer, not transport
    assert transport_error(ApiException(status=0, reason="Cannot prepare a request message")) is None
    assert transport_error(ValueError("bug")) is None


def test_a_member_whose_request_got_no_answer_is_unreachable_until_it_answers(silent):
    kube = kube_for(f"http://127.0.0.1:{silent.port}")
    target = Target("de-c5", kube, ClusterCache(kube, ()), ClusterPools("de-c5", 1, 1),
                    server=kube.api.configuration.host)
    sent_before = time.monotonic()
    with pytest.raises(Unreachable):
        kube.request("GET", "/version", what="version")
    assert target.unanswered()
    problem = target.problem()
    assert problem.reason == "ClusterUnreachable" and "de-c5" in problem.message and "version" in problem.message
    # an answer to a request sent before it stopped answering (read late) says nothing about now
    kube.reachability.answered(sent_before)
    assert target.unanswered()
    kube.reachability.answered(time.monotonic())
    assert not target.unanswered() and target.problem().message.endswith("not reached yet")  # its cache never listed
    target.stop()
