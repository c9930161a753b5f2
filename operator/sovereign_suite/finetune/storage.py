"""The trainer's object storage: ``s3://bucket/key`` URIs on the country's S3-compatible endpoint.

It reuses the backup program's standard-library client (backup/s3.py: SigV4, path-style): the dataset, the base
model and the adapter never leave the country's storage through another code path. Credentials are read, like the
backup program reads them, from files mounted from a Secret (``--credentials-dir`` holding ``AWS_ACCESS_KEY_ID``
and ``AWS_SECRET_ACCESS_KEY``), else from those environment variables. Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..backup.s3 import Client, Credentials, S3Error

__all__ = ["S3Error", "S3Uri", "StorageError", "client_for", "credentials", "download_prefix", "parse_uri",
           "upload_dir"]


class StorageError(Exception):
    pass


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str  # an object's key, or a prefix (no leading slash)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> "S3Uri":
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, base + name)


def parse_uri(uri: str, what: str) -> S3Uri:
    if not uri.startswith("s3://"):
        raise StorageError(f"{what} must be an s3:// URI in the country's object storage, not {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or ".." in key.split("/"):
        raise StorageError(f"{what} {uri!r} has no bucket or a '..' segment")
    return S3Uri(bucket, key)


def credentials(credentials_dir: str | None) -> Credentials:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    if credentials_dir:
        try:
            return Credentials(*(Path(credentials_dir, n).read_text().strip() for n in names))
        except OSError as err:
            raise StorageError(f"cannot read the storage credentials in {credentials_dir}: {err}") from None
    values = [os.environ.get(n, "") for n in names]
    if not all(values):
        raise StorageError("no storage credentials: give --credentials-dir or set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY")
    return Credentials(*values)


def client_for(endpoint: str, region: str, creds: Credentials, uri: S3Uri) -> Client:
    return Client(endpoint.rstrip("/"), uri.bucket, region, creds)


def get_object(client: Client, uri: S3Uri, what: str) -> bytes:
    try:
        return client.get(uri.key)
    except S3Error as err:
        if err.status == 404:
            raise StorageError(f"{what} {uri} does not exist") from None
        raise StorageError(f"cannot read {what} {uri}: {err}") from None
    except OSError as err:
        raise StorageError(f"cannot reach the object storage for {what} {uri}: {err}") from None


def download_prefix(client: Client, uri: S3Uri, dest: Path, what: str) -> list[str]:
    """Every object under the prefix, into ``dest`` (relative names kept); the names written."""
    prefix = uri.key if not uri.key or uri.key.endswith("/") else uri.key + "/"
    try:
        keys = [k for k, _ in client.list(prefix)]
    except (S3Error, OSError) as err:
        raise StorageError(f"cannot list {what} {uri}: {err}") from None
    if not keys:
        raise StorageError(f"{what} {uri} holds no object")
    names = []
    for key in keys:
        rel = key[len(prefix):]
        if not rel or rel.endswith("/") or ".." in rel.split("/"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(get_object(client, S3Uri(uri.bucket, key), what))
        names.append(rel)
    return names


def upload_dir(client: Client, src: Path, uri: S3Uri, names: list[str]) -> None:
    for name in names:
        try:
            client.put_file(uri.child(name).key, str(src / name))
        except (S3Error, OSError) as err:
            raise StorageError(f"cannot write {uri.child(name)}: {err}") from None
