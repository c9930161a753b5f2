"""A member cluster's kubeconfig, read as data only (docs/security.md, "Member credentials").

A kubeconfig can make its client run a program (``users[].user.exec``, ``auth-provider``), read a file
(``tokenFile``, ``client-certificate``, ``client-key``, ``certificate-authority``) and send what it read as a
credential to any ``server``, or send the credential through another host (``proxy-url``) or to a server whose
certificate is not checked (``insecure-skip-tls-verify``). The hub's operator must never do any of that for a
Secret written by someone else: the kubernetes client's own loader (``new_client_from_config_dict``) does all of
it, so the operator never hands it a member's kubeconfig. This module parses the YAML as plain data, accepts only
the fields below, and builds the operator's client configuration (reconcile/apiclient.py) from them.

Accepted (in every cluster, user and context entry, so no entry the client might pick is left unchecked):

- top level: ``apiVersion``, ``kind``, ``clusters``, ``users``, ``contexts``, ``current-context``,
  ``preferences`` and ``extensions`` (data the client does not act on);
- ``clusters[].cluster``: ``server`` (an ``https://`` URL, no credentials, query or fragment),
  ``certificate-authority-data`` (PEM certificates, base64), ``tls-server-name``,
  ``insecure-skip-tls-verify: false`` (only false), ``extensions``;
- ``users[].user``: ``token`` (inline), or ``client-certificate-data`` with ``client-key-data`` (PEM, base64),
  ``extensions``;
- ``contexts[].context``: ``cluster``, ``user``, ``namespace``, ``extensions``.

Everything else is refused, naming its field path (never its value: it may be a secret). Among them:
``exec``, ``auth-provider`` (run code, or call out with refresh tokens), ``tokenFile``, ``client-certificate``,
``client-key``, ``certificate-authority`` (read a file of the operator's: its own ServiceAccount token, say),
``username``/``password`` (basic authentication, removed from Kubernetes in 1.19), ``as``, ``as-groups``,
``as-uid``, ``as-user-extra`` (impersonation: the credential would act as someone else), ``proxy-url`` (the
credential would go through another host), ``insecure-skip-tls-verify: true`` (anyone on the path could take the
token), ``disable-compression`` and any field unknown to this list (a future client might act on it).
Field names are kubeconfig's (k8s.io/client-go tools/clientcmd/api/v1/types.go).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from ..reconcile.apiclient import ClientConfig
from ..reconcile.transport import client_configuration

TOP_LEVEL = {"apiVersion", "kind", "clusters", "users", "contexts", "current-context", "preferences", "extensions"}
CLUSTER_FIELDS = {"server", "certificate-authority-data", "tls-server-name", "insecure-skip-tls-verify", "extensions"}
USER_FIELDS = {"token", "client-certificate-data", "client-key-data", "extensions"}
CONTEXT_FIELDS = {"cluster", "user", "namespace", "extensions"}
# why a known field is refused (an unknown field gets the general reason)
REFUSED = {
    "exec": "runs a program in the operator",
    "auth-provider": "runs an authentication plugin in the operator",
    "tokenFile": "reads a file of the operator's (e.g. its own ServiceAccount token)",
    "client-certificate": "reads a file of the operator's (inline client-certificate-data instead)",
    "client-key": "reads a file of the operator's (inline client-key-data instead)",
    "certificate-authority": "reads a file of the operator's (inline certificate-authority-data instead)",
    "username": "basic authentication is not accepted (a token or a client certificate instead)",
    "password": "basic authentication is not accepted (a token or a client certificate instead)",
    "as": "impersonation is not accepted",
    "as-uid": "impersonation is not accepted",
    "as-groups": "impersonation is not accepted",
    "as-user-extra": "impersonation is not accepted",
    "proxy-url": "would send the credential through another host",
}
UNKNOWN = "not accepted: member credentials are data only (server, CA, token or client certificate inline)"
PEM_CERT = b"-----BEGIN CERTIFICATE-----"
PEM_KEY = b"-----BEGIN "  # RSA, EC or PKCS#8 keys
MAX_SIZE = 1 << 20  # a Secret holds at most 1 MiB


class KubeconfigRefused(Exception):
    """The kubeconfig is not data-only, or not usable. ``path`` names the field; nothing quotes its value."""

    def __init__(self, path: str, message: str):
        self.path, self.message = path, message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class MemberCredentials:
    server: str
    ca_data: str = ""  # PEM; empty: the client's default trust store
    tls_server_name: str = ""
    token: str = ""
    client_cert: bytes = b""
    client_key: bytes = b""

    def __repr__(self) -> str:  # never the token or the key, in a log or a traceback
        return f"MemberCredentials(server={self.server!r})"


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KubeconfigRefused(path, f"must be a mapping, not {type(value).__name__}")
    return value


def _only(fields: dict[str, Any], allowed: set[str], path: str) -> None:
    for key in fields:
        if key not in allowed:
            raise KubeconfigRefused(f"{path}.{key}" if path else str(key), REFUSED.get(str(key), UNKNOWN))


def _named(doc: dict[str, Any], section: str, inner: str, allowed: set[str]) -> dict[str, dict[str, Any]]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise KubeconfigRefused(section, "must be a list")
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(entries):
        path = f"{section}[{i}]"
        entry = _mapping(entry, path)
        _only(entry, {"name", inner}, path)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise KubeconfigRefused(f"{path}.name", "required")
        body = _mapping(entry.get(inner), f"{path}.{inner}")
        _only(body, allowed, f"{path}.{inner}")
        out.setdefault(name, {"path": f"{path}.{inner}", **body})
    return out


def _pem(value: Any, path: str, marker: bytes) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigRefused(path, "must be base64 text")
    try:
        data = base64.b64decode("".join(value.split()), validate=True)  # line breaks tolerated, nothing else
    except (binascii.Error, ValueError):
        raise KubeconfigRefused(path, "is not valid base64") from None
    if marker not in data:
        raise KubeconfigRefused(path, "is not PEM")
    return data


def _server(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise KubeconfigRefused(path, "required")
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise KubeconfigRefused(path, "is not a URL") from None
    if url.scheme != "https" or not url.hostname:
        raise KubeconfigRefused(path, "must be an https:// URL with a host")
    if url.username is not None or url.password is not None or url.query or url.fragment:
        raise KubeconfigRefused(path, "must hold no credentials, query or fragment")
    return value.rstrip("/")


def parse(raw: bytes) -> MemberCredentials:
    """The credentials of the kubeconfig's current context, if every entry is data only (else KubeconfigRefused)."""
    if len(raw) > MAX_SIZE:
        raise KubeconfigRefused("(document)", "too large")
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise KubeconfigRefused("(document)", "is not YAML") from None
    doc = _mapping(doc, "(document)")
    _only(doc, TOP_LEVEL, "")
    clusters = _named(doc, "clusters", "cluster", CLUSTER_FIELDS)
    users = _named(doc, "users", "user", USER_FIELDS)
    contexts = _named(doc, "contexts", "context", CONTEXT_FIELDS)
    for entry in clusters.values():
        if entry.get("insecure-skip-tls-verify") not in (None, False):
            raise KubeconfigRefused(f"{entry['path']}.insecure-skip-tls-verify",
                                    "must be false: the member's certificate is always verified")
    current = doc.get("current-context")
    if not isinstance(current, str) or current not in contexts:
        raise KubeconfigRefused("current-context", "must name one of contexts[]")
    context = contexts[current]
    cluster = clusters.get(context.get("cluster"))  # type: ignore[arg-type]
    if cluster is None:
        raise KubeconfigRefused(f"{context['path']}.cluster", "must name one of clusters[]")
    user = users.get(context.get("user"))  # type: ignore[arg-type]
    if user is None:
        raise KubeconfigRefused(f"{context['path']}.user", "must name one of users[]")
    cpath, upath = cluster["path"], user["path"]
    server = _server(cluster.get("server"), f"{cpath}.server")
    ca = cluster.get("certificate-authority-data")
    ca_pem = _pem(ca, f"{cpath}.certificate-authority-data", PEM_CERT).decode("ascii", "replace") if ca else ""
    sni = cluster.get("tls-server-name") or ""
    if not isinstance(sni, str):
        raise KubeconfigRefused(f"{cpath}.tls-server-name", "must be a host name")
    token = user.get("token") or ""
    if not isinstance(token, str) or not token.isprintable() or " " in token:
        raise KubeconfigRefused(f"{upath}.token", "must be one line of printable characters")
    cert, key = user.get("client-certificate-data"), user.get("client-key-data")
    if bool(cert) != bool(key):
        missing = "client-key-data" if cert else "client-certificate-data"
        raise KubeconfigRefused(f"{upath}.{missing}", "required with the other half of the client certificate")
    if not token and not cert:
        raise KubeconfigRefused(upath, "needs token, or client-certificate-data and client-key-data")
    return MemberCredentials(
        server=server, ca_data=ca_pem, tls_server_name=sni, token=token,
        client_cert=_pem(cert, f"{upath}.client-certificate-data", PEM_CERT) if cert else b"",
        client_key=_pem(key, f"{upath}.client-key-data", PEM_KEY) if key else b"",
    )


# ---- the client's configuration --------------------------------------------------------------------------------

_files_lock = threading.Lock()
_files_dir: str | None = None


def private_file(content: bytes, suffix: str) -> str:
    """A file of the operator's own holding ``content`` (mode 0600, named by its digest: a rebuild of the same
    credential reuses it). Python's ssl module loads a client certificate and key only from files."""
    global _files_dir
    with _files_lock:
        if _files_dir is None:
            _files_dir = tempfile.mkdtemp(prefix="member-credentials-")
            atexit.register(shutil.rmtree, _files_dir, True)
        path = os.path.join(_files_dir, hashlib.sha256(content).hexdigest()[:32] + suffix)
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        return path


def configuration(creds: MemberCredentials, pool_size: int) -> ClientConfig:
    """The client's configuration built from the validated fields only (TLS verification always on), with no retry
    hidden in the client and TCP keepalive (reconcile/transport.py)."""
    cfg = client_configuration(pool_size)
    cfg.host = creds.server
    cfg.verify_ssl = True
    if creds.ca_data:
        cfg.ca_cert_data = creds.ca_data  # in memory (urllib3's ca_cert_data): no file
    if creds.tls_server_name:
        cfg.tls_server_name = creds.tls_server_name
    if creds.token:
        cfg.token = creds.token
    if creds.client_cert:
        cfg.cert_file = private_file(creds.client_cert, ".crt")
        cfg.key_file = private_file(creds.client_key, ".key")
    return cfg
