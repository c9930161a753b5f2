"""The secrets of Docs' backend, worker, migration Job and y-provider: files where Docs reads ``*_FILE``
(issue 22, item 17), the environment only for the Redis password (said why at ``secret_env``)."""

from __future__ import annotations

import shlex
from typing import Any

from .. import tls
from ..base import RenderContext
from ..postgres import Database
from ..secret_files import SecretFile, file_env

SECRET = "docs-secrets"
REDIS_PORT = 6379
# The CA certificate of the tenant (components/tls.py) in the backend, worker and migration pods: libpq and the
# Redis clients verify their servers with it.
CA_DIR = "/etc/docs-tls"
CA_FILE = f"{CA_DIR}/{tls.CA_CERT}"
# Redis over TLS only, verified: redis-py 5.2.1 (impress v5.4.1 src/backend/uv.lock; django-redis passes REDIS_URL
# to it) reads rediss:// and the ssl_* query parameters (redis/connection.py parse_url, URL_QUERY_ARGUMENT_PARSERS);
# kombu 5.5.4 (Celery's broker) turns the same ssl_* parameters into its ssl options (kombu/utils/url.py
# parse_url) and, without them, would default a rediss:// URL to CERT_NONE. Hostname checked too (verify-full).
REDIS_TLS_QUERY = f"ssl_cert_reqs=required&ssl_ca_certs={CA_FILE}&ssl_check_hostname=true"
REDIS_URL = f"rediss://:$(REDIS_PASSWORD)@{tls.DOCS_REDIS}:{REDIS_PORT}/1?{REDIS_TLS_QUERY}"  # cache and sessions
BROKER_URL = f"rediss://:$(REDIS_PASSWORD)@{tls.DOCS_REDIS}:{REDIS_PORT}/0?{REDIS_TLS_QUERY}"  # Celery
REDIS_TLS_DIR = "/etc/redis-tls"  # the Redis pod's certificate, key and CA (the tenant's TLS Secret)

# Where the pods of Docs find their Secret files (components/secret_files.py).
SECRET_VOLUME = "secrets"
SECRET_DIR = "/run/secrets/docs"


def backend_files(ctx: RenderContext, db: Database) -> list[SecretFile]:
    """The backend's, worker's and Job's secrets, as files. Each is a ``SecretFileValue`` in
    src/backend/impress/settings.py (suitenumerique/docs v5.4.1): django-lasuite 0.0.26 (the version Docs'
    pyproject.toml pins), lasuite/configuration/values.py, reads the file named by ``<variable>_FILE`` before the
    variable itself (and drops one trailing newline)."""
    docs = ctx.components.docs
    assert docs.s3 is not None and ctx.suite.spec.identity.oidc is not None
    oidc_ref = ctx.suite.spec.identity.oidc.client_secret_ref
    return [
        SecretFile("DJANGO_SECRET_KEY", SECRET, "DJANGO_SECRET_KEY"),  # SECRET_KEY, prefix DJANGO_
        SecretFile("DB_PASSWORD", db.password_secret, db.password_key),
        SecretFile("AWS_S3_ACCESS_KEY_ID", docs.s3.credentials_secret_ref, "AWS_S3_ACCESS_KEY_ID"),
        SecretFile("AWS_S3_SECRET_ACCESS_KEY", docs.s3.credentials_secret_ref, "AWS_S3_SECRET_ACCESS_KEY"),
        SecretFile("OIDC_RP_CLIENT_SECRET", oidc_ref.name, oidc_ref.key),
        *y_provider_files(),
    ]


def y_provider_files() -> list[SecretFile]:
    """The keys the backend and the y-provider share. The y-provider reads ``COLLABORATION_SERVER_SECRET_FILE``
    and ``Y_PROVIDER_API_KEY_FILE`` before the variables (src/frontend/servers/y-provider/src/env.ts, v5.4.1)."""
    return [SecretFile(name, SECRET, name) for name in ("Y_PROVIDER_API_KEY", "COLLABORATION_SERVER_SECRET")]


def secret_env(ctx: RenderContext, db: Database) -> list[dict[str, Any]]:
    """The backend's, worker's and Job's environment for secrets: ``*_FILE`` paths, and the Redis password.

    The Redis password stays an environment variable: the cache's and the broker's URLs are plain
    ``values.Value`` settings (CACHES LOCATION from REDIS_URL, CELERY_BROKER_URL; settings.py v5.4.1), with no
    ``_FILE`` form, and they must carry the password. Kubernetes expands $(REDIS_PASSWORD) in them, so it is
    defined first."""
    return [
        *file_env(backend_files(ctx, db), SECRET_DIR),
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "REDIS_PASSWORD"}}},
        {"name": "REDIS_URL", "value": REDIS_URL},
        {"name": "DJANGO_CELERY_BROKER_URL", "value": BROKER_URL},
    ]


def y_provider_env() -> list[dict[str, Any]]:
    # yarn looks for its config in HOME; the root filesystem is read-only
    return [*file_env(y_provider_files(), SECRET_DIR), {"name": "HOME", "value": "/tmp"}]


# Docs' Redis: the password file (components/secret_files.py) and the scripts that read it.
REDIS_SECRET_DIR = "/run/secrets/redis"
REDIS_FILES = [SecretFile("REDIS_PASSWORD", SECRET, "REDIS_PASSWORD")]


def redis_tls_args(tls_dir: str = REDIS_TLS_DIR, port: int = REDIS_PORT) -> list[str]:
    """redis-server's TLS arguments (redis.conf of redis 8.2, "TLS/SSL"; the official image is built with
    BUILD_TLS=yes: docker-library/redis Dockerfile.template): TLS on the port, plaintext off (port 0), no client
    certificates (clients authenticate with the password)."""
    files = tls.SERVER_FILES
    return ["--port", "0", "--tls-port", str(port), "--tls-cert-file", f"{tls_dir}/{files['cert']}",
            "--tls-key-file", f"{tls_dir}/{files['key']}", "--tls-ca-cert-file", f"{tls_dir}/{files['ca']}",
            "--tls-auth-clients", "no", "--tls-protocols", "TLSv1.2 TLSv1.3"]


def redis_server_script(port: int, maxmemory: str, tls_args: list[str]) -> str:
    """redis-server with its password as a config line on standard input ("-" as the first argument: redis
    src/server.c main(), config_from_stdin, since 6.2; still there in 7.4, the newest tag this machine could read,
    and run by tests/components/test_redis_secret.py against a real redis-server), TLS only (``tls_args``, which
    carry the port). The generated password is alphanumeric (secretgen.py), so it needs no quoting in redis.conf.
    No RDB, no AOF: a cache and a broker."""
    return (
        f"exec redis-server - {shlex.join(tls_args)} --save '' --appendonly no --maxmemory {maxmemory} "
        f"--maxmemory-policy volatile-lru <<EOF\nrequirepass $(cat {REDIS_SECRET_DIR}/REDIS_PASSWORD)\nEOF\n"
    )


def redis_probe_script(port: int, tls_dir: str = REDIS_TLS_DIR) -> str:
    """redis-cli's PING over TLS, verifying the server as a client would (localhost is one of the certificate's
    names), with the password in REDISCLI_AUTH of that one process (redis src/redis-cli.c, REDIS_CLI_AUTH_ENV),
    never in the container's environment."""
    return (f'REDISCLI_AUTH="$(cat {REDIS_SECRET_DIR}/REDIS_PASSWORD)" redis-cli --tls --cacert {tls_dir}/{tls.CA_CERT}'
            f" -h localhost -p {port} ping | grep -q PONG")
