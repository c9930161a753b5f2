"""Restoring a backup (backup/restore.py) for real: the backup program's output on moto's S3 server, restored
with pg_restore into a fresh database of Debian's PostgreSQL and the Secrets decrypted with the country's age
identity; refused, with the reason, for a missing, incomplete or corrupt backup, a non-empty database and another
country's identity. Fixtures: tests/test_backup_program.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .test_backup_program import PASSWORD, ROOT, _clear, _identity, _run, postgres, s3_server, setup  # noqa: F401


def _restore(cfg_path: Path, wanted: str, identity: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    return subprocess.run([sys.executable, "-m", "sovereign_suite.backup.restore", str(cfg_path), wanted,
                           str(identity), str(out)], env=env, capture_output=True, text=True, timeout=120)


def _target(setup, postgres, name: str) -> Path:
    """A config whose database is a fresh, empty one named ``name``, and its media directory a fresh one."""
    postgres["psql"]("postgres", f"DROP DATABASE IF EXISTS {name}")
    postgres["psql"]("postgres", f"CREATE DATABASE {name}")
    media = setup["tmp"] / f"media-{name}"
    media.mkdir(exist_ok=True)
    cfg = dict(setup["cfg"], databases=[dict(setup["cfg"]["databases"][0], database=name)],
               directories=[dict(setup["cfg"]["directories"][0], path=str(media))])
    path = setup["tmp"] / f"restore-{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def test_latest_backup_restores_into_an_empty_database_with_its_secrets(setup, s3_server, postgres):
    _clear(s3_server, "eu-workplace/")
    made = _run(setup["path"], setup["tmp"])
    assert made.returncode == 0, made.stderr
    bid = json.loads(made.stdout)["id"]
    out = setup["tmp"] / "restored"
    run = _restore(_target(setup, postgres, "fresh"), "latest", setup["key"], out)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == {"id": bid, "databases": ["matrix"],
                      "secrets": ["matrix-postgres/password", "synapse-keys/signing.key"],
                      "directories": {"matrix-media": ["local_content", "local_thumbnails"]}}
    media = setup["tmp"] / "media-fresh"
    assert (media / "local_content/ab/cd/upload").read_bytes() == b"PDF of the minister"
    assert (media / "local_thumbnails/ab/cd/32-32").read_bytes() == b"thumb"
    assert not (media / "remote_content").exists()
    assert postgres["psql"]("fresh", "SELECT body FROM events ORDER BY id").splitlines() == [
        "hello from Paris", "second message"]
    assert postgres["psql"]("fresh", "SELECT count(*) FROM e2e_one_time_keys_json") == "0"
    assert (out / "secrets/synapse-keys/signing.key").read_text() == "ed25519 a_bcd SIGNINGKEYSEED"
    assert (out / "secrets/matrix-postgres/password").read_text() == PASSWORD
    assert oct((out / "secrets/synapse-keys/signing.key").stat().st_mode & 0o777) == "0o600"


def test_a_restore_never_writes_over_data_nor_from_a_bad_backup(setup, s3_server, postgres):
    _clear(s3_server, "eu-workplace/")
    made = _run(setup["path"], setup["tmp"])
    assert made.returncode == 0, made.stderr
    bid = json.loads(made.stdout)["id"]
    key = setup["key"]

    # over the live database (not empty): refused
    run = _restore(setup["path"], bid, key, setup["tmp"] / "o1")
    assert run.returncode == 1 and "is not empty" in run.stderr and "never restored over" in run.stderr

    # media over a non-empty media directory: refused before anything is written (the database stays empty)
    target = _target(setup, postgres, "fresh1")
    (setup["tmp"] / "media-fresh1/local_content").mkdir()
    (setup["tmp"] / "media-fresh1/local_content/live").write_text("live upload")
    run = _restore(target, bid, key, setup["tmp"] / "o1b")
    assert run.returncode == 1 and "local_content is not empty: never restored over" in run.stderr
    assert (setup["tmp"] / "media-fresh1/local_content/live").read_text() == "live upload"
    assert postgres["psql"]("fresh1", "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'") == "0"

    # a backup that does not exist, a name that is no id
    run = _restore(_target(setup, postgres, "fresh2"), "20200101T000000Z", key, setup["tmp"] / "o2")
    assert run.returncode == 1 and "backup 20200101T000000Z not found" in run.stderr
    run = _restore(_target(setup, postgres, "fresh2"), "../other", key, setup["tmp"] / "o2b")
    assert run.returncode == 1 and "is not a backup id" in run.stderr

    # another country's identity: the Secrets stay sealed, and nothing is written to the database
    other, _ = _identity(setup["tmp"], "other-country")
    run = _restore(_target(setup, postgres, "fresh3"), bid, other, setup["tmp"] / "o3")
    assert run.returncode == 1 and "cannot be decrypted with this identity" in run.stderr
    assert postgres["psql"]("fresh3", "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'") == "0"

    # corrupt: one byte of the dump changed in the bucket; nothing reaches the database
    prefix = f"eu-workplace/fr/{bid}/"
    dump = bytearray(s3_server.get(prefix + "postgres-matrix.dump"))
    dump[-1] ^= 0xFF
    s3_server.put_bytes(prefix + "postgres-matrix.dump", bytes(dump))
    target = _target(setup, postgres, "fresh4")
    run = _restore(target, bid, key, setup["tmp"] / "o4")
    assert run.returncode == 1 and "postgres-matrix.dump is corrupt" in run.stderr
    assert postgres["psql"]("fresh4", "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'") == "0"

    # incomplete: the manifest is gone (a run that never finished)
    s3_server.delete(prefix + "manifest.json")
    run = _restore(target, bid, key, setup["tmp"] / "o5")
    assert run.returncode == 1 and "is incomplete" in run.stderr
    run = _restore(target, "latest", key, setup["tmp"] / "o6")
    assert run.returncode == 1 and "no complete backup" in run.stderr
