"""La Suite Docs renderer: objects, wiring, migrations Job, Ingress, database modes, extraConfig (no cluster)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from ..helpers import (
    K8S_SCHEMA_VERSION, example_dict, file_secret, load_example, pod_specs, render_example, suite_with,
)
from sovereign_suite.api.validation import InputError, parse_suite
from sovereign_suite.components import docs as docs_mod
from sovereign_suite.components.base import RenderContext, build_contexts, render_text
from sovereign_suite.render import phase_of

SECRET_ENV = {
    "DJANGO_SECRET_KEY",
    "DB_PASSWORD",
    "AWS_S3_ACCESS_KEY_ID",
    "AWS_S3_SECRET_ACCESS_KEY",
    "OIDC_RP_CLIENT_SECRET",
    "Y_PROVIDER_API_KEY",
    "COLLABORATION_SERVER_SECRET",
    "REDIS_PASSWORD",
}


# ---- helpers -------------------------------------------------------------------------------------------

def contexts(suite_name: str = "two-countries", patch: dict[str, Any] | None = None) -> list[RenderContext]:
    _, clouds = load_example(suite_name)
    suite = suite_with(suite_name, patch) if patch else load_example(suite_name)[0]
    return build_contexts(suite, clouds)


def render_fr(patch: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return docs_mod.render(contexts("two-countries", patch)[0])


def by_kind_name(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def get(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = by_kind_name(objs).get((kind, name))
    assert found is not None, f"{kind}/{name} not rendered; got {sorted(by_kind_name(objs))}"
    return found


def job(objs: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = [o for o in objs if o["kind"] == "Job"]
    assert len(jobs) == 1
    return jobs[0]


def container(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def config(objs: list[dict[str, Any]]) -> dict[str, str]:
    return get(objs, "ConfigMap", "docs-config")["data"]


def validate(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        if obj["kind"] == "Cluster":  # CloudNativePG: not in the Kubernetes schemas
            continue
        try:
            kubernetes_validate.validate(obj, K8S_SCHEMA_VERSION, strict=True)
        except Exception as exc:  # noqa: BLE001 - name the object in the failure
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")


def docs_objects(result) -> list[dict[str, Any]]:
    return [o for (_, comp), objs in result.by_component.items() if comp == "docs" for o in objs]


# ---- whole examples ------------------------------------------------------------------------------------

@pytest.mark.parametrize("example", ["two-countries", "four-countries"])
def test_examples_render_and_validate(example: str) -> None:
    result = render_example(example)
    suite, _ = load_example(example)
    for tenant in suite.spec.tenants:
        cc = tenant.country.lower()
        objs = result.by_component[(cc, "docs")]
        names = {(o["kind"], o["metadata"]["name"]) for o in objs}
        for want in [
            ("Deployment", "docs-backend"), ("Deployment", "docs-worker"), ("Deployment", "docs-frontend"),
            ("Deployment", "docs-y-provider"), ("Deployment", "docs-media"), ("Deployment", "docs-redis"),
            ("Service", "docs-backend"), ("Service", "docs-frontend"), ("Service", "docs-y-provider"),
            ("Service", "docs-media"), ("Service", "docs-redis"), ("ConfigMap", "docs-config"),
            ("StatefulSet", "docs-postgres"), ("Ingress", "docs"),
        ]:
            assert want in names, (cc, want)
        assert all(o["metadata"]["namespace"] == f"{suite.name}-{cc}" for o in objs)
        validate(objs)
    assert not [o for o in result.manifests if o["kind"] == "Secret"], "render output must not carry Secrets"


def test_deterministic() -> None:
    ctx = contexts("four-countries")[2]
    first = json.dumps(docs_mod.render(ctx), sort_keys=True)
    second = json.dumps(docs_mod.render(ctx), sort_keys=True)
    assert first == second
    assert docs_mod.secrets(ctx) == docs_mod.secrets(ctx)


# ---- migrations Job ------------------------------------------------------------------------------------

def test_migrate_job_spec_and_dependencies() -> None:
    objs = render_fr()
    j = job(objs)
    name = j["metadata"]["name"]
    assert name.startswith("docs-migrate-") and len(name) == len("docs-migrate-") + 8
    assert j["metadata"]["annotations"]["sovereignsuite.io/wait-for"] == "complete"
    assert "ttlSecondsAfterFinished" not in j["spec"]
    assert j["spec"]["backoffLimit"] >= 1
    pod = j["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert c["image"] == "docker.io/lasuite/impress-backend:v5.4.1"
    assert c["envFrom"] == [{"configMapRef": {"name": "docs-config"}}]
    assert file_secret(pod, c, "DB_PASSWORD_FILE") == ("docs-postgres", "password")
    for dep in ("docs-backend", "docs-worker"):
        assert get(objs, "Deployment", dep)["metadata"]["annotations"]["sovereignsuite.io/after-job"] == name
    assert phase_of(j) == "jobs"


def test_migrate_job_name_follows_the_image_and_the_database_only() -> None:
    base = job(render_fr())["metadata"]["name"]
    new_image = job(render_fr({"components": {"docs": {"backendImage": "docker.io/lasuite/impress-backend:v3.9.0"}}}))
    assert new_image["metadata"]["name"] != base
    assert new_image["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v3.9.0")
    unrelated = {
        "components": {
            "docs": {
                "backendReplicas": 5,
                "workerReplicas": 3,
                "frontendImage": "docker.io/lasuite/impress-frontend:v3.9.0",
                "extraConfig": {"LOGGING_LEVEL_LOGGERS_APP": "DEBUG"},
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
            }
        }
    }
    same = job(render_fr(unrelated))
    assert same["metadata"]["name"] == base
    # another database must be migrated: a switch of mode, host or database name is a new Job
    external = {"components": {"docs": {"postgres": {"mode": "external", "host": "pg.example.eu",
                                                      "passwordSecretRef": {"name": "pg", "key": "password"}}}}}
    renamed = {"components": {"docs": {"postgres": {"database": "docs2"}}}}
    names = {base, job(render_fr(external))["metadata"]["name"], job(render_fr(renamed))["metadata"]["name"]}
    assert len(names) == 3
    # The Job's template is immutable: what changed above must not change it either.
    assert same["spec"] == job(render_fr())["spec"]


# ---- Ingress and Services ------------------------------------------------------------------------------

def test_ingress_paths() -> None:
    objs = render_fr()
    ing = get(objs, "Ingress", "docs")
    host = "docs.fr.workplace.example.eu"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"hosts": [host], "secretName": f"{host}-tls"}]
    # only the controller's body-size and timeout annotations (test_ingress_limits.py)
    assert all(k.startswith("nginx.ingress.kubernetes.io/proxy-") for k in ing["metadata"]["annotations"])
    [rule] = ing["spec"]["rules"]
    assert rule["host"] == host
    routes = {
        p["path"]: (p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["number"])
        for p in rule["http"]["paths"]
    }
    assert routes == {
        "/": ("Prefix", "docs-frontend", 80),
        "/api": ("Prefix", "docs-backend", 80),
        "/collaboration/ws/": ("Prefix", "docs-y-provider", 4444),
        "/collaboration/api/": ("Prefix", "docs-y-provider", 4444),
        "/media/": ("Prefix", "docs-media", 80),
    }
    # Each routed Service port exists and reaches a container port of the pods it selects.
    for _, svc_name, port in routes.values():
        svc = get(objs, "Service", svc_name)
        [sp] = [p for p in svc["spec"]["ports"] if p["port"] == port]
        dep = get(objs, "Deployment", svc_name)
        assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        ports = {p["name"]: p["containerPort"] for p in container(dep)["ports"]}
        assert sp["targetPort"] in ports
    expected_container_ports = {"docs-backend": 8000, "docs-frontend": 8080, "docs-y-provider": 4444, "docs-media": 8080}
    for dep_name, port in expected_container_ports.items():
        assert container(get(objs, "Deployment", dep_name))["ports"][0]["containerPort"] == port


def test_ingress_class_and_host_follow_cloud_and_tenant() -> None:
    ctx = contexts("four-countries")[3]  # SE
    ing = get(docs_mod.render(ctx), "Ingress", "docs")
    assert ing["spec"]["rules"][0]["host"] == "docs.se.workplace.example.eu"
    assert ing["spec"]["ingressClassName"] == ctx.cloud.spec.ingress_class


def test_probes() -> None:
    objs = render_fr()
    backend = container(get(objs, "Deployment", "docs-backend"))
    assert backend["livenessProbe"]["httpGet"]["path"] == "/__lbheartbeat__"
    assert backend["readinessProbe"]["httpGet"]["path"] == "/__heartbeat__"
    yprov = container(get(objs, "Deployment", "docs-y-provider"))
    assert yprov["livenessProbe"]["httpGet"]["path"] == "/ping"
    worker = container(get(objs, "Deployment", "docs-worker"))
    assert worker["args"][:4] == ["celery", "-A", "impress.celery_app", "worker"]
    cmd = " ".join(worker["livenessProbe"]["exec"]["command"])
    assert "celery -A impress.celery_app inspect ping" in cmd
    assert worker["livenessProbe"]["periodSeconds"] >= 120  # expensive: infrequent
    assert "readinessProbe" not in worker


# ---- settings and secrets --------------------------------------------------------------------------------

def test_settings_in_configmap_and_secrets_by_reference() -> None:
    objs = render_fr()
    data = config(objs)
    host = "docs.fr.workplace.example.eu"
    issuer = "https://id.workplace.example.eu/realms/suite"
    assert data["DJANGO_CONFIGURATION"] == "Production"
    assert data["DJANGO_ALLOWED_HOSTS"] == host
    assert data["DJANGO_CSRF_TRUSTED_ORIGINS"] == f"https://{host}"
    assert data["DB_HOST"] == "docs-postgres" and data["DB_PORT"] == "5432" and data["DB_NAME"] == "docs"
    assert data["AWS_S3_ENDPOINT_URL"] == "https://s3.workplace.example.eu"
    assert data["AWS_STORAGE_BUCKET_NAME"] == "docs-media"
    assert data["OIDC_RP_CLIENT_ID"] == "sovereign-suite"
    assert data["OIDC_RP_SCOPES"] == "openid email profile"
    assert data["OIDC_OP_AUTHORIZATION_ENDPOINT"] == f"{issuer}/protocol/openid-connect/auth"
    assert data["OIDC_OP_TOKEN_ENDPOINT"] == f"{issuer}/protocol/openid-connect/token"
    assert data["OIDC_OP_USER_ENDPOINT"] == f"{issuer}/protocol/openid-connect/userinfo"
    assert data["OIDC_OP_JWKS_ENDPOINT"] == f"{issuer}/protocol/openid-connect/certs"
    assert data["OIDC_OP_LOGOUT_ENDPOINT"] == f"{issuer}/protocol/openid-connect/logout"
    assert data["LOGIN_REDIRECT_URL"] == f"https://{host}"
    assert data["COLLABORATION_WS_URL"] == f"wss://{host}/collaboration/ws/"
    assert data["Y_PROVIDER_API_BASE_URL"] == "http://docs-y-provider:4444/api/"
    # No secret in the ConfigMap: no secret variable, no reference to one, no Redis URL with its password.
    assert not SECRET_ENV & set(data)
    assert not {"REDIS_URL", "DJANGO_CELERY_BROKER_URL"} & set(data)
    assert not any("$(" in v for v in data.values())

    # Files wherever Docs reads <NAME>_FILE (django-lasuite 0.0.26 SecretFileValue, settings.py v5.4.1; the
    # y-provider's env.ts v5.4.1), the Redis password only in the environment (the URLs embed it).
    expected_files = {
        "DJANGO_SECRET_KEY": ("docs-secrets", "DJANGO_SECRET_KEY"),
        "DB_PASSWORD": ("docs-postgres", "password"),
        "AWS_S3_ACCESS_KEY_ID": ("docs-s3", "AWS_S3_ACCESS_KEY_ID"),
        "AWS_S3_SECRET_ACCESS_KEY": ("docs-s3", "AWS_S3_SECRET_ACCESS_KEY"),
        "OIDC_RP_CLIENT_SECRET": ("oidc-client", "client-secret"),
        "Y_PROVIDER_API_KEY": ("docs-secrets", "Y_PROVIDER_API_KEY"),
        "COLLABORATION_SERVER_SECRET": ("docs-secrets", "COLLABORATION_SERVER_SECRET"),
    }
    for dep in ("docs-backend", "docs-worker"):
        pod = pod_specs(get(objs, "Deployment", dep))[0]
        c = container(get(objs, "Deployment", dep))
        assert c["envFrom"] == [{"configMapRef": {"name": "docs-config"}}]
        env = env_of(c)
        for name, ref in expected_files.items():
            assert name not in env, (dep, name)
            assert file_secret(pod, c, f"{name}_FILE") == ref, (dep, name)
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "docs-secrets", "key": "REDIS_PASSWORD"}
        assert [e["name"] for e in c["env"] if "valueFrom" in e] == ["REDIS_PASSWORD"]
        # Kubernetes expands $(REDIS_PASSWORD) only from an entry defined earlier in the list.
        names = [e["name"] for e in c["env"]]
        assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
        assert names.index("REDIS_PASSWORD") < names.index("DJANGO_CELERY_BROKER_URL")
        # TLS, verified against the tenant's CA with the host name checked (tests/components/test_redis_tls.py
        # connects with these URLs, through the pinned redis-py and kombu, to a real redis-server)
        tls_query = "ssl_cert_reqs=required&ssl_ca_certs=/etc/docs-tls/ca.crt&ssl_check_hostname=true"
        assert env["REDIS_URL"]["value"] == f"rediss://:$(REDIS_PASSWORD)@docs-redis:6379/1?{tls_query}"
        assert env["DJANGO_CELERY_BROKER_URL"]["value"] == f"rediss://:$(REDIS_PASSWORD)@docs-redis:6379/0?{tls_query}"
        pod = get(objs, "Deployment", dep)["spec"]["template"]["spec"]
        [ca] = [v for v in pod["volumes"] if v["name"] == "tls-ca"]
        assert ca["secret"]["secretName"] == "tenant-tls" and ca["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        assert {"name": "tls-ca", "mountPath": "/etc/docs-tls", "readOnly": True} in c["volumeMounts"]
    yprov_dep = get(objs, "Deployment", "docs-y-provider")
    yprov = container(yprov_dep)
    assert not [e for e in yprov["env"] if "valueFrom" in e]
    for name in ("COLLABORATION_SERVER_SECRET", "Y_PROVIDER_API_KEY"):
        assert file_secret(pod_specs(yprov_dep)[0], yprov, f"{name}_FILE") == ("docs-secrets", name)
    redis = container(get(objs, "Deployment", "docs-redis"))
    assert not [e for e in redis.get("env", []) if "valueFrom" in e]
    script = redis["command"][2]
    assert "--port 0 --tls-port 6379 " in script  # TLS only (test_redis_secret.py runs this script)
    assert "--tls" in redis["readinessProbe"]["exec"]["command"][2]


def test_no_secret_value_in_any_annotation_or_configmap() -> None:
    """Annotations carry only names and hashes; nothing the renderer emits holds a secret's value (it has none)."""
    for obj in render_fr():
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if key.startswith("nginx.ingress.kubernetes.io/proxy-"):  # sizes and timeouts
                assert value.rstrip("m").isdigit(), (key, value)
                continue
            assert value == "complete" or value.startswith("docs-migrate-")
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            for value in (obj["spec"]["template"]["metadata"].get("annotations") or {}).values():
                assert len(value) == 64 and all(ch in "0123456789abcdef" for ch in value)


def test_s3_region_is_optional() -> None:
    assert "AWS_S3_REGION_NAME" not in config(render_fr())
    s3 = {"endpoint": "https://s3.example.eu", "bucket": "docs-media", "credentialsSecretRef": "docs-s3", "region": "eu-west-2"}
    assert config(render_fr({"components": {"docs": {"s3": s3}}}))["AWS_S3_REGION_NAME"] == "eu-west-2"


def test_secrets_declared() -> None:
    ctx = contexts()[0]
    specs = {s.name: s for s in docs_mod.secrets(ctx)}
    own = specs["docs-secrets"]
    assert own.namespace == "eu-workplace-fr" and own.component == "docs"
    assert set(own.keys) == {"DJANGO_SECRET_KEY", "Y_PROVIDER_API_KEY", "COLLABORATION_SERVER_SECRET", "REDIS_PASSWORD"}
    assert all(k.generator == "random" and k.length >= 32 for k in own.keys.values())
    assert "docs-postgres" in specs  # the embedded database's password


# ---- database modes ------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "postgres, host, password_ref, kinds",
    [
        ({"mode": "embedded"}, "docs-postgres", {"name": "docs-postgres", "key": "password"}, {"StatefulSet", "ConfigMap"}),
        ({"mode": "cloudnative-pg", "instances": 3}, "docs-postgres-rw", {"name": "docs-postgres-app", "key": "password"}, {"Cluster", "NetworkPolicy"}),
        (
            {"mode": "external", "host": "pg.fr.example.eu", "passwordSecretRef": {"name": "docs-db", "key": "pw"},
             "sslMode": "verify-full", "database": "impress", "user": "impress"},
            "pg.fr.example.eu", {"name": "docs-db", "key": "pw"}, set(),
        ),
    ],
)
def test_postgres_modes(postgres: dict, host: str, password_ref: dict, kinds: set[str]) -> None:
    objs = render_fr({"components": {"docs": {"postgres": postgres}}})
    validate(objs)
    data = config(objs)
    assert data["DB_HOST"] == host
    assert data["PGSSLMODE"] == "verify-full"
    backend = get(objs, "Deployment", "docs-backend")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in backend["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in backend["volumes"]}
    if postgres["mode"] == "external":
        assert (data["DB_NAME"], data["DB_USER"]) == ("impress", "impress")
        assert data["PGSSLROOTCERT"] == "system"  # verify-full checks the server against the system CAs
    elif postgres["mode"] == "embedded":
        assert data["PGSSLROOTCERT"] == "/etc/docs-tls/ca.crt"  # the tenant's CA
        assert volumes[mounts["/etc/docs-tls"]]["secret"]["secretName"] == "tenant-tls"
    else:  # CloudNativePG's own CA (its Secret <cluster>-ca, key ca.crt)
        assert data["PGSSLROOTCERT"] == "/etc/docs-database-tls/ca.crt"
        assert volumes[mounts["/etc/docs-database-tls"]]["secret"] == {
            "secretName": "docs-postgres-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o440}
    for workload in (get(objs, "Deployment", "docs-worker"), job(objs)):
        secret_volumes = lambda pod: [v for v in pod["volumes"] if "secret" in v]  # noqa: E731
        assert secret_volumes(workload["spec"]["template"]["spec"]) == secret_volumes(backend)
    db_kinds = {o["kind"] for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") == "postgres"}
    assert kinds <= db_kinds and not db_kinds - kinds - {"Service"}
    expected = (password_ref["name"], password_ref["key"])
    for workload in (get(objs, "Deployment", "docs-backend"), get(objs, "Deployment", "docs-worker"), job(objs)):
        pod = pod_specs(workload)[0]
        assert file_secret(pod, pod["containers"][0], "DB_PASSWORD_FILE") == expected


# ---- extraConfig ---------------------------------------------------------------------------------------

def test_extra_config_merged_into_configmap() -> None:
    data = config(render_fr({"components": {"docs": {"extraConfig": {"FRONTEND_THEME": "dsfr", "AI_FEATURE_ENABLED": "false"}}}}))
    assert data["FRONTEND_THEME"] == "dsfr" and data["AI_FEATURE_ENABLED"] == "false"
    assert data["DB_HOST"] == "docs-postgres"


@pytest.mark.parametrize("key", ["DB_HOST", "OIDC_RP_CLIENT_ID", "DJANGO_SECRET_KEY", "REDIS_URL", "DB_PASSWORD",
                                 "DB_PASSWORD_FILE", "Y_PROVIDER_API_KEY_FILE"])
def test_extra_config_clash(key: str) -> None:
    with pytest.raises(InputError) as err:
        render_fr({"components": {"docs": {"extraConfig": {key: "x", "FRONTEND_THEME": "dsfr"}}}})
    assert [p.path for p in err.value.problems] == [f"spec.components.docs.extraConfig.{key}"]


def test_extra_config_key_must_be_an_env_name() -> None:
    with pytest.raises(InputError) as err:
        render_fr({"components": {"docs": {"extraConfig": {"MY SETTING": "x", "FRONTEND_THEME": "dsfr"}}}})
    assert [p.path for p in err.value.problems] == ["spec.components.docs.extraConfig.MY SETTING"]


def test_extra_config_clash_in_a_tenant_override_names_the_tenant() -> None:
    doc = example_dict("two-countries")
    doc["spec"]["tenants"][1]["components"] = {"docs": {"extraConfig": {"DJANGO_ALLOWED_HOSTS": "*"}}}
    suite = parse_suite(copy.deepcopy(doc))
    _, clouds = load_example("two-countries")
    ctx_de = build_contexts(suite, clouds)[1]
    with pytest.raises(InputError) as err:
        docs_mod.render(ctx_de)
    assert [p.path for p in err.value.problems] == ["spec.tenants[1].components.docs.extraConfig.DJANGO_ALLOWED_HOSTS"]
    docs_mod.render(build_contexts(suite, clouds)[0])  # FR has no override: fine


def test_config_change_rolls_the_pods_but_not_the_job() -> None:
    before = render_fr()
    after = render_fr({"components": {"docs": {"extraConfig": {"FRONTEND_THEME": "dsfr"}}}})
    key = "sovereignsuite.io/config-sha256"
    for dep in ("docs-backend", "docs-worker", "docs-y-provider"):
        a = get(before, "Deployment", dep)["spec"]["template"]["metadata"]["annotations"][key]
        b = get(after, "Deployment", dep)["spec"]["template"]["metadata"]["annotations"][key]
        assert a != b
    assert job(before) == job(after)


# ---- pods: security, placement, resources, PDBs, apply phase ---------------------------------------------

def test_pod_hardening_and_resources() -> None:
    objs = render_fr()
    ctx = contexts()[0]
    for obj in objs:
        if obj["kind"] == "Cluster":
            continue
        for pod in pod_specs(obj):
            assert pod["affinity"] == ctx.region_affinity(), obj["metadata"]["name"]
            assert pod["automountServiceAccountToken"] is False
            assert pod["enableServiceLinks"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in pod.get("initContainers", []) + pod["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
                assert sc["readOnlyRootFilesystem"] is True, (obj["metadata"]["name"], c["name"])
                assert c["resources"]["requests"] and c["resources"]["limits"], (obj["metadata"]["name"], c["name"])
                assert {"/tmp", "/data", "/var/lib/postgresql/data"} & {m["mountPath"] for m in c.get("volumeMounts", [])}


def test_labels_and_selectors() -> None:
    for obj in render_fr():
        labels = obj["metadata"]["labels"]
        assert labels["sovereignsuite.io/component"] == "docs"
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert "app.kubernetes.io/version" not in selector
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    # Two Deployments never share a selector.
    selectors = [json.dumps(o["spec"]["selector"], sort_keys=True) for o in render_fr() if o["kind"] == "Deployment"]
    assert len(selectors) == len(set(selectors))


def test_redis_is_applied_with_the_databases() -> None:
    objs = render_fr()
    redis = get(objs, "Deployment", "docs-redis")
    assert redis["metadata"]["labels"]["app.kubernetes.io/component"] == "redis"
    assert phase_of(redis) == "data"
    assert phase_of(get(objs, "Deployment", "docs-backend")) == "apps"
    # what the script configures is checked against a real redis-server: tests/components/test_redis_secret.py
    assert container(redis)["command"][:2] == ["/bin/sh", "-c"] and "args" not in container(redis)


def test_pdbs_follow_replicas() -> None:
    objs = render_fr({"components": {"docs": {"backendReplicas": 1, "frontendReplicas": 3, "yProviderReplicas": 2, "workerReplicas": 1}}})
    pdbs = {o["metadata"]["name"] for o in objs if o["kind"] == "PodDisruptionBudget"}
    assert pdbs == {"docs-frontend", "docs-media", "docs-y-provider"}
    assert get(objs, "Deployment", "docs-y-provider")["spec"]["replicas"] == 2
    for name in pdbs:
        assert get(objs, "PodDisruptionBudget", name)["spec"]["selector"] == get(objs, "Deployment", name)["spec"]["selector"]
    validate(objs)


# ---- the /media/ proxy ------------------------------------------------------------------------------------

def test_media_proxy_config() -> None:
    objs = render_fr()
    conf = get(objs, "ConfigMap", "docs-media-nginx")["data"]["media.conf"]
    assert 'proxy_pass "https://s3.workplace.example.eu/docs-media/";' in conf
    assert 'proxy_set_header Host "s3.workplace.example.eu";' in conf
    assert 'proxy_pass "http://docs-backend:80/api/v1.0/documents/media-auth/";' in conf
    assert 'X-Original-URL "https://docs.fr.workplace.example.eu$request_uri"' in conf
    assert "proxy_ssl_verify on;" in conf
    media = get(objs, "Deployment", "docs-media")
    mounts = {m["mountPath"]: m["name"] for m in container(media)["volumeMounts"]}
    assert mounts["/etc/nginx/conf.d"] == "config"


def test_media_proxy_plain_http_endpoint_with_port() -> None:
    s3 = {"endpoint": "http://minio.storage.svc:9000", "bucket": "docs-media", "credentialsSecretRef": "docs-s3"}
    conf = get(render_fr({"components": {"docs": {"s3": s3}}}), "ConfigMap", "docs-media-nginx")["data"]["media.conf"]
    assert 'proxy_pass "http://minio.storage.svc:9000/docs-media/";' in conf
    assert 'proxy_set_header Host "minio.storage.svc:9000";' in conf
    assert "proxy_ssl" not in conf


def test_media_proxy_config_is_valid_nginx(tmp_path: Path) -> None:
    """nginx -t on the rendered configuration (host names replaced: nginx resolves them while checking). Debian's
    nginx comes from hack/install-federation-tools.sh (`make test`)."""
    if shutil.which("nginx") is None:
        msg = "nginx is not installed: run hack/install-federation-tools.sh (make test does)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    conf = render_text(
        docs_mod.HERE, "media-nginx.conf.j2", port=18080, host="docs.fr.example.eu", backend="http://127.0.0.1:18001",
        s3_url="https://127.0.0.1/docs-media/", s3_host="s3.example.eu", s3_https=True,
    )
    (tmp_path / "media.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ client_body_temp_path {tmp_path}/c; proxy_temp_path {tmp_path}/p; include {tmp_path}/media.conf; }}\n"
    )
    out = subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
