"""Passwords reach a container as a file of their Secret wherever the upstream image reads one (issue 22, item 17):
an environment variable shows in `kubectl describe`'s view of the pod spec's consumers, in /proc/<pid>/environ, in
crash dumps and in every child process. Each case below is cited where it is rendered:

- the embedded PostgreSQL: POSTGRES_PASSWORD_FILE (docker-library/postgres docker-entrypoint.sh, file_env);
- its postgres_exporter sidecar: DATA_SOURCE_PASS_FILE (postgres_exporter datasource.go);
- Synapse's database password: the init container's own script reads the mounted Secret key;
- Docs' backend, worker, Job and y-provider: *_FILE (django-lasuite SecretFileValue; y-provider env.ts), and its
  Redis: the password on redis-server's stdin (tests/components/test_redis_secret.py runs it);
- vLLM: the API key in its --config file, the Hugging Face token through HF_TOKEN_PATH; LiteLLM: its config with
  the keys, written by an init container (tests/components/test_llm_api_key.py runs both scripts).

The environment variables still taken from Secrets are listed in ENV_SECRETS (docs/security.md, "Secrets in
containers"): a new one must be added there on purpose."""

from __future__ import annotations

from typing import Any

import pytest

from sovereign_suite.components.matrix import PATHS
from sovereign_suite.render import render_suite

from .helpers import file_secret, load_example, mounted_secret, pod_specs, suite_with

MONITORING = frozenset({"monitoring.coreos.com/v1"})

# (workload prefix, container, variable): still passed as environment variables from a Secret, each for the reason
# docs/security.md ("Secrets in containers") gives with its upstream citation. A new one must be added on purpose.
ENV_SECRETS = {
    # Docs: the Redis URLs embed the password and are plain settings, with no *_FILE form (settings.py v5.4.1)
    ("docs-", "backend", "REDIS_PASSWORD"), ("docs-", "worker", "REDIS_PASSWORD"), ("docs-", "migrate", "REDIS_PASSWORD"),
    # Jitsi stable-11146-1: the images' templates read only the variables ({{ .Env.* }}), no *_FILE
    ("jitsi-", "jicofo", "JICOFO_AUTH_PASSWORD"), ("jitsi-", "jvb", "JVB_AUTH_PASSWORD"),
    ("jitsi-", "prosody", "JICOFO_AUTH_PASSWORD"), ("jitsi-", "prosody", "JVB_AUTH_PASSWORD"),
}
# Docs reads these from the file <NAME>_FILE names: django-lasuite 0.0.26 SecretFileValue (the version
# suitenumerique/docs v5.4.1 pins), and the y-provider's src/env.ts (v5.4.1)
DOCS_FILES = {
    "backend": {"DJANGO_SECRET_KEY", "DB_PASSWORD", "AWS_S3_ACCESS_KEY_ID", "AWS_S3_SECRET_ACCESS_KEY",
                "OIDC_RP_CLIENT_SECRET", "Y_PROVIDER_API_KEY", "COLLABORATION_SERVER_SECRET"},
    "y-provider": {"Y_PROVIDER_API_KEY", "COLLABORATION_SERVER_SECRET"},
}
DOCS_FILES["worker"] = DOCS_FILES["migrate"] = DOCS_FILES["backend"]


@pytest.fixture(scope="module")
def objs() -> list[dict[str, Any]]:
    _, clouds = load_example("four-countries")
    suite = suite_with("four-countries", {"monitoring": {"serviceMonitors": True}})
    return list(render_suite(suite, clouds, MONITORING).manifests)


def containers(obj: dict[str, Any]):
    for pod in pod_specs(obj):
        for c in pod.get("initContainers", []) + pod["containers"]:
            yield pod, c


def test_embedded_databases_read_their_password_from_a_file(objs):
    databases = [o for o in objs if o["kind"] == "StatefulSet" and o["metadata"]["name"].endswith("-postgres")]
    assert databases
    for sts in databases:
        for pod, c in containers(sts):
            env = {e["name"]: e for e in c.get("env", [])}
            assert not [e for e in env.values() if "valueFrom" in e], (sts["metadata"]["name"], c["name"])
            variable = {"postgres": "POSTGRES_PASSWORD_FILE", "metrics": "DATA_SOURCE_PASS_FILE"}[c["name"]]
            assert mounted_secret(pod, c, env[variable]["value"]) == (sts["metadata"]["name"], "password")
    assert {c["name"] for sts in databases for _, c in containers(sts)} == {"postgres", "metrics"}


def test_synapse_reads_its_database_password_from_a_file(objs):
    for dep in (o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "synapse"):
        [(pod, init), (_, synapse)] = list(containers(dep))
        assert "env" not in init and "env" not in synapse
        assert init["command"][-1] == PATHS.database_password
        assert mounted_secret(pod, init, PATHS.database_password) == ("matrix-postgres", "password")


def test_docs_reads_its_secrets_from_files(objs):
    seen = set()
    for o in objs:
        if o["kind"] in ("Deployment", "Job") and o["metadata"]["name"].startswith("docs-"):
            for pod, c in containers(o):
                for name in DOCS_FILES.get(c["name"], ()):
                    secret, key = file_secret(pod, c, f"{name}_FILE")
                    assert secret and key
                    assert name not in {e["name"] for e in c.get("env", [])}
                    seen.add(c["name"])
    assert seen == set(DOCS_FILES)


def test_the_secrets_still_in_the_environment_are_the_listed_ones(objs):
    found = set()
    for o in objs:
        if o["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        for _, c in containers(o):
            assert not any("secretRef" in e for e in c.get("envFrom", [])), (o["metadata"]["name"], c["name"])
            for e in c.get("env", []):
                if "secretKeyRef" in e.get("valueFrom", {}):
                    prefix = next((p for p, _, _ in ENV_SECRETS if o["metadata"]["name"].startswith(p)),
                                  o["metadata"]["name"])
                    found.add((prefix, c["name"], e["name"]))
    assert found == ENV_SECRETS
