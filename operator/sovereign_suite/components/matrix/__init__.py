"""Matrix: the Synapse homeserver and Element Web of one tenant.

Objects: ConfigMap/Deployment/Service/Ingress ``synapse`` (homeserver.yaml, one main process, Recreate),
PVC ``synapse-media``, the database (``components.postgres``, ``matrix-postgres``), and
ConfigMap/Deployment/Service/Ingress ``element-web`` which also serves the tenant domain's
``/.well-known/matrix/{server,client}`` (Ingress ``matrix-well-known``). With ``spec.monitoring.serviceMonitors``
and the Prometheus Operator API served: a ServiceMonitor ``synapse`` for ``/_synapse/metrics`` on port 9001, and
the embedded database's exporter (see components.postgres).

Secrets: ``synapse-keys`` (signing key, macaroon, registration shared secret, form secret), mounted as files
and named by Synapse's ``*_path`` options; the database password is written at runtime by an init container
into a separate config file (see templates/write-database-config.py.j2). Nothing secret is in a ConfigMap.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...api.validation import InputError
from ..ingress import SYNAPSE_TIMEOUT_SECONDS, annotations as ingress_annotations
from ..base import (
    RenderContext,
    SecretKey,
    SecretSpec,
    container_security,
    dump_yaml,
    image_version,
    merge_extra_config,
    pod_security,
    render_template,
    render_text,
)
from .. import tls
from ..postgres import Database, render_postgres
from . import workers as synapse_workers
from .workloads import render_router, render_workers

HERE = str(Path(__file__).parent)
COMPONENT = "matrix"
HTTP_PORT = 8008
METRICS_PORT = 9001
ELEMENT_PORT = 8080
SYNAPSE_UID = 991  # the uid the Synapse image's start script would switch to
ELEMENT_UID = 101  # "nginx" in the Element Web image (USER nginx: not numeric, so it is set here)
KEYS_SECRET = "synapse-keys"
WELL_KNOWN_DIR = "/srv/well-known/matrix"
INGRESS_PATHS = ("/_matrix", "/_synapse/client")  # not /_synapse/admin: the admin API stays in-cluster
SMALL_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
ROUTER_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
# nginxinc/docker-nginx-unprivileged README: uid 101, listens without privileges, pid and temp files in /tmp
ROUTER_UID = 101
ELEMENT_RESOURCES = {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}

# Keys of homeserver.yaml that extraConfig may not set, besides those the template renders: the in-line
# forms of the secrets (they would conflict with, or silently win over, the *_path options) and `databases`.
RESERVED = ("signing_key", "macaroon_secret_key", "registration_shared_secret", "form_secret", "databases")


@dataclass(frozen=True)
class SynapsePaths:
    """Where Synapse's files are inside its container. The config test renders with temporary paths."""

    config: str = "/synapse/config"  # ConfigMap synapse: homeserver.yaml, write-database-config.py
    keys: str = "/synapse/keys"  # Secret synapse-keys
    runtime: str = "/synapse/runtime"  # emptyDir: database.yaml with the password, from the init container
    media: str = "/synapse/media"  # PVC synapse-media
    # the database's password Secret, in the init container only: a file, not an environment variable
    database_secret: str = "/synapse/database-secret"
    database_ca: str = "/synapse/database-ca"  # the CA certificate the database's certificate is verified with
    redis_tls: str = "/synapse/redis-tls"  # workers: the client certificate for Redis and the CA (tenant-tls)

    @property
    def homeserver(self) -> str:
        return f"{self.config}/homeserver.yaml"

    @property
    def database(self) -> str:
        return f"{self.runtime}/database.yaml"

    @property
    def script(self) -> str:
        return f"{self.config}/write-database-config.py"

    @property
    def database_password(self) -> str:
        return f"{self.database_secret}/password"

    @property
    def worker(self) -> str:
        """A worker's own file, written by its init container (templates/write-worker-config.py.j2)."""
        return f"{self.runtime}/worker.yaml"

    @property
    def worker_script(self) -> str:
        return f"{self.config}/write-worker-config.py"

    def worker_type_file(self, type_name: str) -> str:
        return f"{self.config}/worker-{type_name}.yaml"


PATHS = SynapsePaths()


# Synapse's `--no-secrets-in-config` (in-line secrets refused) exists since v1.126.0 (element-hq/synapse#18092,
# synapse/config/_base.py; absent from v1.99.0's): an older Synapse exits on it ("unrecognized arguments", exit 2;
# release 2024.01's v1.99.0 crash-looped so on the real node, tests/cluster/test_real_node_release_upgrade.py).
NO_SECRETS_FLAG = "--no-secrets-in-config"
NO_SECRETS_SINCE = (1, 126, 0)
_VERSION_TAG = re.compile(r"^v?([0-9]+)\.([0-9]+)\.([0-9]+)")


def refuses_inline_secrets(image: str | None) -> bool:
    """Whether the Synapse of ``image`` takes ``--no-secrets-in-config``: yes unless its tag says a version older
    than v1.126.0 (a tag that is not a version, or a digest alone, keeps the flag: the safe side)."""
    found = _VERSION_TAG.match(image_version(image) or "") if image else None
    return found is None or tuple(int(x) for x in found.groups()) >= NO_SECRETS_SINCE


def synapse_args(paths: SynapsePaths = PATHS, image: str | None = None) -> list[str]:
    """Synapse's arguments: homeserver.yaml, then the database file (merged over it); in-line secrets refused
    where ``image``'s Synapse can refuse them (refuses_inline_secrets)."""
    flag = [NO_SECRETS_FLAG] if refuses_inline_secrets(image) else []
    return ["--config-path", paths.homeserver, "--config-path", paths.database, *flag]


def worker_args(paths: SynapsePaths = PATHS, image: str | None = None) -> list[str]:
    """A worker's arguments: the shared files, then its own (docs/workers.md, "Worker configuration")."""
    flag = [NO_SECRETS_FLAG] if refuses_inline_secrets(image) else []
    return ["--config-path", paths.homeserver, "--config-path", paths.database, "--config-path", paths.worker, *flag]


def database(ctx: RenderContext) -> Database:
    return render_postgres(ctx, COMPONENT, ctx.components.matrix.postgres)[2]


def federation_whitelist(ctx: RenderContext) -> list[str]:
    """The other tenants' domains and federation.extraDomains, sorted; [] (no federation) when disabled."""
    federation = ctx.components.matrix.federation
    if not federation.enabled:
        return []
    return sorted({p.domain for p in ctx.peers} | set(federation.extra_domains))


def _defaults(ctx: RenderContext) -> dict[str, Any]:
    """Settings the operator chooses but extraConfig may replace."""
    return {
        # No notary: keys are fetched from each (whitelisted) server itself, never through matrix.org.
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_client_minimum_tls_version": "1.2",
        "enable_registration": False,
        "web_client_location": f"https://{ctx.host('chat')}/",
    }


def _extra_path(ctx: RenderContext) -> tuple[str, set[str]]:
    """Field path of the tenant's own matrix.extraConfig override and the keys it sets."""
    override = ctx.tenant.components.get(COMPONENT, {})
    extra = (override.get("extraConfig") or override.get("extra_config")) if isinstance(override, dict) else None
    index = ctx.suite.spec.tenants.index(ctx.tenant)
    return f"spec.tenants[{index}].components.{COMPONENT}.extraConfig", set(extra or {})


def homeserver_config(ctx: RenderContext, paths: SynapsePaths = PATHS) -> dict[str, Any]:
    """homeserver.yaml as a dict: the owned keys, extraConfig, then the defaults extraConfig did not replace."""
    matrix = ctx.components.matrix
    owned = render_template(
        HERE,
        "homeserver.yaml.j2",
        domain=ctx.domain,
        public_baseurl=f"https://{ctx.host('matrix')}/",
        http_port=HTTP_PORT,
        metrics_port=METRICS_PORT,
        http_resources=["client", "federation"] if matrix.federation.enabled else ["client"],
        db=database(ctx),
        paths=paths,
        max_upload_size=matrix.max_upload_size,
        federation_whitelist=federation_whitelist(ctx),
        encryption_by_default=matrix.encryption_by_default,
    )[0]
    shared = synapse_workers.shared_config(ctx, paths.keys, paths.redis_tls)
    if shared:  # workers: the main process's replication listener and the keys every process shares
        owned["listeners"].append(synapse_workers.main_listener())
        owned.update(shared)
    guarded = {**owned, **{k: None for k in RESERVED}}
    tenant_path, tenant_keys = _extra_path(ctx)
    extra = matrix.extra_config
    problems = []
    for path, part in (
        (f"spec.components.{COMPONENT}.extraConfig", {k: v for k, v in extra.items() if k not in tenant_keys}),
        (tenant_path, {k: v for k, v in extra.items() if k in tenant_keys}),
    ):
        try:
            merge_extra_config(guarded, part, path)
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(problems)
    config = {**_defaults(ctx), **extra, **owned}
    retry = synapse_workers.federation_defaults(ctx)
    if retry and isinstance(config.get("federation", {}), dict):  # extraConfig's own keys win, one by one
        config["federation"] = {**retry, **config.get("federation", {})}
    return config


def homeserver_yaml(ctx: RenderContext, paths: SynapsePaths = PATHS) -> str:
    return dump_yaml(homeserver_config(ctx, paths))


def write_database_script() -> str:
    return render_text(HERE, "write-database-config.py.j2")


def write_worker_script() -> str:
    return render_text(HERE, "write-worker-config.py.j2")


def worker_files(ctx: RenderContext) -> dict[str, str]:
    """The ConfigMap synapse-workers: each active worker type's file and the init script ({} for the monolith)."""
    active = synapse_workers.active(ctx.components.matrix.workers)
    if not active:
        return {}
    files = {f"worker-{kind.name}.yaml": dump_yaml(synapse_workers.worker_config(kind, HTTP_PORT, METRICS_PORT))
             for kind, _ in active}
    return {**files, "write-worker-config.py": write_worker_script()}


def element_config(ctx: RenderContext) -> dict[str, Any]:
    """Element Web's config.json."""
    matrix = ctx.components.matrix
    config: dict[str, Any] = {
        "default_server_config": {
            "m.homeserver": {"base_url": f"https://{ctx.host('matrix')}", "server_name": ctx.domain}
        },
        "brand": "Sovereign Suite",
        "disable_guests": True,
        "disable_custom_urls": True,
        "default_country_code": ctx.tenant.country,
        "default_federate": matrix.federation.enabled,
        "room_directory": {"servers": [ctx.domain]},
        # No third-party integration manager (its default is scalar.vector.im); no bug reports leave the suite.
        "integrations_ui_url": "",
        "integrations_rest_url": "",
        "integrations_widgets_urls": [],
        "show_labs_settings": False,
    }
    if ctx.components.jitsi.enabled:
        config["jitsi"] = {"preferred_domain": ctx.host("meet")}
    else:
        # Without a Jitsi of the tenant, Element's call buttons would open conferences on its default public
        # Jitsi (element-web docs/config.md, `jitsi.preferredDomain`): hide VoIP instead.
        config["setting_defaults"] = {"UIFeature.voip": False}
    return config


def well_known(ctx: RenderContext) -> dict[str, dict[str, Any]]:
    """The /.well-known/matrix files; no ``server`` file when federation is disabled."""
    files: dict[str, dict[str, Any]] = {"client": {"m.homeserver": {"base_url": f"https://{ctx.host('matrix')}"}}}
    if ctx.components.matrix.encryption_by_default == "off":
        # Element encrypts new private rooms and DMs on its own unless the well-known says otherwise
        # (element-hq/element-web docs/e2ee.md, "Disabling encryption by default"): it follows the homeserver's choice.
        # With invite or all, Element's own default already agrees.
        files["client"]["io.element.e2ee"] = {"default": False}
    if ctx.components.matrix.federation.enabled:
        files["server"] = {"m.server": f"{ctx.host('matrix')}:443"}
    return files


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    matrix = ctx.components.matrix
    pg_objects, _, db = render_postgres(ctx, COMPONENT, matrix.postgres)
    affinity = ctx.region_affinity()
    homeserver = homeserver_config(ctx)
    config_data = {"homeserver.yaml": dump_yaml(homeserver), "write-database-config.py": write_database_script()}
    # workers only: a monolith's pods carry no writer set (its pod template stays as it was before the label)
    writers = {synapse_workers.WRITERS_LABEL: synapse_workers.writers_digest(homeserver)} if \
        synapse_workers.active(ctx.components.matrix.workers) else {}
    worker_data = worker_files(ctx)
    active = synapse_workers.active(matrix.workers)
    # the CA certificate a database of the tenant is verified with (sslrootcert in homeserver.yaml)
    database_ca_volume = tls.ca_volume("database-ca", db.ca_secret, db.ca_key) if db.ca_secret else None
    # workers: every Synapse process presents the tenant CA's client certificate to Redis (TLS only)
    redis_tls_volume = tls.client_volume("redis-tls", tls.SYNAPSE_REDIS_CLIENT) if active else None
    synapse = render_template(
        HERE,
        "synapse.yaml.j2",
        ctx=ctx,
        matrix=matrix,
        db=db,
        paths=PATHS,
        labels=ctx.labels(COMPONENT, "synapse", image_version(matrix.image)),
        pod_labels={**ctx.labels(COMPONENT, "synapse", image_version(matrix.image)), **writers},
        selector=ctx.selector(COMPONENT, "synapse"),
        config_data=config_data,
        replication_port=synapse_workers.REPLICATION_PORT if active else None,
        media_on_worker=any(kind.key == "media_repository" for kind, _ in active),
        ingress_backend="synapse-router" if active else "synapse",
        init_command=["python3", PATHS.script, PATHS.homeserver, PATHS.database, PATHS.database_password],
        command=["python3", "-m", "synapse.app.homeserver", *synapse_args(image=matrix.image)],
        http_port=HTTP_PORT,
        metrics_port=METRICS_PORT,
        matrix_host=ctx.host("matrix"),
        ingress_paths=INGRESS_PATHS,
        ingress_annotations=ingress_annotations(ctx, COMPONENT, matrix.max_upload_size, SYNAPSE_TIMEOUT_SECONDS),
        affinity=affinity,
        pod_security=pod_security(SYNAPSE_UID),
        container_security=container_security(read_only_root=True),
        resources=matrix.resources.wire(),
        small_resources=SMALL_RESOURCES,
        database_ca_volume=database_ca_volume,
        redis_tls_volume=redis_tls_volume,
    )
    # every process restarts when the shared file or a worker file changes (docs/workers.md: adding or removing
    # event persisters or federation senders needs every process restarted)
    workers = render_workers(
        ctx, COMPONENT, image_version(matrix.image),
        here=HERE, uid=SYNAPSE_UID, worker_data=worker_data, db=db, paths=PATHS, affinity=affinity,
        config_hash=hashlib.sha256(json.dumps([config_data, worker_data], sort_keys=True).encode()).hexdigest(),
        writers=writers,
        keys_secret=KEYS_SECRET,
        init_command=["python3", PATHS.script, PATHS.homeserver, PATHS.database, PATHS.database_password],
        command=["python3", "-m", "synapse.app.generic_worker", *worker_args(image=matrix.image)],
        http_port=HTTP_PORT, metrics_port=METRICS_PORT,
        resources=matrix.resources.wire(), small_resources=SMALL_RESOURCES,
        # the workers connect to the same database as main, verified with the same CA (sslrootcert)
        database_ca_volume=database_ca_volume,
        redis_tls_volume=redis_tls_volume,
    )
    if active:
        workers += render_router(
            ctx, COMPONENT, here=HERE, http_port=HTTP_PORT, affinity=affinity, max_body=matrix.max_upload_size.lower(),
            timeout=SYNAPSE_TIMEOUT_SECONDS, resources=ROUTER_RESOURCES, uid=ROUTER_UID,
        )
    files = well_known(ctx)
    element = render_template(
        HERE,
        "element-web.yaml.j2",
        ctx=ctx,
        matrix=matrix,
        ingress_annotations=ingress_annotations(ctx, COMPONENT),  # the user's only: static files, small requests
        labels=ctx.labels(COMPONENT, "element-web", image_version(matrix.element_image)),
        selector=ctx.selector(COMPONENT, "element-web"),
        config_data={
            "config.json": _json(element_config(ctx)),
            "default.conf": render_text(
                HERE, "element-nginx.conf.j2", port=ELEMENT_PORT, well_known_dir=WELL_KNOWN_DIR
            ),
            **{f"matrix-{name}": _json(body) for name, body in files.items()},
        },
        well_known_items=[{"key": f"matrix-{name}", "path": name} for name in sorted(files)],
        well_known_dir=WELL_KNOWN_DIR,
        port=ELEMENT_PORT,
        chat_host=ctx.host("chat"),
        affinity=affinity,
        pod_security=pod_security(ELEMENT_UID),
        container_security=container_security(read_only_root=True),
        resources=ELEMENT_RESOURCES,
    )
    return pg_objects + synapse + workers + element


def secrets(ctx: RenderContext) -> list[SecretSpec]:
    keys = SecretSpec(
        name=KEYS_SECRET,
        namespace=ctx.namespace,
        component=COMPONENT,
        keys={
            "signing.key": SecretKey("synapse-signing-key"),
            "macaroon_secret_key": SecretKey("random", 64),
            "registration_shared_secret": SecretKey("random", 64),
            "form_secret": SecretKey("random", 64),
            # workers only (added to the stored Secret when they are turned on): replication and Redis
            **({"worker_replication_secret": SecretKey("random", 64), "redis_password": SecretKey("random", 64)}
               if ctx.components.matrix.workers.enabled() else {}),
        },
        labels=ctx.labels(COMPONENT, "synapse"),
    )
    return [keys, *render_postgres(ctx, COMPONENT, ctx.components.matrix.postgres)[1]]
