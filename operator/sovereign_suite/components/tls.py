"""TLS inside a tenant: which servers get a certificate from the tenant's CA, and how pods mount it.

One generated Secret per tenant, ``tenant-tls`` (tlsgen.py makes the values once): ``ca.crt`` and ``ca.key`` (the
tenant's CA), and for each server ``<server>.crt``/``<server>.key``. The servers are the embedded PostgreSQL of
Matrix and Docs (``<component>-postgres``), Docs' Redis (``docs-redis``) and the Synapse workers' Redis
(``synapse-redis``), which also verifies its clients: the Synapse processes present ``synapse-redis-client.crt``
(Synapse 1.163.2 does not verify the Redis server's certificate, see components/matrix/workers.py, so the server
checks them instead). A CloudNativePG cluster has CNPG's own
CA (``<cluster>-ca``) and an external server its owner's. Pods mount only the keys they need (``items``): a server
its certificate, key and the CA certificate, a client the CA certificate; ``ca.key`` is mounted by no pod.

The tenancy renderer declares the Secret, because the servers of several components share the one CA.
"""

from __future__ import annotations

from typing import Any

from .base import RenderContext, SecretKey, SecretSpec

SECRET = "tenant-tls"
CA_CERT = "ca.crt"
CA_KEY = "ca.key"
DOCS_REDIS = "docs-redis"  # Docs' Redis: its Service name, also its server name here
SYNAPSE_REDIS = "synapse-redis"  # the Synapse workers' Redis (components/matrix/workers.py REDIS_NAME)
SYNAPSE_REDIS_CLIENT = "synapse-redis-client"  # the client certificate of the tenant's Synapse processes
# A server's files where the pod mounts them: the names PostgreSQL's and Redis's settings point at.
SERVER_FILES = {"cert": "tls.crt", "key": "tls.key", "ca": CA_CERT}
SECRET_MODE = 0o440  # readable by the owner (root) and the pod's fsGroup: PostgreSQL accepts a root-owned key up to 0640


def cert_key(server: str) -> str:
    return f"{server}.crt"


def key_key(server: str) -> str:
    return f"{server}.key"


def servers(ctx: RenderContext) -> list[str]:
    """The tenant's servers that present a certificate of its CA, sorted."""
    out = []
    for component in ("matrix", "docs"):
        settings = getattr(ctx.components, component)
        if settings.enabled and settings.postgres.mode == "embedded":
            out.append(f"{component}-postgres")
    if ctx.components.docs.enabled:
        out.append(DOCS_REDIS)
    if ctx.components.matrix.enabled and ctx.components.matrix.workers.enabled():
        out.append(SYNAPSE_REDIS)
    return sorted(out)


def clients(ctx: RenderContext) -> list[str]:
    """The tenant's clients that present a certificate of its CA (to a server verifying its clients)."""
    return [SYNAPSE_REDIS_CLIENT] if SYNAPSE_REDIS in servers(ctx) else []


def hosts(ctx: RenderContext, service: str) -> tuple[str, ...]:
    """The names clients use for ``service``: its Service name (what the suite's clients connect to), the longer
    forms of it (the cluster domain is assumed to be cluster.local, as CloudNativePG assumes), and localhost /
    127.0.0.1 for a sidecar of the same pod (the database's metrics exporter)."""
    ns = ctx.namespace
    return (service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local", "localhost",
            "127.0.0.1")


def secret_spec(ctx: RenderContext) -> SecretSpec | None:
    """The tenant's TLS Secret, or None when no server of the tenant needs one."""
    names = servers(ctx)
    if not names:
        return None
    keys = {CA_CERT: SecretKey("tls-ca-cert", subject=f"{ctx.suite_name} {ctx.tenant.country} tenant CA"),
            CA_KEY: SecretKey("tls-ca-key")}
    for server in names:
        keys[cert_key(server)] = SecretKey("tls-cert", hosts=hosts(ctx, server))
        keys[key_key(server)] = SecretKey("tls-key")
    for client in clients(ctx):
        keys[cert_key(client)] = SecretKey("tls-cert", hosts=("synapse",), client=True)
        keys[key_key(client)] = SecretKey("tls-key")
    return SecretSpec(name=SECRET, namespace=ctx.namespace, component="tenancy", keys=keys,
                      labels=ctx.labels("tenancy", "tenant-tls"))


def server_volume(name: str, server: str) -> dict[str, Any]:
    """A Secret volume with a server's certificate, key and the CA certificate (SERVER_FILES)."""
    items = [{"key": CA_CERT, "path": SERVER_FILES["ca"]}, {"key": cert_key(server), "path": SERVER_FILES["cert"]},
             {"key": key_key(server), "path": SERVER_FILES["key"]}]
    return {"name": name, "secret": {"secretName": SECRET, "items": items, "defaultMode": SECRET_MODE}}


def client_files(client: str) -> list[dict[str, str]]:
    """The ``items`` of a client's pair as SERVER_FILES names it (the CA certificate included)."""
    return [{"key": CA_CERT, "path": SERVER_FILES["ca"]}, {"key": cert_key(client), "path": SERVER_FILES["cert"]},
            {"key": key_key(client), "path": SERVER_FILES["key"]}]


def client_volume(name: str, client: str) -> dict[str, Any]:
    """A Secret volume with a client's certificate, key and the CA certificate."""
    return {"name": name, "secret": {"secretName": SECRET, "items": client_files(client), "defaultMode": SECRET_MODE}}


def ca_volume(name: str, secret: str = SECRET, key: str = CA_CERT) -> dict[str, Any]:
    """A Secret volume with only the CA certificate a client verifies its server with, as ``ca.crt``."""
    return {"name": name, "secret": {"secretName": secret, "items": [{"key": key, "path": CA_CERT}],
                                     "defaultMode": SECRET_MODE}}
