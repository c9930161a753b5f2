"""The rendered homeserver.yaml is accepted by Synapse's own configuration loader.

Synapse (AGPL) is a test tool here, never a dependency of the operator: the pinned image's version is installed
once into its own venv under ${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/sovereign-suite}/
synapse-venv-<version> (about 30 s from PyPI), and the loader runs there in a subprocess. The test renders
with temporary paths (SynapsePaths), writes the secret files the operator would generate (a real signing key
from Synapse's own tool), runs the init container's script exactly as the pod does, then loads the config
with the container's arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api.validation import InputError

from sovereign_suite.api.models import Matrix
from sovereign_suite.components import matrix
from sovereign_suite.components.base import build_contexts
from sovereign_suite.components.postgres import image_tag

from .. import synapse_venv
from ..helpers import load_example, suite_with
from . import rendered_servers

pytestmark = pytest.mark.slow

SYNAPSE_VERSION = image_tag(Matrix().image).lstrip("v")  # the pinned image's version, e.g. 1.163.2
# The image has Synapse's extras; its `redis` extra (txredisapi, hiredis) is what workers need: Synapse's loader
# refuses `redis.enabled` without it (synapse/config/redis.py, check_requirements("redis")).
DB_PASSWORD = "p@ss: 'w\"rd' # with YAML-hostile characters"

# Runs inside the Synapse venv: load the config exactly as `python -m synapse.app.homeserver ARGS` would
# (without starting), then print what the test compares.
LOADER = r"""
import json, sys
from synapse.config.homeserver import HomeServerConfig

config = HomeServerConfig.load_config("sovereign-suite config check", sys.argv[1:])
whitelist = config.federation.federation_domain_whitelist
print(json.dumps({
    "server_name": config.server.server_name,
    "public_baseurl": config.server.public_baseurl,
    "federation_domain_whitelist": None if whitelist is None else sorted(whitelist),
    "listeners": [
        {
            "port": l.port,
            "type": l.type,
            "resources": [sorted(r.names) for r in (l.http_options.resources if l.http_options else [])],
        }
        for l in config.server.listeners
    ],
    "metrics": config.metrics.enable_metrics,
    "database": config.database.databases[0].config,
    "media_store_path": config.media.media_store_path,
    "max_upload_size": config.media.max_upload_size,
    "signing_key_ids": [k.version for k in config.key.signing_key],
    "macaroon_secret_key": config.key.macaroon_secret_key.decode(),
    "form_secret": config.key.form_secret,
    "registration_shared_secret": config.registration.registration_shared_secret,
    "key_servers": [s.server_name for s in config.key.key_servers],
    "report_stats": config.metrics.report_stats,
    "encryption_presets": sorted(config.room.encryption_enabled_by_default_for_room_presets),
}))
"""


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    """The Python of a venv with matrix-synapse==<pinned version> (and psycopg2), built once and reused."""
    try:
        return synapse_venv.synapse_python(SYNAPSE_VERSION)
    except RuntimeError as err:
        pytest.fail(str(err))


def _paths(root: Path) -> matrix.SynapsePaths:
    paths = matrix.SynapsePaths(
        config=str(root / "config"), keys=str(root / "keys"), runtime=str(root / "runtime"), media=str(root / "media"),
        database_secret=str(root / "database-secret"), database_ca=str(root / "database-ca"),
    )
    for d in (paths.config, paths.keys, paths.runtime, paths.database_secret, paths.database_ca):
        Path(d).mkdir(parents=True)
    return paths


def _write_files(python: Path, ctx, paths: matrix.SynapsePaths, homeserver_yaml: str | None = None) -> dict[str, str]:
    """What the pod sees: the ConfigMap's files, the generated Secret's files, and the init container's output."""
    Path(paths.homeserver).write_text(homeserver_yaml or matrix.homeserver_yaml(ctx, paths))
    Path(paths.script).write_text(matrix.write_database_script())
    keys = Path(paths.keys)
    subprocess.run(
        [str(python), "-m", "synapse._scripts.generate_signing_key", "-o", str(keys / "signing.key")], check=True
    )
    secrets = {"macaroon_secret_key": "m" * 64, "registration_shared_secret": "r" * 64, "form_secret": "f" * 64}
    for name, value in secrets.items():
        (keys / name).write_text(value)
    # the init container: same script, same arguments, the password Secret's key as a file
    Path(paths.database_password).write_text(DB_PASSWORD)
    subprocess.run([str(python), paths.script, paths.homeserver, paths.database, paths.database_password], check=True)
    return secrets


def _load(python: Path, paths: matrix.SynapsePaths, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-c", LOADER, *matrix.synapse_args(paths)], capture_output=True, text=True, cwd=cwd
    )


def _fr_context(suite=None):
    suite_, clouds = load_example("four-countries")
    return build_contexts(suite or suite_, clouds)[0]


def test_rendered_config_is_accepted_by_synapse(synapse_python, tmp_path):
    ctx = _fr_context()
    paths = _paths(tmp_path)
    secrets = _write_files(synapse_python, ctx, paths)

    result = _load(synapse_python, paths, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    assert loaded["server_name"] == "fr.workplace.example.eu" == ctx.domain
    assert loaded["public_baseurl"] == "https://matrix.fr.workplace.example.eu/"
    assert loaded["federation_domain_whitelist"] == [
        "de.workplace.example.eu",
        "lu.workplace.example.eu",
        "matrix.org",
        "se.workplace.example.eu",
    ]
    assert loaded["listeners"] == [
        {"port": 8008, "type": "http", "resources": [["client", "federation"]]},
        {"port": 9001, "type": "metrics", "resources": []},
    ]
    assert loaded["metrics"] is True and loaded["report_stats"] is False
    assert loaded["key_servers"] == []  # no notary
    db = loaded["database"]
    assert db["name"] == "psycopg2"
    assert db["args"] == {
        "host": "matrix-postgres",
        "port": 5432,
        "dbname": "matrix",
        "user": "matrix",
        "sslmode": "verify-full",  # TLS, the server's certificate checked against the tenant's CA and name
        "sslrootcert": f"{paths.database_ca}/ca.crt",
        "cp_min": 5,
        "cp_max": 10,
        "password": DB_PASSWORD,  # from the init container's file, merged over homeserver.yaml
    }
    assert loaded["media_store_path"] == paths.media
    assert loaded["max_upload_size"] == 100 * 1024 * 1024
    assert len(loaded["signing_key_ids"]) == 1 and loaded["signing_key_ids"][0].startswith("a_")
    assert loaded["macaroon_secret_key"] == secrets["macaroon_secret_key"]
    assert loaded["form_secret"] == secrets["form_secret"]
    assert loaded["registration_shared_secret"] == secrets["registration_shared_secret"]
    # new private and invite-only rooms are end-to-end encrypted (matrix.encryptionByDefault: invite)
    assert loaded["encryption_presets"] == ["private_chat", "trusted_private_chat"]

    # the password is only in the runtime file, never in homeserver.yaml (the ConfigMap)
    assert DB_PASSWORD not in Path(paths.homeserver).read_text()
    assert yaml.safe_load(Path(paths.database).read_text())["database"]["args"]["password"] == DB_PASSWORD
    assert oct(os.stat(paths.database).st_mode & 0o777) == "0o600"


def test_federation_disabled_is_accepted_and_closed(synapse_python, tmp_path):
    suite = suite_with("four-countries", {"components": {"matrix": {"federation": {"enabled": False}}}})
    ctx = _fr_context(suite)
    paths = _paths(tmp_path)
    _write_files(synapse_python, ctx, paths)

    result = _load(synapse_python, paths, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["federation_domain_whitelist"] == []  # an empty whitelist: Synapse federates with nobody
    assert loaded["listeners"][0]["resources"] == [["client"]]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("database", {"name": "mysql", "args": {}}, "Unsupported database type 'mysql'"),
        ("listeners", [{"port": 8008, "type": "gopher"}], "gopher"),
        ("max_upload_size", "lots", "invalid literal"),
    ],
)
def test_invalid_config_is_rejected(synapse_python, tmp_path, key, value, message):
    """The check can fail: the same loader refuses a broken homeserver.yaml."""
    ctx = _fr_context()
    paths = _paths(tmp_path)
    broken = matrix.homeserver_config(ctx, paths)
    broken[key] = value
    _write_files(synapse_python, ctx, paths, yaml.safe_dump(broken))

    result = _load(synapse_python, paths, tmp_path)
    assert result.returncode != 0
    assert message in result.stderr


def test_inline_secret_from_extra_config_is_refused(synapse_python, tmp_path):
    """extraConfig lands in the ConfigMap, so Synapse runs with --no-secrets-in-config: an in-line secret
    (here the TURN shared secret) stops it instead of sitting in a ConfigMap."""
    suite = suite_with("four-countries", {"components": {"matrix": {"extraConfig": {"turn_shared_secret": "x"}}}})
    ctx = _fr_context(suite)
    paths = _paths(tmp_path)
    _write_files(synapse_python, ctx, paths)

    result = _load(synapse_python, paths, tmp_path)
    assert result.returncode != 0
    assert "turn_shared_secret" in result.stderr


@pytest.mark.parametrize("setting, presets", [("all", ["private_chat", "public_chat", "trusted_private_chat"]),
                                              ("off", [])])
def test_encryption_by_default_is_overridable_per_tenant(synapse_python, tmp_path, setting, presets):
    """matrix.encryptionByDefault, here in the tenant's override, reaches Synapse's room config ("off" stays the
    string Synapse expects, never YAML's boolean)."""
    doc = suite_with("four-countries", {}).model_dump(by_alias=True, exclude_none=True)
    doc["spec"]["tenants"][0]["components"] = {"matrix": {"encryptionByDefault": setting}}
    suite = type(suite_with("four-countries", {})).model_validate(doc)
    ctx = _fr_context(suite)
    paths = _paths(tmp_path)
    _write_files(synapse_python, ctx, paths)

    result = _load(synapse_python, paths, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["encryption_presets"] == presets


def test_encryption_by_default_cannot_be_set_in_extra_config():
    suite = suite_with("four-countries", {"components": {"matrix": {
        "extraConfig": {"encryption_enabled_by_default_for_room_type": "off"}}}})
    with pytest.raises(InputError) as err:
        matrix.homeserver_config(_fr_context(suite))
    assert [p.path for p in err.value.problems] == [
        "spec.components.matrix.extraConfig.encryption_enabled_by_default_for_room_type"]


def test_an_unknown_encryption_setting_is_refused():
    with pytest.raises(InputError) as err:
        suite_with("four-countries", {"components": {"matrix": {"encryptionByDefault": "sometimes"}}})
    [problem] = err.value.problems
    assert problem.path == "spec.components.matrix.encryptionByDefault" and "'invite', 'all' or 'off'" in problem.message


# Runs inside the Synapse venv: Synapse's own connection code (synapse/storage/database.py make_conn, which passes
# the database args to psycopg2/libpq) and its database check, then whether the session is encrypted.
CONNECT = r"""
import json, sys
from synapse.config.homeserver import HomeServerConfig
from synapse.storage.database import make_conn
from synapse.storage.engines import create_engine

config = HomeServerConfig.load_config("sovereign-suite database check", sys.argv[1:])
db = config.database.databases[0]
engine = create_engine(db.config)
conn = make_conn(db_config=db, engine=engine, default_txn_name="tls-check", server_name=config.server.server_name)
engine.check_database(conn.conn)
cur = conn.conn.cursor()
cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
print(json.dumps(cur.fetchone()))
"""


def test_synapse_connects_to_the_tls_database_with_its_rendered_config(synapse_python, tmp_path):
    """Synapse, with its rendered homeserver.yaml and the init container's database file, reaches the rendered
    embedded PostgreSQL (real, TLS only: tests/components/rendered_servers.py) over verified TLS. Only where it
    dials changes (libpq's hostaddr: matrix-postgres is the Service's name in the cluster); the certificate is
    checked against the rendered host name."""
    ctx = _fr_context()
    paths = _paths(tmp_path)
    _write_files(synapse_python, ctx, paths)
    tenant_tls = rendered_servers.tenant_tls(ctx)
    Path(paths.database_ca, "ca.crt").write_text(tenant_tls["ca.crt"])  # the database-ca volume's one item
    objs = matrix.render(ctx)
    with rendered_servers.postgres(objs, "matrix-postgres", {"tenant-tls": tenant_tls,
                                   "matrix-postgres": {"password": DB_PASSWORD}}, DB_PASSWORD) as server:
        runtime = yaml.safe_load(Path(paths.database).read_text())
        dial = tmp_path / "dial.yaml"

        def connect(**args):
            database = {**runtime["database"], "args": {**runtime["database"]["args"], "hostaddr": "127.0.0.1",
                                                        "port": server["port"], **args}}
            dial.write_text(json.dumps({"database": database}))
            return subprocess.run([str(synapse_python), "-c", CONNECT, *matrix.synapse_args(paths),
                                   "--config-path", str(dial)], capture_output=True, text=True, cwd=tmp_path)

        ok = connect()
        assert ok.returncode == 0, ok.stderr[-4000:]
        ssl, version = json.loads(ok.stdout.strip().splitlines()[-1])
        assert ssl is True and version in ("TLSv1.2", "TLSv1.3")
        # the same Synapse without TLS is refused by the server
        plain = connect(sslmode="disable")
        assert plain.returncode != 0 and "no encryption" in plain.stderr
