"""The backup program a tenant's backup CronJob runs (``python3 -m sovereign_suite.backup.program CONFIG``).

One run makes one backup, ``<prefix><id>/`` in the country's bucket (``id``: the UTC start time,
``20261203T020000Z``):

- ``postgres-<name>.dump``: ``pg_dump -Fc`` of each embedded database (custom format: ``pg_restore`` restores it
  into an empty database, table by table). Synapse's ``e2e_one_time_keys_json`` is dumped without its rows, as
  Synapse's backup guide advises (element-hq/synapse docs/usage/administration/backups.md, v1.163.2: one-time
  keys handed out twice break end-to-end sessions, so a restored server must not hand out old ones);
- ``files-<name>.tar``: directories of a volume (Synapse's ``local_content`` and ``local_thumbnails``);
- ``secrets.tar.age``: the generated Secrets (database passwords, Synapse's signing key, gateway keys), a tar
  encrypted with `age` to the country's recipient (age-encryption.org/v1): the bucket never holds them in clear,
  and only the holder of the country's identity can read them;
- ``manifest.json``, written LAST: what the backup holds (key, size, SHA-256 of each object). A backup without
  a manifest is incomplete and never counts (nor is it restored).

Then retention: every backup whose id is older than ``retentionDays`` is deleted, except the newest complete one
(an expired schedule never leaves a country without a backup). A failed run deletes what it uploaded and exits
non-zero: the Job fails, the CronJob's ``lastSuccessfulTime`` does not move, and the alert fires in time.

On success it writes ``{"id", "bytes"}`` to the container's termination message file (``/dev/termination-log``),
where the operator reads the backup's size (no API access, no Kubernetes credentials in the backup pod).

Standard library only (runs in the backup image: Debian's Python, PostgreSQL client and age).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .s3 import Client, Credentials, S3Error

ID_FORMAT = "%Y%m%dT%H%M%SZ"
ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
MANIFEST = "manifest.json"
# An age X25519 recipient: Bech32, human-readable part "age" (age-encryption.org/v1, "The X25519 recipient type").
RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
FORMAT_VERSION = 1


class BackupError(Exception):
    pass


def _read(path: str) -> str:
    return Path(path).read_text().strip()


def client(cfg: dict[str, Any]) -> Client:
    s3 = cfg["s3"]
    creds = Credentials(_read(os.path.join(s3["credentialsDir"], "AWS_ACCESS_KEY_ID")),
                        _read(os.path.join(s3["credentialsDir"], "AWS_SECRET_ACCESS_KEY")))
    return Client(s3["endpoint"].rstrip("/"), s3["bucket"], s3.get("region") or "us-east-1", creds)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def dump_database(db: dict[str, Any], out: Path) -> None:
    env = {**os.environ, "PGPASSWORD": _read(db["passwordFile"]), "PGSSLMODE": db.get("sslMode", "prefer"),
           **({"PGSSLROOTCERT": db["sslRootCert"]} if db.get("sslRootCert") else {}),
           "PGCONNECT_TIMEOUT": "30"}
    cmd = ["pg_dump", "-Fc", "--no-password", "-h", db["host"], "-p", str(db["port"]), "-U", db["user"],
           "-d", db["database"], "-f", str(out)]
    cmd[2:2] = [f"--exclude-table-data={t}" for t in db.get("excludeTableData", [])]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise BackupError(f"pg_dump of {db['name']} failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")


def archive_directories(spec: dict[str, Any], out: Path) -> None:
    root = Path(spec["path"])
    if not root.is_dir():
        raise BackupError(f"{spec['name']}: {root} is not a directory (volume not mounted?)")
    with tarfile.open(out, "w") as tar:
        for sub in spec["include"]:
            if (root / sub).exists():  # a fresh server has no thumbnails yet
                tar.add(root / sub, arcname=sub)


def encrypt_secrets(spec: dict[str, Any], work: Path, out: Path) -> None:
    recipient = _read(spec["recipientFile"])
    if not RECIPIENT_RE.match(recipient):
        raise BackupError("the encryption recipient is not an age X25519 recipient (age1...): refusing to write "
                          "the Secrets")
    plain = Path(spec.get("workDir") or work) / "secrets.tar"  # memory-backed in the pod (an emptyDir)
    with tarfile.open(plain, "w") as tar:
        for name, path in sorted(spec["dirs"].items()):
            for f in sorted(Path(path).iterdir()):
                # a mounted Secret's keys are symlinks to ..data/<key>; the ..-prefixed entries are the mount's own
                if not f.name.startswith(".."):
                    tar.add(f.resolve(), arcname=f"{name}/{f.name}", recursive=False)
    try:
        run = subprocess.run(["age", "--encrypt", "--recipient", recipient, "--output", str(out), str(plain)],
                             capture_output=True, text=True)
    finally:
        plain.unlink()  # the clear tar lives only in the pod's memory-backed scratch volume, and only this long
    if run.returncode != 0:
        raise BackupError(f"age failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")


def backup_ids(s3: Client, prefix: str) -> dict[str, bool]:
    """backup id -> complete (has its manifest), for every backup under ``prefix``."""
    out: dict[str, bool] = {}
    for key, _ in s3.list(prefix):
        bid, _, rest = key[len(prefix):].partition("/")
        if ID_RE.match(bid):
            out[bid] = out.get(bid, False) or rest == MANIFEST
    return out


def apply_retention(s3: Client, prefix: str, days: int, now: dt.datetime) -> list[str]:
    ids = backup_ids(s3, prefix)
    complete = sorted(b for b, ok in ids.items() if ok)
    keep = complete[-1] if complete else None
    cutoff = (now - dt.timedelta(days=days)).strftime(ID_FORMAT)
    expired = sorted(b for b in ids if b < cutoff and b != keep)  # ids sort as times
    for bid in expired:
        delete_backup(s3, prefix, bid)
    return expired


def delete_backup(s3: Client, prefix: str, bid: str) -> None:
    keys = [k for k, _ in s3.list(f"{prefix}{bid}/")]
    # the manifest first: a backup half deleted is incomplete, never mistaken for a whole one
    for key in sorted(keys, key=lambda k: not k.endswith("/" + MANIFEST)):
        s3.delete(key)


def run_backup(cfg: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.timezone.utc)
    bid = now.strftime(ID_FORMAT)
    prefix = cfg["prefix"]
    s3 = client(cfg)
    uploaded: list[str] = []
    objects: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=cfg.get("workDir")) as tmp:
        work = Path(tmp)

        def upload(name: str, path: Path, kind: str) -> None:
            key = f"{prefix}{bid}/{name}"
            uploaded.append(key)
            size = s3.put_file(key, str(path))
            objects.append({"key": name, "kind": kind, "bytes": size, "sha256": _sha256(path)})
            path.unlink()

        try:
            for db in cfg.get("databases", []):
                out = work / f"postgres-{db['name']}.dump"
                dump_database(db, out)
                upload(out.name, out, "postgres")
            for spec in cfg.get("directories", []):
                out = work / f"files-{spec['name']}.tar"
                archive_directories(spec, out)
                upload(out.name, out, "files")
            if cfg.get("secrets"):
                out = work / "secrets.tar.age"
                encrypt_secrets(cfg["secrets"], work, out)
                upload(out.name, out, "secrets")
            manifest = {"formatVersion": FORMAT_VERSION, "id": bid, "created": now.isoformat(),
                        "labels": cfg.get("labels", {}), "objects": objects}
            key = f"{prefix}{bid}/{MANIFEST}"
            uploaded.append(key)
            s3.put_bytes(key, json.dumps(manifest, indent=1, sort_keys=True).encode(), "application/json")
        except BaseException:
            for key in uploaded:  # nothing half-written stays behind looking like a backup
                try:
                    s3.delete(key)
                except Exception as err:  # the original failure is the one to report
                    print(f"warning: could not delete {key}: {err}", file=sys.stderr)
            raise
    expired = apply_retention(s3, prefix, int(cfg["retentionDays"]), now)
    total = sum(o["bytes"] for o in objects)
    return {"id": bid, "bytes": total, "expired": expired}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m sovereign_suite.backup.program CONFIG.json", file=sys.stderr)
        return 2
    cfg = json.loads(Path(args[0]).read_text())
    try:
        result = run_backup(cfg)
    except (BackupError, S3Error, OSError) as err:  # one line saying what failed (the runbook reads it)
        print(f"backup failed: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    log = os.environ.get("TERMINATION_LOG", "/dev/termination-log")
    if os.path.exists(os.path.dirname(log) or "."):
        try:
            Path(log).write_text(json.dumps({"id": result["id"], "bytes": result["bytes"]}))
        except OSError:
            pass  # outside a container: no termination message file
    return 0


if __name__ == "__main__":
    sys.exit(main())
