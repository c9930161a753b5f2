"""Restoring one backup the program wrote (``python3 -m sovereign_suite.backup.restore CONFIG ID|latest IDENTITY|- OUT``):
what the operator's restore Job runs (components/backup/restore_job.py) for a tenant created with
``backups.restoreFrom``, and what a platform team runs by hand (docs/operations.md).

It refuses rather than guesses, so that a tenant never silently starts fresh:

- the backup must exist and be complete (its ``manifest.json``), ``latest`` is the newest complete one;
- every object must match the SHA-256 the manifest recorded (a corrupt or truncated object is refused before
  anything is written);
- a database is restored only into an EMPTY database (no table outside the system schemas): Synapse's guide
  (docs/usage/administration/backups.md, v1.163.2) forbids restoring over an existing one;
- media are extracted only into directories that are empty (or absent), and only the entries the program
  writes (regular files and directories under the listed subdirectories);
- the Secrets archive is decrypted with the country's age identity into ``OUT/secrets/<secret>/<key>``, where the
  caller (an operator by hand) makes the Secrets from them before any application starts. IDENTITY ``-``: the
  Secrets are not this run's to restore (the operator restored them itself, reconcile/restore_secrets.py).

The databases may still be starting (the restore Job is applied with them): each is waited for, up to
``waitSeconds`` (default 600), before anything is written. Standard library only, like program.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from .program import ID_RE, MANIFEST, BackupError, _read, backup_ids, client
from .s3 import Client, S3Error


class RestoreError(BackupError):
    pass


def resolve(s3: Client, prefix: str, wanted: str) -> str:
    ids = backup_ids(s3, prefix)
    if wanted == "latest":
        complete = sorted(b for b, ok in ids.items() if ok)
        if not complete:
            raise RestoreError(f"no complete backup under {prefix}")
        return complete[-1]
    if not ID_RE.match(wanted):
        raise RestoreError(f"{wanted!r} is not a backup id (e.g. 20261203T020000Z) nor 'latest'")
    if wanted not in ids:
        raise RestoreError(f"backup {wanted} not found under {prefix}")
    if not ids[wanted]:
        raise RestoreError(f"backup {wanted} is incomplete (no {MANIFEST}): it never finished")
    return wanted


def fetch_verified(s3: Client, prefix: str, bid: str, out: Path) -> dict[str, Any]:
    """Every object of the backup into ``out``, checked against the manifest; the manifest."""
    manifest = json.loads(s3.get(f"{prefix}{bid}/{MANIFEST}"))
    for obj in manifest["objects"]:
        name = obj["key"]
        if "/" in name or name.startswith("."):
            raise RestoreError(f"backup {bid}: object name {name!r} is not one the program writes")
        (out / name).write_bytes(read_checked(s3, prefix, bid, obj))
    return manifest


def read_checked(s3: Client, prefix: str, bid: str, entry: dict[str, Any]) -> bytes:
    """One object of backup ``bid``, as its manifest ``entry`` describes it (key, sha256, bytes); RestoreError when
    it cannot be read or differs."""
    name = entry["key"]
    try:
        data = s3.get(f"{prefix}{bid}/{name}")
    except S3Error as err:
        raise RestoreError(f"backup {bid}: {name} cannot be read ({err})") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["bytes"]:
        raise RestoreError(f"backup {bid}: {name} is corrupt (its SHA-256 or size differs from the manifest)")
    return data


def _psql(db: dict[str, Any], sql: str) -> str:
    env = {**os.environ, "PGPASSWORD": _read(db["passwordFile"]), "PGSSLMODE": db.get("sslMode", "prefer"),
           **({"PGSSLROOTCERT": db["sslRootCert"]} if db.get("sslRootCert") else {})}
    run = subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-Atq", "-h", db["host"], "-p", str(db["port"]),
                          "-U", db["user"], "-d", db["database"], "-c", sql], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RestoreError(f"database {db['name']}: {run.stderr.strip()[-500:]}")
    return run.stdout.strip()


def wait_for_database(db: dict[str, Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            _psql(db, "SELECT 1")
            return
        except RestoreError as err:
            if time.monotonic() >= deadline:
                raise RestoreError(f"database {db['name']} did not answer within {seconds:.0f} s: {err}") from None
            time.sleep(2)


def check_directory_empty(spec: dict[str, Any]) -> None:
    root = Path(spec["path"])
    if not root.is_dir():
        raise RestoreError(f"{spec['name']}: {root} is not a directory (volume not mounted?)")
    for sub in spec["include"]:
        if (root / sub).exists() and any((root / sub).iterdir()):
            raise RestoreError(f"{spec['name']}: {root / sub} is not empty: never restored over")


def restore_directories(spec: dict[str, Any], archive: Path) -> list[str]:
    """Extract ``archive`` (files-<name>.tar) into ``spec['path']``: only into empty subdirectories, and only
    regular files and directories under ``spec['include']``. Returns the subdirectories restored."""
    root = Path(spec["path"])
    check_directory_empty(spec)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            top = m.name.split("/", 1)[0]
            if (top not in spec["include"] or m.name.startswith("/") or ".." in m.name.split("/")
                    or not (m.isfile() or m.isdir())):
                raise RestoreError(f"{spec['name']}: unexpected entry {m.name!r} in the archive")
        for m in members:  # checked above: plain files and directories inside root only
            target = root / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "xb") as dst:  # type: ignore[union-attr]
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
    return sorted({m.name.split("/", 1)[0] for m in members})


def restore_database(db: dict[str, Any], dump: Path) -> None:
    tables = _psql(db, "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN "
                       "('pg_catalog', 'information_schema')")
    if tables != "0":
        raise RestoreError(f"database {db['name']} is not empty ({tables} tables): never restored over")
    env = {**os.environ, "PGPASSWORD": _read(db["passwordFile"]), "PGSSLMODE": db.get("sslMode", "prefer"),
           **({"PGSSLROOTCERT": db["sslRootCert"]} if db.get("sslRootCert") else {})}
    run = subprocess.run(["pg_restore", "--exit-on-error", "--no-owner", "--no-password", "-h", db["host"],
                          "-p", str(db["port"]), "-U", db["user"], "-d", db["database"], str(dump)],
                         env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RestoreError(f"pg_restore of {db['name']} failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")


def decrypt_secrets(sealed: Path, identity: str, out: Path) -> list[str]:
    run = subprocess.run(["age", "--decrypt", "--identity", identity, str(sealed)], capture_output=True)
    if run.returncode != 0:
        raise RestoreError(f"the Secrets archive cannot be decrypted with this identity: "
                           f"{run.stderr.decode(errors='replace').strip()[-300:]}")
    names = []
    with tarfile.open(fileobj=io.BytesIO(run.stdout)) as tar:
        for member in tar.getmembers():
            secret, _, key = member.name.partition("/")
            if not member.isfile() or not secret or not key or "/" in key or ".." in member.name:
                raise RestoreError(f"unexpected entry {member.name!r} in the Secrets archive")
            target = out / secret
            target.mkdir(parents=True, exist_ok=True, mode=0o700)
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            fd = os.open(target / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            names.append(member.name)
    return sorted(names)


def run_restore(cfg: dict[str, Any], wanted: str, identity: str, out: Path) -> dict[str, Any]:
    s3 = client(cfg)
    prefix = cfg["prefix"]
    bid = resolve(s3, prefix, wanted)
    fetched = out / "objects"
    fetched.mkdir(parents=True, exist_ok=True)
    manifest = fetch_verified(s3, prefix, bid, fetched)  # nothing is written to a database before this passes
    keys = {o["key"] for o in manifest["objects"]}
    missing = [db["name"] for db in cfg.get("databases", []) if f"postgres-{db['name']}.dump" not in keys]
    if missing:
        raise RestoreError(f"backup {bid} holds no dump of {', '.join(missing)}")
    missing = [d["name"] for d in cfg.get("directories", []) if f"files-{d['name']}.tar" not in keys]
    if missing:
        raise RestoreError(f"backup {bid} holds no archive of {', '.join(missing)}")
    # the Secrets first: a wrong identity is found before any database is written
    secrets = []
    if "secrets.tar.age" in keys and identity != "-":
        secrets = decrypt_secrets(fetched / "secrets.tar.age", identity, out / "secrets")
    for spec in cfg.get("directories", []):  # before any database is written: nothing half-restored
        check_directory_empty(spec)
    for db in cfg.get("databases", []):
        wait_for_database(db, float(cfg.get("waitSeconds", 600)))
    restored = []
    for db in cfg.get("databases", []):
        restore_database(db, fetched / f"postgres-{db['name']}.dump")
        restored.append(db["name"])
    media = {}
    for spec in cfg.get("directories", []):
        media[spec["name"]] = restore_directories(spec, fetched / f"files-{spec['name']}.tar")
    return {"id": bid, "databases": restored, "secrets": secrets, **({"directories": media} if media else {})}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print("usage: python3 -m sovereign_suite.backup.restore CONFIG.json ID|latest IDENTITY|- OUTDIR",
              file=sys.stderr)
        return 2
    cfg = json.loads(Path(args[0]).read_text())
    try:
        result = run_restore(cfg, args[1], args[2], Path(args[3]))
    except (BackupError, S3Error, OSError) as err:
        print(f"restore refused: {err}", file=sys.stderr)
        log = os.environ.get("TERMINATION_LOG", "/dev/termination-log")
        if os.path.exists(os.path.dirname(log) or "."):
            try:  # the reason, for the suite's condition (RestoreFailed)
                Path(log).write_text(f"restore refused: {err}"[:1000])
            except OSError:
                pass
        return 1
    print(json.dumps(result))
    log = os.environ.get("TERMINATION_LOG", "/dev/termination-log")
    if os.path.exists(os.path.dirname(log) or "."):
        try:  # the operator reads the backup id used from the Job's pod (status.tenants[].restore)
            Path(log).write_text(json.dumps({"id": result["id"]}))
        except OSError:
            pass  # outside a container: no termination message file
    return 0


if __name__ == "__main__":
    sys.exit(main())
