"""The contract between the Docs renderer and the pinned images (issue 14, pin review): La Suite Docs v5.4.1
(released 2026-07-09; the pin was v3.8.2). Each fact was read in suitenumerique/docs at tag v5.4.1, file named
beside it; docs/components/docs.md records the pin and what was checked."""

from __future__ import annotations

from sovereign_suite.api.models import Docs
from sovereign_suite.components import docs as docs_mod

from .test_docs import config, container, env_of, get, render_fr

TAG = "v5.4.1"

# src/backend/impress/settings.py (v5.4.1): the environment names the renderer sets, as the settings read them.
# django-configurations adds the DJANGO_ prefix where a Value names no environ_prefix: ALLOWED_HOSTS (class
# Production), CSRF_TRUSTED_ORIGINS (a ListValue since v4, a fixed list in Base), CELERY_BROKER_URL, SECRET_KEY.
SETTINGS_ENV = {
    "DJANGO_ALLOWED_HOSTS", "DJANGO_CSRF_TRUSTED_ORIGINS", "DJANGO_CELERY_BROKER_URL", "DJANGO_SECRET_KEY",
    "DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD",  # DATABASE_URL (new, default None) is not set
    "AWS_S3_ENDPOINT_URL", "AWS_STORAGE_BUCKET_NAME", "AWS_S3_ACCESS_KEY_ID", "AWS_S3_SECRET_ACCESS_KEY",
    "MEDIA_BASE_URL", "OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET", "OIDC_RP_SIGN_ALGO", "OIDC_RP_SCOPES",
    "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT",
    "OIDC_OP_LOGOUT_ENDPOINT", "LOGIN_REDIRECT_URL", "LOGIN_REDIRECT_URL_FAILURE", "LOGOUT_REDIRECT_URL",
    "Y_PROVIDER_API_BASE_URL", "Y_PROVIDER_API_KEY", "COLLABORATION_API_URL", "COLLABORATION_WS_URL",
    "COLLABORATION_SERVER_SECRET", "REDIS_URL",
}
# A SecretFileValue setting (django-lasuite 0.0.26, lasuite/configuration/values.py, the version Docs' pyproject.toml
# pins) reads <NAME>_FILE first: the renderer sets that form for the secrets (components/docs/secret_env.py).
SECRET_FILE_SETTINGS = {"DJANGO_SECRET_KEY", "DB_PASSWORD", "AWS_S3_ACCESS_KEY_ID", "AWS_S3_SECRET_ACCESS_KEY",
                        "OIDC_RP_CLIENT_SECRET", "Y_PROVIDER_API_KEY", "COLLABORATION_SERVER_SECRET"}
# src/frontend/servers/y-provider/src/env.ts (v5.4.1); COLLABORATION_SERVER_SECRET and Y_PROVIDER_API_KEY are read
# from the file their *_FILE variable names, when it is set
Y_PROVIDER_FILES = {"COLLABORATION_SERVER_SECRET", "Y_PROVIDER_API_KEY"}
Y_PROVIDER_ENV = {"COLLABORATION_SERVER_ORIGIN", "COLLABORATION_SERVER_SECRET", "Y_PROVIDER_API_KEY",
                  "COLLABORATION_BACKEND_BASE_URL"}


def test_the_pins_are_the_reviewed_release():
    docs = Docs()
    assert {docs.backend_image, docs.frontend_image, docs.y_provider_image} == {
        f"docker.io/lasuite/impress-{part}:{TAG}" for part in ("backend", "frontend", "y-provider")}


def test_backend_settings_and_port():
    objs = render_fr()
    backend = container(get(objs, "Deployment", "docs-backend"))
    names = set(config(objs)) | set(env_of(backend))
    assert SETTINGS_ENV <= names | {n.removesuffix("_FILE") for n in names}, sorted(SETTINGS_ENV - names)
    assert {f"{n}_FILE" for n in SECRET_FILE_SETTINGS} <= names and not SECRET_FILE_SETTINGS & names
    # Dockerfile (v5.4.1), backend-production: CMD uvicorn --host=0.0.0.0 ... impress.asgi:application, no --port:
    # uvicorn's default 8000 (gunicorn's config bound 8000 up to v3.8.2). The chart's Service targets 8000 too
    # (src/helm/impress/values.yaml, backend.service.targetPort).
    assert "command" not in backend and "args" not in backend
    assert backend["ports"][0]["containerPort"] == 8000 == docs_mod.BACKEND_PORT
    # settings.py (v5.4.1) Production: SECURE_REDIRECT_EXEMPT ^__lbheartbeat__, ^__heartbeat__ (dockerflow).
    assert backend["livenessProbe"]["httpGet"]["path"] == "/__lbheartbeat__"
    assert backend["readinessProbe"]["httpGet"]["path"] == "/__heartbeat__"


def test_y_provider_routes_port_and_environment():
    objs = render_fr()
    data = config(objs)
    # src/frontend/servers/y-provider/src/routes.ts (v5.4.1): /collaboration/ws/, /collaboration/api/...,
    # /api/convert/ (the backend appends CONVERSION_API_ENDPOINT "convert" to Y_PROVIDER_API_BASE_URL);
    # env.ts: PORT 4444 by default; appServer.ts: GET /ping.
    assert data["Y_PROVIDER_API_BASE_URL"].endswith(":4444/api/")
    assert data["COLLABORATION_API_URL"].endswith(":4444/collaboration/api/")
    assert data["COLLABORATION_WS_URL"].endswith("/collaboration/ws/")
    y = container(get(objs, "Deployment", "docs-y-provider"))
    assert y["ports"][0]["containerPort"] == 4444 and y["livenessProbe"]["httpGet"]["path"] == "/ping"
    names = set(data) | set(env_of(y))
    assert Y_PROVIDER_ENV - Y_PROVIDER_FILES <= names and {f"{n}_FILE" for n in Y_PROVIDER_FILES} <= names


def test_frontend_and_media_proxy():
    objs = render_fr()
    # src/frontend/apps/impress/conf/default.conf (v5.4.1): listen 8080 (nginx-unprivileged:alpine3.23); the
    # media proxy replaces /etc/nginx/conf.d, where the Dockerfile copies that file.
    assert container(get(objs, "Deployment", "docs-frontend"))["ports"][0]["containerPort"] == 8080
    media = get(objs, "Deployment", "docs-media")
    mounts = {m["mountPath"] for m in container(media)["volumeMounts"]}
    assert "/etc/nginx/conf.d" in mounts
    # src/backend/core/api/viewsets.py (v5.4.1): action url_path "media-auth"; settings.py:
    # MEDIA_AUTH_ORIGINAL_URL_HEADER defaults to HTTP_X_ORIGINAL_URL (the header X-Original-URL).
    conf = get(objs, "ConfigMap", "docs-media-nginx")["data"]
    text = "\n".join(conf.values())
    assert "/api/v1.0/documents/media-auth/" in text and "proxy_set_header X-Original-URL" in text
