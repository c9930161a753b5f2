"""The embedded PostgreSQL serves TLS only, and the suite's clients verify it: proved on Debian's real PostgreSQL
started from the rendered StatefulSet (arguments, pg_hba.conf ConfigMap, the tenant's certificates from the
operator's own generator; tests/components/rendered_servers.py), with psql (libpq, the library behind Docs'
psycopg and Synapse's psycopg2) given each client's rendered settings. Synapse's own connection code is run
against it in tests/components/test_synapse_config.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sovereign_suite.components import docs, matrix
from sovereign_suite.components.base import MONITORING_API, build_contexts
from sovereign_suite.tlsgen import new_ca

from ..helpers import load_example, suite_with
from . import rendered_servers as rs

pytestmark = pytest.mark.slow
PASSWORD = "s3cret-pw"
QUERY = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.fixture(scope="module")
def fr():
    suite = suite_with("four-countries", {"monitoring": {"serviceMonitors": True}})
    _, clouds = load_example("four-countries")
    return build_contexts(suite, clouds, frozenset({MONITORING_API}))[0]


@pytest.fixture(scope="module")
def secrets(fr):
    keys = {"signing.key": "", "macaroon_secret_key": "m", "registration_shared_secret": "r", "form_secret": "f"}
    return {"tenant-tls": rs.tenant_tls(fr), "matrix-postgres": {"password": PASSWORD},
            "docs-postgres": {"password": PASSWORD}, "synapse-keys": keys}


def psql(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run([str(rs.pg_bin() / "psql"), "-X", "-A", "-t", "-c", QUERY, *args],
                          env={**base, "PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "10", **env},
                          capture_output=True, text=True)


def docs_client_env(objs, client_dir: Path, server: dict, secrets: dict) -> dict[str, str]:
    """Docs' database settings as the backend gets them: docs-config (PGSSLMODE, PGSSLROOTCERT, DB_*), with the
    CA certificate written where the backend's volume puts it. libpq dials 127.0.0.1 (PGHOSTADDR) and verifies
    the certificate against the rendered host name (PGHOST), as in the cluster where the Service name resolves."""
    config = rs.by_kind(objs, "ConfigMap", "docs-config")["data"]
    pod = rs.by_kind(objs, "Deployment", "docs-backend")["spec"]["template"]["spec"]
    where = rs.mount(pod, pod["containers"][0], client_dir, secrets, {}, only={"tls-ca"})  # the CA it verifies with
    return {"PGSSLMODE": config["PGSSLMODE"], "PGSSLROOTCERT": rs.remap(config["PGSSLROOTCERT"], where),
            "PGHOST": config["DB_HOST"], "PGHOSTADDR": "127.0.0.1", "PGPORT": str(server["port"]),
            "PGUSER": config["DB_USER"], "PGDATABASE": config["DB_NAME"]}


def test_embedded_postgres_refuses_plaintext_and_foreign_ca_and_accepts_the_suites_clients(fr, secrets):
    objs = docs.render(fr)
    with rs.postgres(objs, "docs-postgres", secrets, PASSWORD) as server:
        client_dir = rs.workdir()
        env = docs_client_env(objs, client_dir, server, secrets)
        assert env["PGSSLMODE"] == "verify-full" and env["PGHOST"] == "docs-postgres"

        # Docs' own settings connect, over TLS
        ok = psql(env)
        assert ok.returncode == 0, ok.stderr
        ssl, version = ok.stdout.strip().split("|")
        assert ssl == "t" and version in ("TLSv1.2", "TLSv1.3")

        # a plaintext client is refused: no pg_hba.conf line matches a connection without TLS
        plain = psql({**env, "PGSSLMODE": "disable"})
        assert plain.returncode != 0
        assert "no pg_hba.conf entry" in plain.stderr and "no encryption" in plain.stderr, plain.stderr

        # a client trusting another CA is refused (its verification fails before any password is sent)
        other = client_dir / "other-ca.crt"
        other.write_text(new_ca("another tenant CA")[0])
        foreign = psql({**env, "PGSSLROOTCERT": str(other)})
        assert foreign.returncode != 0 and "certificate verify failed" in foreign.stderr, foreign.stderr

        # the tenant's CA does not make another server's certificate valid for this name
        wrong_name = psql({**env, "PGHOST": "matrix-postgres"})
        assert wrong_name.returncode != 0 and "does not match host name" in wrong_name.stderr, wrong_name.stderr

        # the metrics exporter's rendered URI (lib/pq reads the same sslmode/sslrootcert parameters as libpq)
        pod = rs.by_kind(objs, "StatefulSet", "docs-postgres")["spec"]["template"]["spec"]
        exporter = next(c for c in pod["containers"] if c["name"] == "metrics")
        uri = next(e["value"] for e in exporter["env"] if e["name"] == "DATA_SOURCE_URI")
        where = rs.mount(pod, exporter, client_dir / "exporter", secrets, {})
        user = next(e["value"] for e in exporter["env"] if e["name"] == "DATA_SOURCE_USER")
        local_uri = rs.remap(uri, where).replace(":5432/", f":{server['port']}/")
        via_uri = psql({}, "-d", f"postgresql://{user}@{local_uri}")
        assert via_uri.returncode == 0, via_uri.stderr
        assert via_uri.stdout.strip().startswith("t|")

        # the server's log names no key-permission problem: the 0440 root-owned key of the Secret volume is accepted
        assert "private key file" not in server["log"].read_text()


def test_matrix_postgres_certificate_names_its_service(fr, secrets):
    """Synapse's server: its certificate is valid for matrix-postgres, the host in homeserver.yaml."""
    objs = matrix.render(fr)
    hs = matrix.homeserver_config(fr)
    args = hs["database"]["args"]
    with rs.postgres(objs, "matrix-postgres", secrets, PASSWORD) as server:
        client_dir = rs.workdir()
        dep = rs.by_kind(objs, "Deployment", "synapse")["spec"]["template"]["spec"]
        configmaps = {o["metadata"]["name"]: o["data"] for o in objs if o["kind"] == "ConfigMap"}
        where = rs.mount(dep, next(c for c in dep["containers"] if c["name"] == "synapse"), client_dir, secrets,
                         configmaps)
        env = {"PGSSLMODE": args["sslmode"], "PGSSLROOTCERT": rs.remap(args["sslrootcert"], where),
               "PGHOST": args["host"], "PGHOSTADDR": "127.0.0.1", "PGPORT": str(server["port"]),
               "PGUSER": args["user"], "PGDATABASE": args["dbname"]}
        ok = psql(env)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip().startswith("t|")
