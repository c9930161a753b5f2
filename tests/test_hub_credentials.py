"""The hub's credentials without the kubernetes package (reconcile/credentials.py, apiclient.py, login.py): the
kubeconfig kinds the operator meets, the in-cluster ServiceAccount, the token read again as client-go does, and a
kubeconfig that needs the official loader."""

from __future__ import annotations

import base64
import http.server
import threading

import pytest
import yaml

from sovereign_suite.reconcile import apiclient, credentials
from sovereign_suite.reconcile.apiclient import TOKEN_REREAD, ApiClient, ClientConfig, TokenFile
from sovereign_suite.reconcile.kube import ApiError, Kube
from sovereign_suite.reconcile.login import connection_info
from sovereign_suite.reconcile.transport import client_configuration

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _write(tmp_path, user: dict, cluster: dict | None = None, name: str = "config") -> str:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "k", "cluster": cluster or {"server": "https://127.0.0.1:6443/",
                                                             "certificate-authority": "pki/ca.crt"}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_kwokctl_kubeconfig_with_files_relative_to_its_folder(tmp_path):
    path = _write(tmp_path, {"client-certificate": "pki/admin.crt", "client-key": str(tmp_path / "admin.key")})
    cfg = client_configuration()
    credentials.from_kubeconfig(cfg, {"KUBECONFIG": path})
    assert cfg.host == "https://127.0.0.1:6443" and cfg.verify_ssl
    assert cfg.ssl_ca_cert == str(tmp_path / "pki/ca.crt")  # relative to the kubeconfig, as client-go reads it
    assert cfg.cert_file == str(tmp_path / "pki/admin.crt") and cfg.key_file == str(tmp_path / "admin.key")
    assert cfg.authorization() == "" and cfg.retries is False and cfg.socket_options


def test_inline_data_token_and_tls_server_name(tmp_path):
    cluster = {"server": "https://10.0.0.1:6443", "tls-server-name": "api.fr.example",
               "certificate-authority-data": base64.b64encode(CA.encode()).decode()}
    path = _write(tmp_path, {"token": "abc"}, cluster)
    cfg = client_configuration()
    credentials.from_kubeconfig(cfg, {"KUBECONFIG": path})
    assert cfg.ca_cert_data == CA and cfg.ssl_ca_cert is None and cfg.tls_server_name == "api.fr.example"
    assert cfg.authorization() == "Bearer abc"
    info = connection_info(cfg)  # what Kopf gets
    assert (info.server, info.scheme, info.token, info.ca_data, info.ca_path) == (
        "https://10.0.0.1:6443", "Bearer", "abc", CA, None)


def test_the_first_file_of_kubeconfig_wins_for_each_name(tmp_path):
    first = _write(tmp_path, {"token": "first"}, name="a")
    second = _write(tmp_path, {"token": "second"}, name="b")
    cfg = client_configuration()
    credentials.from_kubeconfig(cfg, {"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"})
    assert cfg.authorization() == "Bearer first"


@pytest.mark.parametrize("user, field", [({"exec": {"command": "aws"}}, "exec"),
                                         ({"auth-provider": {"name": "oidc"}}, "auth-provider"),
                                         ({"username": "a", "password": "b"}, "password")])
def test_what_only_the_official_loader_does_is_left_to_it(tmp_path, user, field):
    path = _write(tmp_path, user)
    with pytest.raises(credentials.NeedsOfficialLoader) as err:
        credentials.from_kubeconfig(client_configuration(), {"KUBECONFIG": path})
    assert err.value.field in (field, "username")
    with pytest.raises(credentials.NeedsOfficialLoader) as err:
        credentials.from_kubeconfig(client_configuration(), {"KUBECONFIG": _write(
            tmp_path, {"token": "t"}, {"server": "https://x:1", "proxy-url": "http://p:3128"})})
    assert err.value.field == "proxy-url"


def test_no_kubeconfig_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(credentials.NoCredentials):
        credentials.from_kubeconfig(client_configuration(), {})


def test_in_cluster_as_client_go_builds_it(tmp_path):
    (tmp_path / "token").write_text("sa-token\n")
    (tmp_path / "ca.crt").write_text(CA)
    cfg = client_configuration()
    assert not credentials.in_cluster(cfg, str(tmp_path), {})  # not in a pod
    assert credentials.in_cluster(cfg, str(tmp_path), {"KUBERNETES_SERVICE_HOST": "fd00::1",
                                                       "KUBERNETES_SERVICE_PORT": "443"})
    assert cfg.host == "https://[fd00::1]:443" and cfg.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert cfg.authorization() == "Bearer sa-token"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_file_is_read_again_after_50_s_and_kept_when_it_cannot_be(tmp_path):
    path, clock = tmp_path / "token", Clock()
    path.write_text("one")
    token = TokenFile(str(path), clock)
    path.write_text("two")
    clock.now += TOKEN_REREAD - 1
    assert token.token() == "one"  # cached
    clock.now += 1
    assert token.token() == "two"  # the kubelet rotated it
    path.unlink()
    clock.now += TOKEN_REREAD
    assert token.token() == "two"  # unreadable for a moment: the last one is kept
    with pytest.raises(OSError):
        TokenFile(str(tmp_path / "absent"))  # but a first read fails loudly


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 401 to any token but the one in ``valid``; records the Authorization headers."""

    seen: list[str] = []
    valid = "new"

    def do_GET(self):  # noqa: N802 - http.server's name
        auth = self.headers.get("Authorization", "")
        self.seen.append(auth)
        ok = auth == f"Bearer {self.valid}"
        body = b'{"kind": "Status"}' if ok else b'{"reason": "Unauthorized", "message": "Unauthorized"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_401_makes_the_next_request_read_the_token_file_again(tmp_path):
    """client-go's tokenSourceTransport: a 401 resets a token read before the request; the next request reads the
    file again (no wait for the 50 s), and a real server sees the rotated token."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = tmp_path / "token"
        path.write_text("old")
        cfg = client_configuration()
        cfg.host, cfg.token_file = f"http://127.0.0.1:{server.server_address[1]}", TokenFile(str(path))
        kube = Kube(ApiClient(cfg), max_retries=0)
        path.write_text("new")  # rotated, within the 50 s
        with pytest.raises(ApiError) as err:
            kube.request("GET", "/api", what="discovery")
        assert err.value.status == 401
        assert kube.request("GET", "/api", what="discovery") == {"kind": "Status"}
        assert Recorder.seen == ["Bearer old", "Bearer new"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_without_retries_raises_urllib3s_error_as_is():
    cfg = ClientConfig(host="http://127.0.0.1:9", retries=False)
    with pytest.raises(apiclient.urllib3.exceptions.NewConnectionError):
        ApiClient(cfg).rest_client.request("GET", cfg.host + "/api", _request_timeout=(0.5, 0.5))


def test_kopf_gets_the_rotated_token_and_the_client_certificate_files(tmp_path):
    (tmp_path / "token").write_text("first")
    cfg = client_configuration()
    credentials.from_kubeconfig(cfg, {"KUBECONFIG": _write(tmp_path, {"tokenFile": "token"})})
    assert connection_info(cfg).token == "first"
    cfg.token_file.reset_older_than(float("inf"))  # a 401 (Kopf logs in again then)
    (tmp_path / "token").write_text("second")
    info = connection_info(cfg)
    assert (info.token, info.ca_path, info.insecure) == ("second", str(tmp_path / "pki/ca.crt"), False)
    api = credentials.kubeconfig_client(_write(tmp_path, {"client-certificate": "a.crt", "client-key": "a.key"}))
    assert isinstance(api, ApiClient) and api.configuration.connection_pool_maxsize == 64
    info = connection_info(api.configuration)
    assert (info.certificate_path, info.private_key_path, info.token) == (
        str(tmp_path / "a.crt"), str(tmp_path / "a.key"), None)
