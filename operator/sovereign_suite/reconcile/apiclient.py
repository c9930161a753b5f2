"""The operator's own HTTP client for an API server: urllib3 with transport.py's rules, without the ``kubernetes``
package.

Why: ``import kubernetes`` loads the whole generated client (its ``__init__`` imports every API class and about
700 model classes) and cost the operator 27.5 MiB of RSS (docs/performance.md, "Where the memory goes"), while
the operator only ever used its connection pool, its TLS settings and its bearer token. This module keeps those
and nothing else. Its names follow the official client's where the rest of the code reads them (``host``,
``ssl_ca_cert``, ``ca_cert_data``, ``cert_file``, ``key_file``, ``verify_ssl``, ``assert_hostname``,
``tls_server_name``, ``proxy``; ``ApiClient.configuration``, ``.rest_client.request``,
``.update_params_for_auth``): ``Kube`` and watchstream.py work on either, so the CLI commands that keep the
official client (join, seed, devcluster, status) still build a ``Kube`` from it.

What the official client did that is kept (kubernetes==37.0.2 kubernetes/client/rest.py, ``RESTClientObject``):
the same urllib3 pool arguments (``cert_reqs``, ``ca_certs``, ``ca_cert_data``, ``cert_file``, ``key_file``,
``assert_hostname``, ``server_hostname`` from tls-server-name, ``retries``, ``socket_options``, ``maxsize``), a
body sent as JSON unless it is already bytes or text, responses not preloaded (a watch streams). What is not:
its wrapping of urllib3's ``SSLError`` into ``ApiException(status=0)`` (transport.py maps urllib3's error
itself), its proxy and SOCKS support (credentials.py leaves a kubeconfig with ``proxy-url`` to the official
loader), and everything generated.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import urllib3

log = logging.getLogger(__name__)

# client-go re-reads a token file a minute after it read it, 10 s early (k8s.io/client-go v0.37.0-beta.0
# transport/token_source.go, NewCachedFileTokenSource: period time.Minute, leeway 10 s, "half of the duration
# between when the kubelet refreshes a projected service account token and when the original token expires").
TOKEN_REREAD = 60.0 - 10.0


class TokenFile:
    """A bearer token read from a file and read again as client-go does: after ``TOKEN_REREAD`` seconds, and
    after a 401 to a request sent with a token read before it (``reset_older_than``), because the kubelet rotates
    bound ServiceAccount tokens in place. A file that cannot be read keeps the last token (client-go's
    cachingTokenSource: "Unable to rotate token"); the first read's error is raised."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._read_at = 0.0
        self.token()  # the first read fails loudly (no file, no permission)

    def token(self) -> str:
        now = self._clock()
        if self._token and now - self._read_at < TOKEN_REREAD:
            return self._token
        with self._lock:
            if self._token and now - self._read_at < TOKEN_REREAD:
                return self._token
            try:
                with open(self.path, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as err:
                if not self._token:
                    raise
                log.error("cannot read the token again from %s (the last one is kept): %s", self.path, err)
                return self._token
            self._token, self._read_at = token, now
            return token

    def reset_older_than(self, sent: float) -> None:
        """A 401 to a request sent at ``sent``: a token read before then is read again on the next request (one
        read after the 401 is kept: another request must fail before it is dropped, as in client-go)."""
        with self._lock:
            if self._read_at < sent:
                self._token, self._read_at = "", 0.0


@dataclass
class ClientConfig:
    """Where a cluster is and how to reach it. ``token``: a fixed bearer token; ``token_file``: one read again
    (``TokenFile``); neither: a client certificate or no credential. Pool settings are read once, when the
    ``ApiClient`` is built."""

    host: str = "http://localhost"
    ssl_ca_cert: str | None = None  # a CA file
    ca_cert_data: str | None = None  # PEM in memory (no file)
    cert_file: str | None = None
    key_file: str | None = None
    verify_ssl: bool = True
    assert_hostname: bool | str | None = None
    tls_server_name: str | None = None
    proxy: str | None = None  # never set here (module docstring); read by watchstream.py as the official one's
    token: str = field(default="", repr=False)
    token_file: TokenFile | None = None
    retries: Any = False  # transport.py: no retry hidden in urllib3
    connection_pool_maxsize: int = 10
    socket_options: list[tuple[int, int, int]] | None = None

    def authorization(self) -> str:
        token = self.token_file.token() if self.token_file is not None else self.token
        return f"Bearer {token}" if token else ""


class RestResponse:
    """An answer: ``status``, ``reason``, ``read()`` (the whole body, read once), ``getheader``, and the urllib3
    ``response`` itself (a watch streams it)."""

    def __init__(self, response: urllib3.BaseHTTPResponse):
        self.response = response
        self.status = response.status
        self.reason = response.reason
        self.data: bytes | None = None

    def read(self) -> bytes:
        if self.data is None:
            self.data = self.response.data
        return self.data

    @property
    def headers(self) -> Any:
        return self.response.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.response.headers.get(name, default)


class RestClient:
    """One urllib3 pool manager per cluster, with the official client's pool arguments (module docstring)."""

    def __init__(self, cfg: ClientConfig):
        self.configuration = cfg
        pool_args: dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE,
            "ca_certs": cfg.ssl_ca_cert, "ca_cert_data": cfg.ca_cert_data,
            "cert_file": cfg.cert_file, "key_file": cfg.key_file,
            "retries": cfg.retries, "maxsize": cfg.connection_pool_maxsize,
        }
        if cfg.assert_hostname is not None:
            pool_args["assert_hostname"] = cfg.assert_hostname
        if cfg.tls_server_name:
            pool_args["server_hostname"] = cfg.tls_server_name
        if cfg.socket_options is not None:
            pool_args["socket_options"] = cfg.socket_options
        self.pool_manager = urllib3.PoolManager(**pool_args)

    def request(self, method: str, url: str, headers: dict[str, str] | None = None, body: Any = None,
                _request_timeout: tuple[float, float] | float | None = None) -> RestResponse:
        """Send one request, no retry; transport errors are urllib3's, raised as they are (transport.py). The
        argument names are the official ``RESTClientObject.request``'s (tests wrap either)."""
        timeout = None
        if isinstance(_request_timeout, tuple):
            timeout = urllib3.Timeout(connect=_request_timeout[0], read=_request_timeout[1])
        elif _request_timeout:
            timeout = urllib3.Timeout(total=_request_timeout)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        sent = time.monotonic()
        resp = self.pool_manager.request(method.upper(), url, body=body, headers=headers or {}, timeout=timeout,
                                         preload_content=False)
        if resp.status == 401 and self.configuration.token_file is not None:
            self.configuration.token_file.reset_older_than(sent)
        return RestResponse(resp)

    def close(self) -> None:
        self.pool_manager.clear()


class ApiClient:
    """What ``Kube`` holds for one cluster: its ``configuration`` and ``rest_client``."""

    def __init__(self, cfg: ClientConfig):
        self.configuration = cfg
        self.rest_client = RestClient(cfg)

    def update_params_for_auth(self, headers: dict[str, str], *_: Any) -> None:
        """Set the bearer token (read again from its file when due); the official client's name and arguments."""
        auth = self.configuration.authorization()
        if auth:
            headers["Authorization"] = auth

    def close(self) -> None:
        self.rest_client.close()
