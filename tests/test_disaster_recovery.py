"""Disaster recovery at process level (no cluster, no real node): real PostgreSQL, real Synapse (its own venv,
1.163.2), moto's S3 server, the real backup and restore programs and the operator's own Secrets restore.

A user registers, writes messages and uploads a file; the backup program (as the CronJob runs it) writes two
backups, one before the second message and the file; then EVERYTHING is deleted: the database cluster's
directory, the media store, the signing key and the other generated Secrets. The restore runs as the operator
orders it (reconcile/restore.py): the operator decrypts the Secrets (backup/sealed.py, the country's identity),
the database starts with its restored password, the restore program (identity ``-``, as the restore Job runs
it) fills the EMPTY database and the media store; then Synapse starts. It serves the SAME signing key (key id
and public key from /_matrix/key/v2/server), the same user logs in with the same password, reads the history
and downloads the file. Restoring the earlier backup shows the state at that time: one message, no file.

The same with a whole cluster deleted and re-created, on the real node: tests/cluster/test_real_node_dr.py.
What neither proves (docs/operations.md): federation with another server after the restore. Timing figures (RTO)
printed with -s.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from sovereign_suite.backup.s3 import Client, Credentials
from sovereign_suite.backup.sealed import fetch_secrets

from .processes import stop_process
from .test_backup_program import ACCESS, PG_BIN, ROOT, SECRET, _free_port, _identity, s3_server  # noqa: F401

pytestmark = pytest.mark.slow
SYNAPSE_PY = Path.home() / ".cache/sovereign-suite/synapse-venv-1.163.2/bin/python"
SERVER = "fr.dr.test"
USER, PASSWORD = "marianne", "correct horse battery staple"
PREFIX = "sovereign-suite/eu-workplace/fr/"  # components/backup prefix(): <suite namespace>/<suite>/<cc>/
USER_CMD = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []  # PostgreSQL refuses to run as root


class Postgres:
    """One database cluster directory, its server as ``nobody``, the owner ``synapse`` with ``password``."""

    def __init__(self, base: Path, password: str):
        self.bindir = PG_BIN[-1].parent
        self.dir = base / "pgdata"
        self.port = _free_port()
        self.password = password
        pw = base / "pgpw"
        pw.write_text(password)
        os.chmod(pw, 0o644)
        subprocess.run(USER_CMD + [str(self.bindir / "initdb"), "-D", str(self.dir), "--username=synapse",
                                   f"--pwfile={pw}", "--auth=scram-sha-256", "--lc-collate=C", "--lc-ctype=C",
                                   "--encoding=UTF8"], check=True, capture_output=True)
        pw.unlink()
        subprocess.run(USER_CMD + [str(self.bindir / "pg_ctl"), "-D", str(self.dir), "-l", str(base / "pg.log"),
                                   "-w", "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {base}", "start"],
                       check=True, capture_output=True)
        self.psql("postgres", "CREATE DATABASE synapse")  # empty, as the embedded server's init makes it

    def psql(self, db: str, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": self.password}
        return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", "synapse", "-d", db, "-c", sql], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def stop(self) -> None:
        subprocess.run(USER_CMD + [str(self.bindir / "pg_ctl"), "-D", str(self.dir), "-m", "fast", "-w", "stop"],
                       capture_output=True)


class Synapse:
    def __init__(self, base: Path, pg: Postgres, signing_key: Path, secrets: dict[str, str]):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.media = base / "media"
        cfg = {
            "server_name": SERVER, "public_baseurl": self.url + "/", "report_stats": False,
            "listeners": [{"port": self.port, "type": "http", "tls": False, "bind_addresses": ["127.0.0.1"],
                           "resources": [{"names": ["client", "federation"]}]}],
            "database": {"name": "psycopg2", "args": {"user": "synapse", "password": pg.password,
                                                      "database": "synapse", "host": "127.0.0.1",
                                                      "port": pg.port, "cp_min": 1, "cp_max": 5}},
            "media_store_path": str(self.media), "signing_key_path": str(signing_key),
            "macaroon_secret_key": secrets["macaroon"], "form_secret": secrets["form"],
            "enable_registration": True, "enable_registration_without_verification": True,
            "trusted_key_servers": [], "suppress_key_server_warning": True,
            "rc_message": {"per_second": 1000, "burst_count": 1000},
            "rc_registration": {"per_second": 1000, "burst_count": 1000},
            "rc_login": {k: {"per_second": 1000, "burst_count": 1000} for k in ("address", "account",
                                                                                 "failed_attempts")},
        }
        (base / "homeserver.yaml").write_text(yaml.safe_dump(cfg))
        (base / "log.yaml").write_text(yaml.safe_dump({
            "version": 1, "handlers": {"f": {"class": "logging.FileHandler", "filename": str(base / "synapse.log")}},
            "root": {"level": "WARNING", "handlers": ["f"]}}))
        cfg["log_config"] = str(base / "log.yaml")
        (base / "homeserver.yaml").write_text(yaml.safe_dump(cfg))
        self.log = base / "synapse.log"
        self.proc = subprocess.Popen([str(SYNAPSE_PY), "-m", "synapse.app.homeserver", "--config-path",
                                      str(base / "homeserver.yaml")], cwd=base, stdout=subprocess.DEVNULL,
                                     stderr=open(base / "synapse.err", "wb"))
        deadline = time.monotonic() + 240
        while True:
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=2).read() == b"OK":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = (base / "synapse.err").read_text()[-3000:]
                self.stop()
                pytest.fail(f"Synapse did not start: {err}")
            time.sleep(0.5)

    def call(self, method: str, path: str, body=None, token: str | None = None, raw: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, bytes]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": content_type,
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method: str, path: str, body=None, token: str | None = None) -> dict:
        status, data = self.call(method, path, body, token)
        assert status == 200, (method, path, status, data[:500])
        return json.loads(data)

    def register(self) -> str:
        status, data = self.call("POST", "/_matrix/client/v3/register", {"username": USER, "password": PASSWORD})
        assert status == 401, data  # the flows, and a session for the dummy stage
        session = json.loads(data)["session"]
        return self.json("POST", "/_matrix/client/v3/register", {
            "username": USER, "password": PASSWORD, "auth": {"type": "m.login.dummy", "session": session}
        })["access_token"]

    def login(self) -> tuple[int, dict]:
        status, data = self.call("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": USER}, "password": PASSWORD})
        return status, json.loads(data)

    def server_key(self) -> dict[str, str]:
        return {k: v["key"] for k, v in self.json("GET", "/_matrix/key/v2/server")["verify_keys"].items()}

    def history(self, token: str, room: str) -> list[dict]:
        out = self.json("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50", token=token)
        return [e["content"] for e in reversed(out["chunk"]) if e["type"] == "m.room.message"]

    def stop(self) -> None:
        stop_process(self.proc)


def _backup_config(base: Path, s3: Client, pg: Postgres, media: Path, secrets: Path, recipient: str) -> Path:
    """The configuration the backup CronJob's pod reads (components/backup config()), on this machine's paths."""
    creds = base.parent / "s3creds"  # the country's storage credentials: not the site's, they survive it
    creds.mkdir(exist_ok=True)
    (creds / "AWS_ACCESS_KEY_ID").write_text(ACCESS)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(SECRET)
    (base / "recipient").write_text(recipient)
    cfg = {
        "prefix": PREFIX, "retentionDays": 14, "workDir": str(base), "waitSeconds": 60,
        "s3": {"endpoint": s3.endpoint, "bucket": "fr-backups", "region": "eu-west-3", "credentialsDir": str(creds)},
        "databases": [{"name": "matrix", "host": "127.0.0.1", "port": pg.port, "database": "synapse",
                       "user": "synapse", "passwordFile": str(secrets / "matrix-postgres/password"),
                       "sslMode": "disable", "excludeTableData": ["e2e_one_time_keys_json"]}],
        "directories": [{"name": "matrix-media", "path": str(media),
                         "include": ["local_content", "local_thumbnails"]}],
        "secrets": {"recipientFile": str(base / "recipient"),
                    "dirs": {n: str(secrets / n) for n in ("matrix-postgres", "synapse-keys", "synapse-secrets")}},
    }
    path = base / "backup.json"
    path.write_text(json.dumps(cfg))
    return path


def _program(module: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator"), "TERMINATION_LOG": "/nonexistent/log"}
    run = subprocess.run([sys.executable, "-m", f"sovereign_suite.backup.{module}", *args], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _write_secrets(root: Path, secrets: dict[str, dict[str, bytes]]) -> None:
    """The Secrets as their volumes would hold them (the operator created them; the pods mount them)."""
    for name, keys in secrets.items():
        (root / name).mkdir(parents=True)
        for key, value in keys.items():
            (root / name / key).write_bytes(value)


def _restore(base: Path, s3: Client, identity: str, wanted: str, backup_cfg: dict) -> tuple[Synapse, Postgres, str]:
    """A new site from the backup ``wanted``, in the operator's order: Secrets, empty database started with the
    restored password, the restore program (the Job), then Synapse."""
    base.mkdir()
    os.chmod(base, 0o777)
    bid, secrets = fetch_secrets(s3, PREFIX, wanted, identity)  # the operator (reconcile/restore.py)
    _write_secrets(base / "secrets", secrets)
    pg = Postgres(base, secrets["matrix-postgres"]["password"].decode())
    media = base / "media"
    media.mkdir()
    cfg = json.loads(json.dumps(backup_cfg))  # the tenant's configuration (the operator renders it again)
    cfg["databases"][0].update(port=pg.port, passwordFile=str(base / "secrets/matrix-postgres/password"))
    cfg["directories"][0]["path"] = str(media)
    (base / "restore.json").write_text(json.dumps(cfg))
    result = _program("restore", str(base / "restore.json"), wanted, "-", str(base / "out"))  # the Job
    assert result["id"] == bid and result["databases"] == ["matrix"]
    other = json.loads(secrets["synapse-secrets"]["values.json"])
    return Synapse(base, pg, base / "secrets/synapse-keys/signing.key", other), pg, bid


@pytest.fixture
def site():
    base = Path(tempfile.mkdtemp(prefix="dr-test-"))
    os.chmod(base, 0o777)  # PostgreSQL runs as nobody
    running: list = []
    try:
        yield base, running
    finally:
        for proc in reversed(running):
            proc.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_deleted_site_comes_back_from_its_backups_with_its_key_users_history_and_files(site, s3_server):
    if not SYNAPSE_PY.exists() or not PG_BIN:
        pytest.fail("Synapse's venv or PostgreSQL is missing: hack/install-federation-tools.sh, "
                    "hack/install-backup-tools.sh")
    base, running = site
    s3 = s3_server
    for key, _ in list(s3.list(PREFIX)):
        s3.delete(key)
    identity_path, recipient = _identity(base, "fr-country")
    identity = identity_path.read_text()

    # ---- the live site: generated Secrets (as the operator generates them), PostgreSQL, Synapse -----------------
    live = base / "live"
    live.mkdir()
    os.chmod(live, 0o777)
    secrets = live / "secrets"
    _write_secrets(secrets, {"matrix-postgres": {"password": _random.token_hex(16).encode()},
                             "synapse-secrets": {"values.json": json.dumps(
                                 {"macaroon": _random.token_hex(16), "form": _random.token_hex(16)}).encode()}})
    (secrets / "synapse-keys").mkdir()
    subprocess.run([str(SYNAPSE_PY), "-m", "synapse._scripts.generate_signing_key", "-o",
                    str(secrets / "synapse-keys/signing.key")], check=True)
    pg = Postgres(live, (secrets / "matrix-postgres/password").read_text())
    running.append(pg)
    hs = Synapse(live, pg, secrets / "synapse-keys/signing.key",
                 json.loads((secrets / "synapse-secrets/values.json").read_text()))
    running.append(hs)
    key = hs.server_key()
    token = hs.register()
    room = hs.json("POST", "/_matrix/client/v3/createRoom", {"name": "Conseil"}, token)["room_id"]
    hs.json("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t1",
            {"msgtype": "m.text", "body": "message one"}, token)
    backup_cfg = _backup_config(live, s3, pg, hs.media, secrets, recipient)
    first = _program("program", str(backup_cfg))["id"]
    time.sleep(1.1)  # backup ids are the start second
    hs.json("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t2",
            {"msgtype": "m.text", "body": "message two"}, token)
    document = b"%PDF-1.4 minutes of the council\n" + _random.token_bytes(40_000)
    status, data = hs.call("POST", "/_matrix/media/v3/upload?filename=minutes.pdf", raw=document, token=token,
                           content_type="application/pdf")
    assert status == 200, data
    mxc = json.loads(data)["content_uri"]
    hs.json("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t3",
            {"msgtype": "m.file", "body": "minutes.pdf", "url": mxc}, token)
    started = time.monotonic()
    second = _program("program", str(backup_cfg))["id"]
    backup_seconds = time.monotonic() - started
    assert second > first

    # ---- the disaster: every process stopped, every file of the site deleted ------------------------------------
    backup_cfg = json.loads(backup_cfg.read_text())
    hs.stop()
    pg.stop()
    running.clear()
    shutil.rmtree(live)
    assert not live.exists()

    # ---- restore the latest backup into a new site -------------------------------------------------------------
    started = time.monotonic()
    hs2, pg2, used = _restore(base / "restored", s3, identity, "latest", backup_cfg)
    running += [pg2, hs2]
    restore_seconds = time.monotonic() - started
    assert used == second
    assert hs2.server_key() == key  # the same key id and public key: other servers still verify it
    status, login = hs2.login()
    assert status == 200, login
    token2 = login["access_token"]
    assert [(c["msgtype"], c["body"]) for c in hs2.history(token2, room)] == [
        ("m.text", "message one"), ("m.text", "message two"), ("m.file", "minutes.pdf")]
    media_id = mxc.removeprefix(f"mxc://{SERVER}/")
    status, got = hs2.call("GET", f"/_matrix/client/v1/media/download/{SERVER}/{media_id}", token=token2)
    assert status == 200 and got == document
    # Synapse's advice applied: no one-time key came back to be handed out twice
    assert pg2.psql("synapse", "SELECT count(*) FROM e2e_one_time_keys_json") == "0"
    hs2.stop()
    pg2.stop()
    running.clear()

    # ---- the earlier backup: the state at that time -------------------------------------------------------------
    hs3, pg3, used = _restore(base / "earlier", s3, identity, first, backup_cfg)
    running += [pg3, hs3]
    assert used == first and hs3.server_key() == key
    status, login = hs3.login()
    assert status == 200, login
    token3 = login["access_token"]
    assert [c["body"] for c in hs3.history(token3, room)] == ["message one"]
    status, _ = hs3.call("GET", f"/_matrix/client/v1/media/download/{SERVER}/{media_id}", token=token3)
    assert status == 404
    sizes = {o["key"]: o["bytes"] for o in json.loads(s3.get(f"{PREFIX}{second}/manifest.json"))["objects"]}
    print(f"\nDR figures: backup run {backup_seconds:.1f} s, restore to a serving Synapse {restore_seconds:.1f} s, "
          f"backup size {sum(sizes.values())} bytes {sizes}")
