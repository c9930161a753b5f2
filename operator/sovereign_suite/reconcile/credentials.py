"""The hub's credentials for ``sovereign-suite run``: the pod's ServiceAccount, else the kubeconfig, read without
the ``kubernetes`` package (apiclient.py says why).

- In cluster (``KUBERNETES_SERVICE_HOST`` and ``_PORT`` set), as client-go's ``InClusterConfig`` does
  (k8s.io/client-go v0.37.0-beta.0 rest/config.go): ``https://`` host and port, the CA
  ``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`` and the token file next to it, read again as the
  kubelet rotates it (apiclient.TokenFile).
- Else the kubeconfig (``$KUBECONFIG``, a list of files whose first entry of each name wins, else
  ``~/.kube/config``): its current context's server, CA (file or data), ``insecure-skip-tls-verify``,
  ``tls-server-name``, and a token (inline or ``tokenFile``, read again like the ServiceAccount's) or a client
  certificate (files or data). Relative file names are relative to the kubeconfig's own folder (client-go's
  rule). kwokctl's, the devcluster's and ``cloud join``'s kubeconfigs are of this kind.
- Anything else in the user or cluster entry (``exec``, ``auth-provider``, ``username``/``password``,
  ``proxy-url``, impersonation...) is handed to the official client's loader, imported only then; the operator
  then works as it always did, with that package's memory (docs/performance.md).

This is the operator's own configuration, trusted as the operator's; a member's kubeconfig, written by someone
else, is read by members/kubeconfig.py under much stricter rules.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import yaml

from ..members.kubeconfig import private_file
from .apiclient import ApiClient, ClientConfig, TokenFile
from .transport import CONNECTION_POOL, client_configuration

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
CLUSTER_FIELDS = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify",
                  "tls-server-name", "extensions"}
USER_FIELDS = {"token", "tokenFile", "client-certificate", "client-certificate-data", "client-key",
               "client-key-data", "extensions"}


class NoCredentials(Exception):
    """Neither in a pod nor given a usable kubeconfig."""


class NeedsOfficialLoader(Exception):
    """The kubeconfig asks for something only the official client does (``field``: what)."""

    def __init__(self, field: str):
        self.field = field
        super().__init__(field)


def in_cluster(cfg: ClientConfig, folder: str = SERVICE_ACCOUNT, env: dict[str, str] | None = None) -> bool:
    """Fill ``cfg`` from the pod's ServiceAccount; False when not in a pod (no service host or port)."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return False
    cfg.host = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"  # net.JoinHostPort
    cfg.token_file = TokenFile(os.path.join(folder, "token"))
    ca = os.path.join(folder, "ca.crt")
    if os.path.exists(ca):  # client-go logs a missing CA and goes on with the system's trust store
        cfg.ssl_ca_cert = ca
    return True


def _kubeconfig_paths(env: dict[str, str]) -> list[str]:
    listed = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [os.path.expanduser(p) for p in listed]
    home = os.path.expanduser("~/.kube/config")
    return [home] if os.path.exists(home) else []


Named = dict[str, tuple[str, dict[str, Any]]]  # name -> (folder of the file it came from, entry)


def _merged(paths: list[str]) -> tuple[str, Named, Named, Named]:
    """The current context's name and, per section, each name's (folder of its file, entry): the first wins."""
    current = ""
    sections: dict[str, Named] = {"contexts": {}, "clusters": {}, "users": {}}
    for path in paths:
        if not os.path.exists(path):
            continue  # client-go skips a listed file that does not exist
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        current = current or doc.get("current-context") or ""
        folder = os.path.dirname(os.path.abspath(path))
        for section, inner in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for entry in doc.get(section) or []:
                sections[section].setdefault(entry.get("name"), (folder, entry.get(inner) or {}))
    return current, sections["contexts"], sections["clusters"], sections["users"]


def from_kubeconfig(cfg: ClientConfig, env: dict[str, str] | None = None) -> None:
    """Fill ``cfg`` from the kubeconfig's current context (NoCredentials: none; NeedsOfficialLoader: a field
    this reader leaves to the official client)."""
    paths = _kubeconfig_paths(os.environ if env is None else env)
    current, contexts, clusters, users = _merged(paths)
    if not current or current not in contexts:
        raise NoCredentials(f"no current context in the kubeconfig ({os.pathsep.join(paths) or 'none found'})")
    context = contexts[current][1]
    if context.get("cluster") not in clusters:
        raise NoCredentials(f"context {current!r} names no known cluster")
    folder, cluster = clusters[context["cluster"]]
    ufolder, user = users.get(context.get("user", ""), (folder, {}))  # no user: no credential (client-go's too)
    for entry, known in ((cluster, CLUSTER_FIELDS), (user, USER_FIELDS)):
        for key in entry:
            if key not in known:
                raise NeedsOfficialLoader(key)
    cfg.host = str(cluster.get("server") or "").rstrip("/")
    if not cfg.host:
        raise NoCredentials(f"cluster {context['cluster']!r} has no server")
    cfg.verify_ssl = not cluster.get("insecure-skip-tls-verify", False)
    if cluster.get("certificate-authority-data"):
        cfg.ca_cert_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        cfg.ssl_ca_cert = _path(folder, cluster["certificate-authority"])
    cfg.tls_server_name = cluster.get("tls-server-name") or None
    if user.get("token"):
        cfg.token = str(user["token"])
    elif user.get("tokenFile"):
        cfg.token_file = TokenFile(_path(ufolder, user["tokenFile"]))
    cfg.cert_file = _file(user, "client-certificate", ufolder, ".crt")
    cfg.key_file = _file(user, "client-key", ufolder, ".key")


def _file(user: dict[str, Any], name: str, folder: str, suffix: str) -> str | None:
    """A client certificate or key as a file (Python's ssl loads them only from files): the kubeconfig's own, or
    the data written to a private file."""
    if user.get(f"{name}-data"):
        return private_file(base64.b64decode(user[f"{name}-data"]), suffix)
    if user.get(name):
        return _path(folder, user[name])
    return None


def _path(folder: str, name: str) -> str:
    """A file a kubeconfig names: ``~`` expanded, a relative name taken from the kubeconfig's folder."""
    return os.path.join(folder, os.path.expanduser(str(name)))


def hub_client(pool_size: int = CONNECTION_POOL) -> Any:
    """The hub's client: in-cluster credentials, else the kubeconfig; no retry hidden in the client, pool size
    and keepalive (transport.py). A kubeconfig this module leaves to the official loader gets the official
    client, configured with the same transport settings."""
    cfg = client_configuration(pool_size)
    if in_cluster(cfg):
        return ApiClient(cfg)
    try:
        from_kubeconfig(cfg)
    except NeedsOfficialLoader as need:
        return _official_client(pool_size, need.field)
    return ApiClient(cfg)


def kubeconfig_client(path: str, pool_size: int = CONNECTION_POOL) -> ApiClient:
    """The operator's client for the kubeconfig at ``path`` (benches and tests that build an operator context as
    ``run`` would)."""
    cfg = client_configuration(pool_size)
    from_kubeconfig(cfg, {"KUBECONFIG": path})
    return ApiClient(cfg)


def _official_client(pool_size: int, field: str) -> Any:
    import logging

    from kubernetes import client as k8s_client, config as k8s_config

    from .transport import KEEPALIVE, keepalive_socket_options

    logging.getLogger(__name__).info("the kubeconfig's %r needs the kubernetes client's loader: using it", field)
    cfg = k8s_client.Configuration()
    cfg.retries = False
    cfg.connection_pool_maxsize = pool_size
    cfg.socket_options = keepalive_socket_options(*KEEPALIVE)
    k8s_config.load_kube_config(client_configuration=cfg)
    return k8s_client.ApiClient(cfg)
