"""A Synapse upgrade for real, without a cluster: Debian's PostgreSQL and the real Synapse of both releases.

The previous release's Synapse (api/releases.yaml) creates the database, a user, a room and messages; the current
release's Synapse starts on it and migrates the schema (schema_version and schema_compat_version move to what its
synapse/storage/schema/__init__.py declares); the user logs in and reads the same history; then the previous
Synapse refuses the migrated database, and the operator's classifier (reconcile/crash_causes.py) recognises the
refusal in the text Synapse really printed. Each Synapse is installed in its own venv, cached by version
(tests/synapse_venv.py); PostgreSQL comes from hack/install-backup-tools.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from sovereign_suite.api.releases import catalogue
from sovereign_suite.components.postgres import image_tag
from sovereign_suite.reconcile.crash_causes import classify

from . import synapse_venv
from .processes import free_port as _free_port, stop_process

pytestmark = pytest.mark.slow
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
PASSWORD = "upgrade-test-pw-5e2c"
USER_PASSWORD = "alice-pw-9f3a"
SERVER = "fr.upgrade.test"


def _version(release: str) -> str:
    return image_tag(catalogue().release(release).images["synapse"]).lstrip("v")


@pytest.fixture(scope="module")
def postgres():
    if not PG_BIN:
        pytest.fail("PostgreSQL is missing: run hack/install-backup-tools.sh")
    bindir = PG_BIN[-1].parent
    base = Path(tempfile.mkdtemp(prefix="upgrade-test-pg-"))  # not pytest's tmp (0700, root's): the server is nobody
    os.chmod(base, 0o777)
    (base / "pw").write_text(PASSWORD)
    os.chmod(base / "pw", 0o644)
    port = _free_port()
    user = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []  # PostgreSQL refuses to run as root
    # C collation: Synapse refuses a database with another one (docs/postgres.md, "Set up database")
    subprocess.run(user + [str(bindir / "initdb"), "-D", str(base / "data"), "--username=synapse",
                           f"--pwfile={base / 'pw'}", "--auth=scram-sha-256", "--lc-collate=C", "--lc-ctype=C",
                           "--encoding=UTF8"], check=True, capture_output=True)
    subprocess.run(user + [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-o",
                           f"-c listen_addresses=127.0.0.1 -p {port} -k {base}", "start"], check=True,
                   capture_output=True)
    env = {**os.environ, "PGPASSWORD": PASSWORD, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "synapse"}

    def psql(sql: str, db: str = "synapse") -> str:
        return subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-Atq", "-d", db, "-c", sql], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    try:
        psql("CREATE DATABASE synapse", db="postgres")
        yield {"port": port, "psql": psql}
    finally:
        subprocess.run(user + [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def config(postgres, tmp_path_factory) -> Path:
    """One homeserver.yaml both versions read (only keys both accept)."""
    root = tmp_path_factory.mktemp("synapse")
    port = _free_port()
    (root / "media").mkdir()
    cfg = {
        "server_name": SERVER,
        "pid_file": str(root / "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "psycopg2", "args": {"user": "synapse", "password": PASSWORD, "database": "synapse",
                                                  "host": "127.0.0.1", "port": postgres["port"], "cp_min": 1,
                                                  "cp_max": 3}},
        "media_store_path": str(root / "media"),
        "signing_key_path": str(root / "signing.key"),
        "report_stats": False,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "macaroon_secret_key": "m" * 64,
        "form_secret": "f" * 64,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_registration": {"per_second": 1000, "burst_count": 1000},
        "rc_login": {"address": {"per_second": 1000, "burst_count": 1000},
                     "account": {"per_second": 1000, "burst_count": 1000}},
    }
    path = root / "homeserver.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _base(config: Path) -> str:
    return f"http://127.0.0.1:{yaml.safe_load(config.read_text())['listeners'][0]['port']}"


def _call(config: Path, method: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(_base(config) + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return {"_status": err.code, **json.loads(err.read() or b"{}")}


class Synapse:
    """A homeserver process of one version, on the shared config."""

    def __init__(self, python: Path, config: Path):
        self.python, self.config = python, config
        self.log = config.parent / f"synapse-{python.parent.parent.name}.log"
        if not (config.parent / "signing.key").exists():
            subprocess.run([str(python), "-m", "synapse._scripts.generate_signing_key", "-o",
                            str(config.parent / "signing.key")], check=True)
        self.proc = subprocess.Popen([str(python), "-m", "synapse.app.homeserver", "-c", str(config)],
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=config.parent)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"Synapse exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(_base(self.config) + "/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"Synapse not ready in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        stop_process(self.proc)


def _login(config: Path) -> str:
    out = _call(config, "POST", "/_matrix/client/v3/login",
                {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
                 "password": USER_PASSWORD})
    assert "access_token" in out, out
    return out["access_token"]


def _history(config: Path, token: str, room: str) -> list[str]:
    out = _call(config, "GET", f"/_matrix/client/v3/rooms/{urllib.request.quote(room)}/messages?dir=b&limit=50",
                token=token)
    return [e["content"]["body"] for e in reversed(out.get("chunk") or []) if e.get("type") == "m.room.message"]


def _declared(python: Path) -> tuple[int, int]:
    """SCHEMA_VERSION and SCHEMA_COMPAT_VERSION as the installed Synapse's synapse/storage/schema/__init__.py
    declares them."""
    out = subprocess.run([str(python), "-c", "from synapse.storage.schema import SCHEMA_VERSION, "
                          "SCHEMA_COMPAT_VERSION as C; print(SCHEMA_VERSION, C)"], check=True, capture_output=True,
                         text=True).stdout.split()
    return int(out[0]), int(out[1])


def _schema(postgres) -> tuple[int, int]:
    version = int(postgres["psql"]("SELECT version FROM schema_version"))
    compat = int(postgres["psql"]("SELECT compat_version FROM schema_compat_version"))
    return version, compat


def test_previous_synapse_data_survives_the_upgrade_and_the_old_one_is_refused(postgres, config):
    cat = catalogue()
    previous, current = cat.releases[-2], cat.releases[-1]
    try:
        old_python = synapse_venv.synapse_python(_version(previous.name))
        new_python = synapse_venv.synapse_python(_version(current.name))
    except RuntimeError as err:
        pytest.fail(str(err))

    # the catalogue's schema facts are what each Synapse declares
    assert _declared(old_python) == (previous.synapse.schema_version, previous.synapse.compat_version)
    assert _declared(new_python) == (current.synapse.schema_version, current.synapse.compat_version)

    # 1. the previous release's Synapse makes the database, a user, a room and messages
    old = Synapse(old_python, config)
    try:
        old.wait_ready()
        first = _call(config, "POST", "/_matrix/client/v3/register", {"username": "alice", "password": USER_PASSWORD})
        reg = _call(config, "POST", "/_matrix/client/v3/register",
                    {"username": "alice", "password": USER_PASSWORD,
                     "auth": {"type": "m.login.dummy", "session": first.get("session")}})
        assert "access_token" in reg, reg
        token = reg["access_token"]
        room = _call(config, "POST", "/_matrix/client/v3/createRoom", {"name": "Upgrade"}, token)["room_id"]
        sent = ["bonjour avant la mise à jour", "second message, still 1.99"]
        for i, body in enumerate(sent):
            out = _call(config, "PUT", f"/_matrix/client/v3/rooms/{urllib.request.quote(room)}/send/m.room.message/t{i}",
                        {"msgtype": "m.text", "body": body}, token)
            assert "event_id" in out, out
        assert _history(config, token, room) == sent
    finally:
        old.stop()
    assert _schema(postgres) == (previous.synapse.schema_version, previous.synapse.compat_version)

    # 2. the current release's Synapse starts on it and migrates the schema; the data is intact
    new = Synapse(new_python, config)
    try:
        new.wait_ready()
        token = _login(config)
        assert _history(config, token, room) == sent
    finally:
        new.stop()
    assert _schema(postgres) == (current.synapse.schema_version, current.synapse.compat_version)

    # 3. the previous Synapse refuses the migrated database, and the operator says so from its log tail
    again = Synapse(old_python, config)
    try:
        code = again.proc.wait(120)
    finally:
        again.stop()
    text = again.log.read_text()
    assert code != 0, text[-2000:]
    # what a pod's termination message would hold (FallbackToLogsOnError: the log's tail)
    cause = classify(text[-2048:])
    assert cause is not None, text[-2000:]
    assert cause.reason == "DatabaseSchemaTooNew"
    assert "Cannot use this database as it is too new for the server to understand" in text
