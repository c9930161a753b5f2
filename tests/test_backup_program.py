"""The backup program for real: Debian's PostgreSQL (a server started here), moto's S3 server, Debian's age.

The program runs as a process, as the CronJob runs it, and the test reads back what landed in the bucket: the dump
restores with pg_restore into a fresh database (Synapse's one-time keys excluded), the media archive holds
local_content and local_thumbnails only, the Secrets archive is age ciphertext that the country's identity opens
and another identity does not, retention deletes expired backups but never the newest complete one, and a failed
run leaves nothing that looks like a backup. Tools: hack/install-backup-tools.sh (a prerequisite of `make test`).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from sovereign_suite.backup import program
from sovereign_suite.backup.s3 import Client

from .processes import free_port as _free_port
from .s3_server import moto_bucket

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
ACCESS, SECRET = "AKIDBACKUPTEST", "backup-test-secret-key"
PASSWORD = "pg-test-password-4b1d"



def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: run hack/install-backup-tools.sh")
    return path


@pytest.fixture(scope="module")
def s3_server():
    with moto_bucket("fr-backups", "eu-west-3", ACCESS, SECRET) as client:
        yield client


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    if not PG_BIN:
        pytest.fail("PostgreSQL is missing: run hack/install-backup-tools.sh")
    bindir = PG_BIN[-1].parent
    # not under pytest's tmp folder: it is 0700 (root's), and the server runs as nobody
    base = Path(tempfile.mkdtemp(prefix="backup-test-pg-"))
    os.chmod(base, 0o777)
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD)
    os.chmod(pwfile, 0o644)
    port = _free_port()
    user = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []  # PostgreSQL refuses to run as root
    subprocess.run(user + [str(bindir / "initdb"), "-D", str(base / "data"), "--username=synapse",
                           f"--pwfile={pwfile}", "--auth=scram-sha-256", "--lc-collate=C", "--lc-ctype=C",
                           "--encoding=UTF8"], check=True, capture_output=True, text=True)
    subprocess.run(user + [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "log"), "-w", "-o",
                           f"-c listen_addresses=127.0.0.1 -p {port} -k {base}", "start"], check=True, capture_output=True)
    env = {**os.environ, "PGPASSWORD": PASSWORD, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "synapse"}

    def psql(db: str, sql: str) -> str:
        return subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-Atq", "-d", db, "-c", sql], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    try:
        psql("postgres", "CREATE DATABASE synapse")
        psql("synapse", "CREATE TABLE events (id serial PRIMARY KEY, body text NOT NULL);"
                        "INSERT INTO events (body) VALUES ('hello from Paris'), ('second message');"
                        "CREATE TABLE e2e_one_time_keys_json (user_id text, key_id text, key_json text);"
                        "INSERT INTO e2e_one_time_keys_json VALUES ('@a:fr', 'k1', '{}'), ('@b:fr', 'k2', '{}')")
        yield {"port": port, "env": env, "psql": psql, "pwfile": pwfile}
    finally:
        subprocess.run(user + [str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _identity(dirpath: Path, name: str) -> tuple[Path, str]:
    key = dirpath / f"{name}.key"
    subprocess.run([_tool("age-keygen"), "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run([_tool("age-keygen"), "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    return key, recipient


def _mounted_secret(dirpath: Path, data: dict[str, str]) -> Path:
    """A Secret volume as the kubelet lays it out: ..<timestamp>/<key>, ..data -> it, <key> -> ..data/<key>."""
    stamp = dirpath / "..2026_12_03_02_00_00.000000001"
    stamp.mkdir(parents=True)
    for k, v in data.items():
        (stamp / k).write_text(v)
    (dirpath / "..data").symlink_to(stamp.name)
    for k in data:
        (dirpath / k).symlink_to(f"..data/{k}")
    return dirpath


@pytest.fixture
def setup(tmp_path, s3_server, postgres):
    creds = tmp_path / "s3"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text(ACCESS)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(SECRET)
    media = tmp_path / "media"
    for sub, name, data in (("local_content/ab/cd", "upload", b"PDF of the minister"),
                            ("local_thumbnails/ab/cd", "32-32", b"thumb"),
                            ("remote_content/de", "cached", b"remote media: not ours to keep")):
        (media / sub).mkdir(parents=True)
        (media / sub / name).write_bytes(data)
    key, recipient = _identity(tmp_path, "fr")
    (tmp_path / "recipient").write_text(recipient + "\n")
    keys = _mounted_secret(tmp_path / "secrets/synapse-keys", {"signing.key": "ed25519 a_bcd SIGNINGKEYSEED"})
    dbpw = _mounted_secret(tmp_path / "secrets/matrix-postgres", {"password": PASSWORD})
    cfg = {
        "prefix": "eu-workplace/fr/", "retentionDays": 7, "workDir": str(tmp_path),
        "s3": {"endpoint": s3_server.endpoint, "bucket": "fr-backups", "region": "eu-west-3",
               "credentialsDir": str(creds)},
        "databases": [{"name": "matrix", "host": "127.0.0.1", "port": postgres["port"], "database": "synapse",
                       "user": "synapse", "passwordFile": str(postgres["pwfile"]), "sslMode": "disable",
                       "excludeTableData": ["e2e_one_time_keys_json"]}],
        "directories": [{"name": "matrix-media", "path": str(media), "include": ["local_content", "local_thumbnails"]}],
        "secrets": {"recipientFile": str(tmp_path / "recipient"),
                    "dirs": {"synapse-keys": str(keys), "matrix-postgres": str(dbpw)}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return {"cfg": cfg, "path": path, "key": key, "tmp": tmp_path}


def _run(path: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TERMINATION_LOG": str(tmp / "termination-log"),
           "PYTHONPATH": str(ROOT / "operator")}
    return subprocess.run([sys.executable, "-m", "sovereign_suite.backup.program", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)


def _clear(s3: Client, prefix: str) -> None:
    for key, _ in list(s3.list(prefix)):
        s3.delete(key)


def test_backup_restores_excludes_one_time_keys_and_encrypts_secrets(setup, s3_server, postgres):
    _clear(s3_server, "eu-workplace/")
    run = _run(setup["path"], setup["tmp"])
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    prefix = f"eu-workplace/fr/{result['id']}/"
    keys = dict(s3_server.list(prefix))
    assert set(keys) == {prefix + n for n in ("postgres-matrix.dump", "files-matrix-media.tar", "secrets.tar.age",
                                              "manifest.json")}
    manifest = json.loads(s3_server.get(prefix + "manifest.json"))
    assert {o["key"]: o["bytes"] for o in manifest["objects"]} == {
        k[len(prefix):]: v for k, v in keys.items() if not k.endswith("manifest.json")}
    assert result["bytes"] == sum(o["bytes"] for o in manifest["objects"])
    assert json.loads((setup["tmp"] / "termination-log").read_text()) == {"id": result["id"], "bytes": result["bytes"]}

    # the dump restores into a fresh database: the messages are there, the one-time keys' rows are not
    dump = setup["tmp"] / "restore.dump"
    dump.write_bytes(s3_server.get(prefix + "postgres-matrix.dump"))
    postgres["psql"]("postgres", "DROP DATABASE IF EXISTS restored")
    postgres["psql"]("postgres", "CREATE DATABASE restored")
    subprocess.run(["pg_restore", "--exit-on-error", "--no-owner", "-d", "restored", str(dump)],
                   env=postgres["env"], check=True, capture_output=True)
    assert postgres["psql"]("restored", "SELECT body FROM events ORDER BY id").splitlines() == [
        "hello from Paris", "second message"]
    assert postgres["psql"]("restored", "SELECT count(*) FROM e2e_one_time_keys_json") == "0"
    assert postgres["psql"]("synapse", "SELECT count(*) FROM e2e_one_time_keys_json") == "2"  # source untouched

    # media: local content and thumbnails, not the remote cache
    with tarfile.open(fileobj=io.BytesIO(s3_server.get(prefix + "files-matrix-media.tar"))) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
        assert names == {"local_content/ab/cd/upload", "local_thumbnails/ab/cd/32-32"}
        assert tar.extractfile("local_content/ab/cd/upload").read() == b"PDF of the minister"

    # Secrets: never in clear in the bucket; the country's identity opens them, another identity does not
    sealed = s3_server.get(prefix + "secrets.tar.age")
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert PASSWORD.encode() not in sealed and b"SIGNINGKEYSEED" not in sealed
    (setup["tmp"] / "sealed.age").write_bytes(sealed)
    opened = subprocess.run([_tool("age"), "-d", "-i", str(setup["key"]), str(setup["tmp"] / "sealed.age")],
                            capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(opened)) as tar:
        assert tar.extractfile("synapse-keys/signing.key").read() == b"ed25519 a_bcd SIGNINGKEYSEED"
        assert tar.extractfile("matrix-postgres/password").read() == PASSWORD.encode()
        assert not any(".." in m.name for m in tar.getmembers())
    other, _ = _identity(setup["tmp"], "de")
    denied = subprocess.run([_tool("age"), "-d", "-i", str(other), str(setup["tmp"] / "sealed.age")],
                            capture_output=True, text=True)
    assert denied.returncode != 0 and "no identity matched" in denied.stderr
    assert not list(setup["tmp"].glob("tmp*/secrets.tar"))  # the clear tar did not outlive the run


def _fake_backup(s3: Client, prefix: str, when: dt.datetime, complete: bool) -> str:
    bid = when.strftime(program.ID_FORMAT)
    s3.put_bytes(f"{prefix}{bid}/postgres-matrix.dump", b"x")
    if complete:
        s3.put_bytes(f"{prefix}{bid}/manifest.json", b"{}")
    return bid


def test_retention_deletes_expired_backups_and_incomplete_ones(setup, s3_server):
    _clear(s3_server, "eu-workplace/")
    now = dt.datetime.now(dt.timezone.utc)
    old = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=30), True)
    stale = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=20), False)
    recent = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=2), True)
    other = _fake_backup(s3_server, "eu-workplace/de/", now - dt.timedelta(days=30), True)  # another tenant's
    run = _run(setup["path"], setup["tmp"])
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert sorted(result["expired"]) == sorted([old, stale])
    assert set(program.backup_ids(s3_server, "eu-workplace/fr/")) == {recent, result["id"]}
    assert set(program.backup_ids(s3_server, "eu-workplace/de/")) == {other}


def test_retention_keeps_the_newest_complete_backup_however_old(s3_server):
    _clear(s3_server, "eu-workplace/")
    now = dt.datetime.now(dt.timezone.utc)
    older = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=60), True)
    newest = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=40), True)
    broken = _fake_backup(s3_server, "eu-workplace/fr/", now - dt.timedelta(days=35), False)
    assert sorted(program.apply_retention(s3_server, "eu-workplace/fr/", 7, now)) == sorted([older, broken])
    assert program.backup_ids(s3_server, "eu-workplace/fr/") == {newest: True}


def test_a_failed_run_leaves_no_backup(setup, s3_server, postgres):
    _clear(s3_server, "eu-workplace/")
    cfg = dict(setup["cfg"])
    cfg["directories"] = [{"name": "matrix-media", "path": str(setup["tmp"] / "not-mounted"), "include": ["x"]}]
    path = setup["tmp"] / "broken.json"
    path.write_text(json.dumps(cfg))
    run = _run(path, setup["tmp"])
    assert run.returncode == 1 and "is not a directory" in run.stderr
    assert list(s3_server.list("eu-workplace/")) == []  # the dump uploaded before the failure was deleted

    wrong = setup["tmp"] / "wrong-pw"
    wrong.write_text("not-the-password")
    cfg = dict(setup["cfg"], databases=[dict(setup["cfg"]["databases"][0], passwordFile=str(wrong))])
    path.write_text(json.dumps(cfg))
    run = _run(path, setup["tmp"])
    assert run.returncode == 1 and "pg_dump of matrix failed" in run.stderr
    assert list(s3_server.list("eu-workplace/")) == []


def test_a_recipient_that_is_not_age_is_refused(setup, s3_server):
    _clear(s3_server, "eu-workplace/")
    (setup["tmp"] / "recipient").write_text("ssh-rsa AAAA not-an-age-recipient\n")
    run = _run(setup["path"], setup["tmp"])
    assert run.returncode == 1 and "not an age X25519 recipient" in run.stderr
    assert list(s3_server.list("eu-workplace/")) == []
