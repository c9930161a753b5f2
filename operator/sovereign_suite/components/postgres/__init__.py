"""The database of a component (Matrix, Docs): a shared helper, not a component of its own.

``render_postgres(ctx, component, pg)`` returns the objects to apply, the Secrets to generate and how to
connect (``Database``). Three modes (``Postgres.mode``):

- ``embedded`` (default): a single-instance StatefulSet ``<component>-postgres`` (official postgres image,
  C collation), a Service of the same name, a generated Secret ``<component>-postgres`` (key ``password``) and a
  ConfigMap ``<component>-postgres-hba`` (its pg_hba.conf). Labelled ``app.kubernetes.io/component: postgres`` so
  the suite renderer applies it in the data phase. It serves TLS only: the certificate of the tenant's CA
  (components/tls.py, Secret ``tenant-tls``), and pg_hba.conf has ``hostssl`` lines only, so a plaintext TCP
  connection finds no entry and is refused. Clients verify it: ``sslmode=verify-full`` with the tenant's CA.
- ``cloudnative-pg``: a CloudNativePG ``Cluster`` ``<component>-postgres``; clients use the ``-rw`` Service and
  the Secret ``<component>-postgres-app`` that CNPG generates, and verify CNPG's own server CA (Secret
  ``<component>-postgres-ca``, key ``ca.crt``) with ``sslmode=verify-full``; a ``hostnossl ... reject`` rule
  refuses plaintext.
- ``external``: nothing is rendered; the connection comes from the spec.

With ``spec.monitoring.serviceMonitors`` and the Prometheus Operator API served, the embedded StatefulSet gets a
``postgres_exporter`` sidecar (port ``metrics``, 9187) and a PodMonitor ``<component>-postgres``. CloudNativePG
brings its own exporter (see its ``monitoring`` settings); an external server is monitored by its owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...api.image_pins import pinned
from ...api.models import Postgres
from ...api.validation import InputError, Problem
from .. import tls
from ..base import (
    BARMAN_API,
    RenderContext,
    SecretKey,
    SecretSpec,
    container_security,
    image_version,
    pod_security,
    render_template,
)

HERE = str(Path(__file__).parent)
PART = "postgres"
PORT = 5432
POSTGRES_UID = 999  # the "postgres" user of the official Debian-based image
PASSWORD_KEY = "password"
# The CNPG operator connects to every instance pod on these (its instance manager's status port, and Postgres):
# cloudnative-pg docs/src/networking.md and docs/src/security.md.
CNPG_OPERATOR_PORTS = (8000, PORT)
PASSWORD_LENGTH = 32
# Synapse refuses a database whose LC_COLLATE/LC_CTYPE is not C; C is also the safe, stable choice for Docs.
INITDB_ARGS = "--lc-collate=C --lc-ctype=C --encoding=UTF8"
DATA_DIR = "/var/lib/postgresql/data"
PGDATA = f"{DATA_DIR}/pgdata"  # a subdirectory: a fresh volume's root may hold lost+found, which initdb refuses
# The password reaches both containers as a file of the generated Secret, not as an environment variable (which
# `kubectl describe`, /proc/<pid>/environ and crash dumps show): the image's entrypoint reads POSTGRES_PASSWORD_FILE
# (docker-library/postgres 17/bookworm/docker-entrypoint.sh, `file_env 'POSTGRES_PASSWORD'`, at 3506774b, the last
# commit building 17.6), postgres_exporter reads DATA_SOURCE_PASS_FILE (prometheus-community/postgres_exporter
# v0.18.1, cmd/postgres_exporter/datasource.go, getDataSources).
PASSWORD_DIR = "/etc/postgres-password"
PASSWORD_FILE = f"{PASSWORD_DIR}/{PASSWORD_KEY}"
# TLS of the embedded server: the tenant CA's certificate for <component>-postgres (components/tls.py), mounted
# root-owned with mode 0440 — PostgreSQL refuses a key file it does not own unless root owns it with at most 0640
# (postgres src/backend/libpq/be-secure-common.c, check_ssl_key_file_permissions, REL_17_6). The settings are
# postgres' own (postgresql.org/docs/17/runtime-config-connection.html#RUNTIME-CONFIG-CONNECTION-SSL), given as
# `-c` arguments: the image's entrypoint passes arguments starting with '-' to postgres, its temporary
# initialisation server included (docker-library/postgres 17/bookworm/docker-entrypoint.sh, at 3506774b).
TLS_DIR = "/etc/postgres-tls"
HBA_DIR = "/etc/postgres-hba"
HBA_FILE = f"{HBA_DIR}/pg_hba.conf"
# The first matching line decides (postgresql.org/docs/17/auth-pg-hba-conf.html): the Unix socket, reachable only
# inside the container (its emptyDir), keeps the image's initdb default `trust` (the entrypoint initialises the
# database through it); TCP is `hostssl` only, so a connection without TLS matches no line and is refused.
HBA_LINES = ("local all all trust", "hostssl all all all scram-sha-256")
SSL_MODE = "verify-full"  # what the suite's clients use with the embedded and CloudNativePG servers
# The metrics sidecar of the embedded mode (only with spec.monitoring.serviceMonitors and the Prometheus Operator).
EXPORTER_IMAGE = pinned("postgres-exporter")
EXPORTER_PORT = 9187
EXPORTER_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


# The Secrets CloudNativePG creates for a Cluster <name>: <name>-<suffix> (its documentation, "Secrets").
CNPG_SECRET_SUFFIXES = ("app", "superuser", "ca", "server", "replication")
# CloudNativePG's generated server CA, "used as sslrootcert in clients' connection strings", and its server
# certificate's names include <cluster>-rw (cloudnative-pg v1.27.1 docs/src/certificates.md "Server CA secret";
# api/v1/cluster_funcs.go GetClusterAltDNSNames). Its pg_hba.conf puts the Cluster's rules before its default
# `host all all all <method>` (docs/src/postgresql_conf.md, "The pg_hba section"): this one refuses plaintext.
CNPG_CA_KEY = "ca.crt"
CNPG_HBA = ("hostnossl all all all reject",)


@dataclass(frozen=True)
class Database:
    """How a component connects to its database. The password is never here: it is in the Secret
    ``password_secret`` under ``password_key`` (for an env ``valueFrom.secretKeyRef`` or a mounted file)."""

    host: str
    port: int
    name: str
    user: str
    password_secret: str
    password_key: str
    ssl_mode: str
    # the Secret and key of the CA certificate the client verifies the server with (None: the system's roots)
    ca_secret: str | None = None
    ca_key: str = tls.CA_CERT


def object_name(component: str) -> str:
    return f"{component}-{PART}"


def image_tag(image: str) -> str | None:
    """The tag of an image reference (``registry/repo:tag[@digest]``) as written (labels use image_version)."""
    ref = image.split("@", 1)[0]
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return None
    return tag


def labels(ctx: RenderContext, component: str, version: str | None = None) -> dict[str, str]:
    """Labels of a component's database. ``app.kubernetes.io/name`` is ``<component>-postgres`` so that two
    components' databases in one namespace never share a selector; ``app.kubernetes.io/component`` is
    ``postgres``, the mark of the data phase."""
    out = ctx.labels(component, object_name(component), version)
    out["app.kubernetes.io/component"] = PART
    return out


def _field(component: str, name: str) -> str:
    return f"spec.components.{component}.postgres.{name}"


def _check_ssl_mode(component: str, pg: Postgres) -> None:
    if pg.ssl_mode not in (None, SSL_MODE):
        raise InputError([Problem(_field(component, "sslMode"), f"{pg.ssl_mode!r}: a database of mode {pg.mode} "
                                  f"accepts TLS only and the suite's clients verify it ({SSL_MODE}); leave it unset")])


def render_postgres(
    ctx: RenderContext, component: str, pg: Postgres
) -> tuple[list[dict[str, Any]], list[SecretSpec], Database]:
    name = pg.database or component
    user = pg.user or component
    if pg.mode == "external":
        assert pg.host and pg.password_secret_ref  # the model's validator guarantees both
        ref = pg.password_secret_ref
        return [], [], Database(pg.host, pg.port, name, user, ref.name, ref.key, pg.ssl_mode or "prefer")
    if pg.mode == "cloudnative-pg":
        return _cloudnative_pg(ctx, component, pg, name, user)
    return _embedded(ctx, component, pg, name, user)


def _embedded(
    ctx: RenderContext, component: str, pg: Postgres, name: str, user: str
) -> tuple[list[dict[str, Any]], list[SecretSpec], Database]:
    _check_ssl_mode(component, pg)
    if pg.port != PORT:
        raise InputError([Problem(_field(component, "port"), f"the embedded database listens on {PORT}")])
    obj_name = object_name(component)
    objs = render_template(
        HERE,
        "embedded.yaml.j2",
        ctx=ctx,
        obj_name=obj_name,
        labels=labels(ctx, component, image_version(pg.image)),
        pvc_labels=labels(ctx, component),
        selector=ctx.selector(component, obj_name),
        pg=pg,
        db_name=name,
        db_user=user,
        port=PORT,
        ready_command=["pg_isready", "-h", "127.0.0.1", "-p", str(PORT), "-U", user, "-d", name],
        initdb_args=INITDB_ARGS,
        data_dir=DATA_DIR,
        pgdata=PGDATA,
        password_key=PASSWORD_KEY,
        password_dir=PASSWORD_DIR,
        password_file=PASSWORD_FILE,
        tls_dir=TLS_DIR,
        tls_volume=tls.server_volume("tls", obj_name),
        tls_ca_volume=tls.ca_volume("tls-ca"),
        server_args=server_args(),
        hba_name=f"{obj_name}-hba",
        hba_dir=HBA_DIR,
        hba_conf=hba_conf(),
        exporter=_exporter(ctx, name),
        resources=pg.resources.wire(),
        affinity=ctx.region_affinity(),
        pod_security=pod_security(POSTGRES_UID),
        # read-only root works: the image writes only PGDATA, the socket directory and /tmp (all volumes)
        container_security=container_security(read_only_root=True),
    )
    secret = SecretSpec(
        name=obj_name,
        namespace=ctx.namespace,
        component=component,
        keys={PASSWORD_KEY: SecretKey("random", PASSWORD_LENGTH)},
        labels=labels(ctx, component),
    )
    db = Database(obj_name, PORT, name, user, obj_name, PASSWORD_KEY, SSL_MODE, tls.SECRET, tls.CA_CERT)
    return objs, [secret], db


def server_args(tls_dir: str = TLS_DIR, hba_file: str = HBA_FILE) -> list[str]:
    """postgres' arguments: TLS on with the mounted certificate, TLS 1.2 at least, the operator's pg_hba.conf."""
    files = tls.SERVER_FILES
    settings = {"ssl": "on", "ssl_cert_file": f"{tls_dir}/{files['cert']}", "ssl_key_file": f"{tls_dir}/{files['key']}",
                "ssl_min_protocol_version": "TLSv1.2", "hba_file": hba_file}
    return [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]


def hba_conf() -> str:
    return "".join(line + "\n" for line in HBA_LINES)


def _exporter(ctx: RenderContext, db_name: str) -> dict[str, Any] | None:
    if not ctx.service_monitors:
        return None
    # lib/pq (postgres_exporter's driver) reads sslmode and sslrootcert from the URI; "localhost" is one of the
    # certificate's names (components/tls.py hosts)
    ca = f"{TLS_DIR}-ca/{tls.CA_CERT}"
    return {"image": EXPORTER_IMAGE, "port": EXPORTER_PORT, "resources": EXPORTER_RESOURCES, "ca_dir": f"{TLS_DIR}-ca",
            "uri": f"localhost:{PORT}/{quote(db_name, safe='')}?sslmode={SSL_MODE}&sslrootcert={quote(ca, safe='/')}"}


def _cloudnative_pg(
    ctx: RenderContext, component: str, pg: Postgres, name: str, user: str
) -> tuple[list[dict[str, Any]], list[SecretSpec], Database]:
    _check_ssl_mode(component, pg)
    if pg.port != PORT:
        raise InputError([Problem(_field(component, "port"), f"CloudNativePG listens on {PORT}")])
    obj_name = object_name(component)
    objs = render_template(
        HERE,
        "cloudnative-pg.yaml.j2",
        ctx=ctx,
        obj_name=obj_name,
        labels=labels(ctx, component),
        pg=pg,
        db_name=name,
        db_user=user,
        resources=pg.resources.wire(),
        node_affinity=ctx.region_affinity()["nodeAffinity"],
        operator=ctx.cloud.spec.cloud_native_pg,
        ports=CNPG_OPERATOR_PORTS,
        pg_hba=list(CNPG_HBA),
    )
    if ctx.backups.enabled and ctx.backups.include.databases:
        objs = with_barman_backups(ctx, component, obj_name, objs)
    # CNPG creates <cluster>-app (keys username, password, host, uri, ...) for the owner and the -rw Service
    # that always points at the primary.
    db = Database(f"{obj_name}-rw", PORT, name, user, f"{obj_name}-app", PASSWORD_KEY, SSL_MODE, f"{obj_name}-ca",
                  CNPG_CA_KEY)
    return objs, [], db


# ---- backups of a cloudnative-pg database: the Barman Cloud plugin ---------------------------------------------
# cloudnative-pg/plugin-barman-cloud web/docs/usage.md and intro.md (v0.x, 2025): an ObjectStore
# (barmancloud.cnpg.io/v1) per object store; the Cluster archives its WAL there through spec.plugins
# (isWALArchiver: true, parameters.barmanObjectName); base backups are Backup/ScheduledBackup objects with
# method: plugin and pluginConfiguration.name. Requires CloudNativePG 1.26 or later (1.27+ recommended; the in-tree
# spec.backup.barmanObjectStore is deprecated since 1.26) and cert-manager for the plugin's TLS. The operator
# renders these only when the cluster serves barmancloud.cnpg.io/v1 (the plugin is installed); otherwise the
# suite is refused with the reason, never silently left without database backups.
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


def with_barman_backups(ctx: RenderContext, component: str, obj_name: str,
                        objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    storage = ctx.object_storage
    assert storage is not None  # validation: enabled backups have a declared object storage
    if not ctx.serves(BARMAN_API):
        raise InputError([Problem(
            "spec.backups.include.databases",
            f"{component}'s database is cloudnative-pg, and the cluster does not serve {BARMAN_API}: install "
            "CloudNativePG's Barman Cloud plugin (CloudNativePG 1.26 or later, cert-manager), or set "
            "include.databases: false")])
    from ..backup import prefix  # the tenant's place in the bucket, shared with the backup job

    store = f"{obj_name}-backup"
    creds = storage.credentials_secret_ref
    for obj in objs:
        if obj["kind"] == "Cluster":
            obj["spec"]["plugins"] = [{"name": BARMAN_PLUGIN, "isWALArchiver": True,
                                       "parameters": {"barmanObjectName": store}}]
    object_store = {
        "apiVersion": BARMAN_API,
        "kind": "ObjectStore",
        "metadata": {"name": store, "namespace": ctx.namespace, "labels": labels(ctx, component)},
        "spec": {
            # barman-cloud's retention: a recovery window ("<n>d"): base backups and WAL needed to restore any
            # point of the last n days are kept
            "retentionPolicy": f"{ctx.backups.retention_days}d",
            "configuration": {
                "destinationPath": f"s3://{storage.bucket}/{prefix(ctx)}cnpg/",
                "endpointURL": storage.endpoint,
                "s3Credentials": {
                    "accessKeyId": {"name": creds, "key": "AWS_ACCESS_KEY_ID"},
                    "secretAccessKey": {"name": creds, "key": "AWS_SECRET_ACCESS_KEY"},
                },
                "wal": {"compression": "gzip"},
                "data": {"compression": "gzip"},
            },
        },
    }
    scheduled = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": {"name": obj_name, "namespace": ctx.namespace, "labels": labels(ctx, component)},
        "spec": {
            # CloudNativePG's schedule has a leading seconds field (robfig/cron with seconds)
            "schedule": f"0 {ctx.backups.schedule}",
            "cluster": {"name": obj_name},
            "method": "plugin",
            "pluginConfiguration": {"name": BARMAN_PLUGIN},
            "backupOwnerReference": "self",
        },
    }
    return [object_store, *objs, scheduled]
