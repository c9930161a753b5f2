"""La Suite Docs (impress) per tenant, on ``docs.<tenant domain>``.

Objects (all in the tenant namespace):
- ``docs-backend``: Django (gunicorn, port 8000) Deployment + Service (80 -> 8000);
- ``docs-worker``: the Celery worker (same image) Deployment;
- ``docs-migrate-<hash of the backend image and the database>``: the Job running ``manage.py migrate``; annotated
  ``sovereignsuite.io/wait-for: complete`` and named in the backend's and worker's
  ``sovereignsuite.io/after-job`` annotation, so the operator rolls them out only once it has completed;
- ``docs-frontend``: the static Next.js export served by nginx (port 8080) + Service (80 -> 8080);
- ``docs-y-provider``: the collaboration server (hocuspocus, port 4444) + Service (4444 -> 4444);
- ``docs-media``: a small nginx (the frontend image) that serves ``/media/``: it asks the backend whether the
  user may read the file (``/api/v1.0/documents/media-auth/``) and fetches it from S3 with the signed headers
  the backend returns. This is what LSD does with ingress-nginx's ``auth-url``; here it needs no controller
  feature, only a standard Ingress path;
- ``docs-redis``: Redis without persistence (cache, sessions, Celery broker), password from ``docs-secrets``;
- ``docs-config``: the non-secret settings (environment) shared by backend, worker, Job and y-provider;
- ``docs``: one Ingress for every public path; ``docs-admin``: Django's admin site (``/admin``, ``/static``), only
  with ``docs.admin.enabled`` and only for ``docs.admin.sourceRanges`` (``admin_annotations``); the database
  objects come from the postgres renderer.

Secrets: ``docs-secrets`` (generated: DJANGO_SECRET_KEY, Y_PROVIDER_API_KEY, COLLABORATION_SERVER_SECRET,
REDIS_PASSWORD); the S3 credentials (``s3.credentialsSecretRef``) and the OIDC client secret
(``identity.oidc.clientSecretRef``) are read from Secrets of the same names in the tenant namespace, where the
operator copies them from the suite's namespace. The pods read them as files of a projected volume at
``/run/secrets/docs`` (``*_FILE`` variables, ``secret_env.py``); only the Redis password is an environment variable.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...api.models import OIDC, Docs, Resources
from ...api.validation import InputError, Problem
from ...api.derived_names import tls_secret_name
from ...api.ingress_annotations import ALLOWLIST_KEYS, WHITELIST_SOURCE_RANGE
from ..ingress import DOCS_BODY_SIZE, DOCS_TIMEOUT_SECONDS, annotations as ingress_annotations
from ..base import (
    image_version,
    RenderContext,
    SecretKey,
    SecretSpec,
    container_security,
    merge_extra_config,
    pod_security,
    render_template,
    render_text,
    short_hash,
)
from .. import tls
from ..postgres import Database, render_postgres
from ..secret_files import mount, projected_volume
from .secret_env import (
    BROKER_URL, CA_DIR, CA_FILE, REDIS_FILES, REDIS_PORT, REDIS_SECRET_DIR, REDIS_TLS_DIR, REDIS_URL, SECRET,
    SECRET_DIR, SECRET_VOLUME, backend_files, redis_probe_script, redis_server_script, redis_tls_args, secret_env,
    y_provider_env, y_provider_files,
)

HERE = str(Path(__file__).parent)
COMPONENT = "docs"
CONFIG = "docs-config"
MEDIA_CONFIG = "docs-media-nginx"

BACKEND_PORT = 8000
FRONTEND_PORT = 8080  # the frontend image's nginx (nginx-unprivileged) listens on 8080
Y_PROVIDER_PORT = 4444  # y-provider's default PORT
MEDIA_PORT = 8080
# CloudNativePG's CA, for a database of mode cloudnative-pg (the tenant's own CA is at secret_env.CA_DIR).
DATABASE_CA_DIR = "/etc/docs-database-tls"

# Keys of the generated Secret docs-secrets.
GENERATED = {
    "DJANGO_SECRET_KEY": SecretKey("random", 64),
    "Y_PROVIDER_API_KEY": SecretKey("random", 48),
    "COLLABORATION_SERVER_SECRET": SecretKey("random", 48),
    "REDIS_PASSWORD": SecretKey("random", 32),
}

# Keycloak's endpoint paths under the issuer. An assumption: the OIDC model has the issuer only, and impress
# needs each endpoint (it does not read the discovery document). See docs/components/docs.md.
OIDC_PATHS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "/protocol/openid-connect/auth",
    "OIDC_OP_TOKEN_ENDPOINT": "/protocol/openid-connect/token",
    "OIDC_OP_USER_ENDPOINT": "/protocol/openid-connect/userinfo",
    "OIDC_OP_JWKS_ENDPOINT": "/protocol/openid-connect/certs",
    "OIDC_OP_LOGOUT_ENDPOINT": "/protocol/openid-connect/logout",
}

# Fixed sizes of the small parts (docs.resources sizes the backend, the worker and the y-provider).
SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}
REDIS_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}
REDIS_MAXMEMORY = "384mb"  # below the 512Mi limit: Redis evicts (volatile-lru) instead of being OOM-killed
# The Job's template is immutable once created, so its resources do not follow docs.resources.
MIGRATE_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # also a valid ConfigMap key
WORKER_CONCURRENCY = 2
JOB_TEMPLATE = "secret-files"  # the secrets as files (issue 22, item 17)  # Celery defaults to the node's CPU count; the worker's limit is what it may use


def migrate_job_name(docs: Docs, db: Database) -> str:
    """The Job's identity is everything that changes what it migrates: the backend image (new migrations) and
    the database it migrates (a switch from embedded to CloudNativePG or external Postgres must migrate the new,
    empty database). A Job's template cannot change, so a new identity is a new Job; the old one is pruned."""
    # JOB_TEMPLATE changes whenever the Job's pod template changes shape (a Job's template is immutable: the
    # operator must create a new one instead of patching the old)
    return f"docs-migrate-{short_hash(JOB_TEMPLATE, docs.backend_image, db.host, str(db.port), db.name, db.user)}"


def _labels(ctx: RenderContext, part: str, image: str | None = None, component_label: str | None = None) -> dict[str, str]:
    """Labels of part ``docs-<part>``; ``component_label`` overrides app.kubernetes.io/component (Redis is
    labelled ``redis`` so that the suite renderer applies it with the databases)."""
    labels = ctx.labels(COMPONENT, f"docs-{part}", image_version(image) if image else None)
    if component_label:
        labels["app.kubernetes.io/component"] = component_label
    return labels


def _selector(ctx: RenderContext, part: str) -> dict[str, str]:
    return ctx.selector(COMPONENT, f"docs-{part}")


def _resources(res: Resources) -> dict[str, dict[str, str]]:
    """Requests and limits as strings; a missing side takes the other one's values."""
    requests = {k: str(v) for k, v in sorted(res.requests.items())}
    limits = {k: str(v) for k, v in sorted(res.limits.items())}
    return {"requests": requests or dict(limits), "limits": limits or dict(requests)}


def oidc_endpoints(oidc: OIDC) -> dict[str, str]:
    """The provider's endpoints, derived from the issuer with Keycloak's paths."""
    return {name: oidc.endpoint(path) for name, path in OIDC_PATHS.items()}


def settings(ctx: RenderContext, db: Database) -> dict[str, str]:
    """The non-secret settings the operator owns (the ConfigMap docs-config before extraConfig)."""
    docs = ctx.components.docs
    s3 = docs.s3
    oidc = ctx.suite.spec.identity.oidc
    assert s3 is not None and oidc is not None  # check_suite requires both when docs is enabled
    host = ctx.host("docs")
    origin = f"https://{host}"
    out = {
        "DJANGO_CONFIGURATION": "Production",
        "DJANGO_SETTINGS_MODULE": "impress.settings",
        "DJANGO_ALLOWED_HOSTS": host,
        "DJANGO_CSRF_TRUSTED_ORIGINS": origin,
        # Database (the password comes from a Secret)
        "DB_HOST": db.host,
        "DB_PORT": str(db.port),
        "DB_NAME": db.name,
        "DB_USER": db.user,
        # libpq reads PGSSLMODE and PGSSLROOTCERT (postgresql.org/docs/17/libpq-envars.html): impress has no setting
        # of its own for TLS (its DATABASES has no OPTIONS: src/backend/impress/settings.py, v5.4.1)
        "PGSSLMODE": db.ssl_mode,
        # Media on S3 (credentials from a Secret)
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "MEDIA_BASE_URL": origin,
        # OIDC (the client secret comes from a Secret)
        "OIDC_RP_CLIENT_ID": oidc.client_id,
        "OIDC_RP_SIGN_ALGO": "RS256",
        "OIDC_RP_SCOPES": " ".join(oidc.scopes),
        **oidc_endpoints(oidc),
        "LOGIN_REDIRECT_URL": origin,
        "LOGIN_REDIRECT_URL_FAILURE": origin,
        "LOGOUT_REDIRECT_URL": origin,
        # Collaboration: the backend calls the y-provider inside the namespace; browsers use the public URLs.
        "Y_PROVIDER_API_BASE_URL": f"http://docs-y-provider:{Y_PROVIDER_PORT}/api/",
        "COLLABORATION_API_URL": f"http://docs-y-provider:{Y_PROVIDER_PORT}/collaboration/api/",
        "COLLABORATION_WS_URL": f"wss://{host}/collaboration/ws/",
        # y-provider settings: the origin browsers open the websocket from, and the backend it asks about
        # document access (the public URL: the backend redirects plain HTTP to HTTPS in Production).
        "COLLABORATION_SERVER_ORIGIN": origin,
        "COLLABORATION_BACKEND_BASE_URL": origin,
    }
    if s3.region:
        out["AWS_S3_REGION_NAME"] = s3.region
    ca_file = database_ca_file(db)
    if ca_file:
        out["PGSSLROOTCERT"] = ca_file  # the tenant's CA (embedded) or CloudNativePG's, mounted (ca_mounts)
    elif db.ssl_mode == "verify-full":
        # Verify the server against the image's CA bundle (libpq >= 16; psycopg's binary wheel bundles it).
        # verify-ca would need a CA file, which nothing mounts: libpq refuses "system" with verify-ca.
        out["PGSSLROOTCERT"] = "system"
    return out


def _extra_path(ctx: RenderContext, key: str) -> str:
    """Where the user wrote an extraConfig key: the tenant's override, or spec.components."""
    override = ctx.tenant.components.get("docs") or {}
    tenant_extra = override.get("extraConfig") or override.get("extra_config") or {}
    if key in tenant_extra:
        index = ctx.suite.spec.tenants.index(ctx.tenant)
        return f"spec.tenants[{index}].components.docs.extraConfig"
    return "spec.components.docs.extraConfig"


def config_data(ctx: RenderContext, db: Database) -> dict[str, str]:
    """docs-config: the owned settings and extraConfig. A key the operator sets, in the ConfigMap or from a
    Secret, is an error (an env entry from a Secret would silently win over the ConfigMap)."""
    owned = settings(ctx, db)
    # the *_FILE variables, and the plain names they replace: a plain one in extraConfig would be ignored
    taken = {**owned, **{e["name"]: "" for e in secret_env(ctx, db) + y_provider_env()},
             **{f.name: "" for f in backend_files(ctx, db)}}
    extra = dict(ctx.components.docs.extra_config)
    problems: list[Problem] = []
    by_path: dict[str, dict[str, str]] = {}
    for key, value in extra.items():
        path = _extra_path(ctx, key)
        if not ENV_NAME_RE.match(key):
            problems.append(Problem(f"{path}.{key}", "is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"))
        by_path.setdefault(path, {})[key] = value
    for path, part in sorted(by_path.items()):
        try:
            merge_extra_config(taken, part, path)
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(problems)
    return {**owned, **extra}


def _docs_path(ctx: RenderContext, field: str) -> str:
    """Where the user wrote docs.<field>: the tenant's override, or spec.components."""
    if field in (ctx.tenant.components.get("docs") or {}):
        return f"spec.tenants[{ctx.suite.spec.tenants.index(ctx.tenant)}].components.docs.{field}"
    return f"spec.components.docs.{field}"


def admin_annotations(ctx: RenderContext, public: dict[str, str]) -> dict[str, str] | None:
    """The annotations of the ``docs-admin`` Ingress, or None when the admin site is not routed.

    The allow-list is ingress-nginx's ``whitelist-source-range`` annotation: a comma-separated list of client
    CIDRs, any other client gets 403 (kubernetes.github.io/ingress-nginx/user-guide/nginx-configuration/
    annotations/#whitelist-source-range). An annotation applies to every path of its Ingress, hence a second
    Ingress for the admin paths. It replaces any source-range key of docs.ingressAnnotations there: the admin
    site's allow-list is docs.admin.sourceRanges. The controller sees the client's address only if the load
    balancer keeps it (externalTrafficPolicy Local, or the PROXY protocol): docs/components/docs.md.

    With ``ingressController: other`` the operator knows no annotation that the controller would enforce, and an
    allow-list nobody enforces would publish the admin site: refused, naming the field."""
    admin = ctx.components.docs.admin
    if not admin.enabled:
        return None
    if ctx.cloud.spec.ingress_controller != "ingress-nginx":
        raise InputError([Problem(
            _docs_path(ctx, "admin"),
            f"the admin site needs an allow-list the ingress controller enforces; NationalCloud {ctx.cloud.name} has "
            "ingressController other, for which the operator writes none (route it yourself, or leave it off)")])
    kept = {k: v for k, v in public.items() if k.lower() not in ALLOWLIST_KEYS}
    return {**kept, WHITELIST_SOURCE_RANGE: ",".join(admin.source_ranges)}


def _data_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def media_nginx_conf(ctx: RenderContext) -> str:
    s3 = ctx.components.docs.s3
    assert s3 is not None
    endpoint = urlsplit(s3.endpoint)
    return render_text(
        HERE,
        "media-nginx.conf.j2",
        port=MEDIA_PORT,
        host=ctx.host("docs"),
        backend="http://docs-backend:80",
        # the endpoint is <scheme>://<host>[:<port>] only (api/fieldtypes.py): no path, no credentials
        s3_url=f"{endpoint.scheme}://{endpoint.netloc}/{s3.bucket}/",
        s3_host=endpoint.netloc,
        s3_https=endpoint.scheme == "https",
    )


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    docs = ctx.components.docs
    pg_objects, _, db = render_postgres(ctx, COMPONENT, docs.postgres)
    data = config_data(ctx, db)
    media_conf = media_nginx_conf(ctx)
    host = ctx.host("docs")
    job = migrate_job_name(docs, db)
    common = dict(
        ctx=ctx,
        docs=docs,
        pod_security=pod_security(),
        affinity=ctx.region_affinity(),
        config_name=CONFIG,
        config_hash=_data_hash(data),
        job_name=job,
    )
    objects: list[dict[str, Any]] = list(pg_objects)
    objects += render_template(
        HERE, "config.yaml.j2", **common,
        labels=_labels(ctx, "config"), data=data,
        media_config_name=MEDIA_CONFIG, media_labels=_labels(ctx, "media"), media_conf=media_conf,
    )
    backend_common = dict(
        **common,
        ca_mounts=ca_mounts(db),
        env=secret_env(ctx, db),
        secret_volume=projected_volume(SECRET_VOLUME, backend_files(ctx, db)),
        secret_mount=mount(SECRET_VOLUME, SECRET_DIR),
        resources=_resources(docs.resources),
        security=container_security(read_only_root=True),
    )
    objects += render_template(
        HERE, "backend.yaml.j2", **backend_common,
        labels=_labels(ctx, "backend", docs.backend_image), selector=_selector(ctx, "backend"),
        port=BACKEND_PORT,
    )
    objects += render_template(
        HERE, "worker.yaml.j2", **backend_common,
        labels=_labels(ctx, "worker", docs.backend_image), selector=_selector(ctx, "worker"),
        concurrency=WORKER_CONCURRENCY,
    )
    objects += render_template(
        HERE, "migrate.yaml.j2", **{**backend_common, "resources": MIGRATE_RESOURCES},
        labels=_labels(ctx, "migrate", docs.backend_image),
    )
    objects += render_template(
        HERE, "frontend.yaml.j2", **common,
        labels=_labels(ctx, "frontend", docs.frontend_image), selector=_selector(ctx, "frontend"),
        port=FRONTEND_PORT, resources=SMALL, security=container_security(read_only_root=True),
    )
    objects += render_template(
        HERE, "y-provider.yaml.j2", **common,
        labels=_labels(ctx, "y-provider", docs.y_provider_image), selector=_selector(ctx, "y-provider"),
        port=Y_PROVIDER_PORT, env=y_provider_env(), resources=_resources(docs.resources),
        secret_volume=projected_volume(SECRET_VOLUME, y_provider_files()),
        secret_mount=mount(SECRET_VOLUME, SECRET_DIR),
        security=container_security(read_only_root=True),
    )
    objects += render_template(
        HERE, "media.yaml.j2", **common,
        labels=_labels(ctx, "media", docs.frontend_image), selector=_selector(ctx, "media"),
        port=MEDIA_PORT, resources=SMALL, security=container_security(read_only_root=True),
        media_config_name=MEDIA_CONFIG, media_hash=_data_hash(media_conf),
    )
    objects += render_template(
        HERE, "redis.yaml.j2", **common,
        labels=_labels(ctx, "redis", docs.redis_image, component_label="redis"), selector=_selector(ctx, "redis"),
        port=REDIS_PORT, resources=REDIS_RESOURCES,
        server_script=redis_server_script(REDIS_PORT, REDIS_MAXMEMORY, redis_tls_args()),
        probe_script=redis_probe_script(REDIS_PORT),
        secret_volume=projected_volume(SECRET_VOLUME, REDIS_FILES), secret_mount=mount(SECRET_VOLUME, REDIS_SECRET_DIR),
        tls_dir=REDIS_TLS_DIR, tls_volume=tls.server_volume("tls", tls.DOCS_REDIS),
        # The image's redis user (uid 999, gid 1000).
        redis_pod_security=pod_security(user=999, fs_group=1000),
        security=container_security(read_only_root=True),
    )
    public = ingress_annotations(ctx, COMPONENT, DOCS_BODY_SIZE, DOCS_TIMEOUT_SECONDS)
    objects += render_template(
        HERE, "ingress.yaml.j2", **common,
        labels=_labels(ctx, "ingress"), host=host, tls_secret=tls_secret_name(host),
        backend_port=80, frontend_port=80, y_provider_port=Y_PROVIDER_PORT, media_port=80,
        annotations=public, admin_labels=_labels(ctx, "admin"), admin_annotations=admin_annotations(ctx, public),
    )
    return objects


def database_ca_file(db: Database) -> str | None:
    """Where the backend, worker and Job find the CA certificate of their database: the tenant's (embedded), or
    CloudNativePG's mounted at DATABASE_CA_DIR; None for an external server (the system's roots)."""
    if db.ca_secret is None:
        return None
    return CA_FILE if db.ca_secret == tls.SECRET else f"{DATABASE_CA_DIR}/{tls.CA_CERT}"


def ca_mounts(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """(mount path, volume) of the CA certificates the backend, worker and Job verify their servers with: the
    tenant's (Redis, and the embedded database), and CloudNativePG's for a CNPG database."""
    mounts = [(CA_DIR, tls.ca_volume("tls-ca"))]
    if db.ca_secret not in (None, tls.SECRET):
        mounts.append((DATABASE_CA_DIR, tls.ca_volume("database-ca", db.ca_secret, db.ca_key)))
    return mounts


def secrets(ctx: RenderContext) -> list[SecretSpec]:
    """docs-secrets, and the database's generated Secrets (embedded and cloudnative-pg modes)."""
    _, pg_secrets, _ = render_postgres(ctx, COMPONENT, ctx.components.docs.postgres)
    own = SecretSpec(
        name=SECRET,
        namespace=ctx.namespace,
        component=COMPONENT,
        keys=dict(GENERATED),
        labels=_labels(ctx, "secrets"),
    )
    return [own, *pg_secrets]
