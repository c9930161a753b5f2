"""The backup program dumps the embedded databases over verified TLS (issue 23 merged with issue 26's hostssl-only
PostgreSQL): Debian's PostgreSQL started from the rendered matrix-postgres StatefulSet (tests/components/
rendered_servers.py: its arguments, hostssl-only pg_hba.conf and the tenant's certificates), and the database entry
of the rendered backup configuration, with the CA file where the CronJob's volume puts it. libpq dials 127.0.0.1
(PGHOSTADDR) and checks the certificate against the rendered host name, as in the cluster where the Service name
resolves. A plaintext dump is refused, so the rendered settings are what makes the dump work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sovereign_suite.backup import program
from sovereign_suite.components import backup
from sovereign_suite.components.base import build_contexts
from sovereign_suite.render import render_suite

from . import rendered_servers as rs
from .test_backup import clouds_with_storage, suite

pytestmark = pytest.mark.slow
PASSWORD = "pg-backup-tls-7c2e"


@pytest.fixture
def fr_objects():
    s, clouds = suite(), clouds_with_storage()
    ctx = next(c for c in build_contexts(s, clouds) if c.tenant.country == "FR")
    ns = ctx.namespace
    objs = [o for o in render_suite(s, clouds).manifests if o["metadata"].get("namespace") == ns]
    return ctx, objs


def test_the_backup_dumps_the_embedded_database_over_verified_tls(fr_objects, monkeypatch):
    ctx, objs = fr_objects
    [db] = [d for d in backup.config(ctx)["databases"] if d["name"] == "matrix"]
    assert db["sslMode"] == "verify-full" and db["host"] == "matrix-postgres"

    cron = rs.by_kind(objs, "CronJob", "backup")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    secrets = {"tenant-tls": rs.tenant_tls(ctx), "matrix-postgres": {"password": PASSWORD}}
    with rs.postgres(objs, "matrix-postgres", secrets, PASSWORD) as server:
        client = rs.workdir()
        where = rs.mount(pod, pod["containers"][0], client, secrets, {}, only={"tls-ca"})
        password_file = client / "password"
        password_file.write_text(PASSWORD)
        entry = {**db, "port": server["port"], "user": server["user"], "database": server["db"],
                 "passwordFile": str(password_file), "sslRootCert": rs.remap(db["sslRootCert"], where)}
        assert Path(entry["sslRootCert"]).is_file()  # the CronJob mounts the tenant's CA where the entry says
        monkeypatch.setenv("PGHOSTADDR", "127.0.0.1")

        program.dump_database(entry, client / "ok.dump")
        assert (client / "ok.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

        with pytest.raises(program.BackupError, match="no encryption"):  # hostssl only: plaintext refused
            program.dump_database({**entry, "sslMode": "disable"}, client / "plain.dump")
        with pytest.raises(program.BackupError, match="root certificate file"):  # no CA: no verified dump
            program.dump_database({**entry, "sslRootCert": str(client / "absent.crt")}, client / "noca.dump")
