"""OCI image-layout archives from root filesystems, for ``ctr images import`` (no registry, no container engine).

An archive holds ``oci-layout``, ``index.json`` and ``blobs/sha256/*``: one gzip layer per image, its config
(entrypoint, command, user, environment, working folder) and its manifest. The index's manifest entry carries the
``io.containerd.image.name`` annotation: the full reference pods ask for, under which containerd stores it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

EPOCH = 1767225600  # 2026-01-01: fixed file times, so the same tree gives the same layer


@dataclass
class ImageConfig:
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    user: str = ""
    workdir: str = ""
    ports: list[str] = field(default_factory=list)
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def as_oci(self) -> dict:
        cfg: dict = {"Env": self.env}
        if self.entrypoint is not None:
            cfg["Entrypoint"] = self.entrypoint
        if self.cmd is not None:
            cfg["Cmd"] = self.cmd
        if self.user:
            cfg["User"] = self.user
        if self.workdir:
            cfg["WorkingDir"] = self.workdir
        if self.ports:
            cfg["ExposedPorts"] = {p: {} for p in self.ports}
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        return cfg


class _Hashing(io.RawIOBase):
    """A write-only file that hashes and counts what goes through it into ``sink``."""

    def __init__(self, sink):
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.sink.write(b) if self.sink is not None else len(b)


def _resetter(epoch: int):
    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        # numeric owners only: the names tarfile looks up in the build machine's /etc/passwd would differ
        info.mtime, info.uname, info.gname = epoch, "", ""
        return info
    return reset


def write_layer(rootfs: Path, out: Path, epoch: int = EPOCH) -> tuple[str, str, int]:
    """Pack ``rootfs`` (every file, numeric owners and modes kept) as a gzip tar: entries in sorted order, every
    time ``epoch``, gzip's header time too, so the same tree gives the same bytes. Returns (diff_id, digest,
    size)."""
    reset = _resetter(epoch)
    with open(out, "wb") as f:
        compressed = _Hashing(f)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=epoch) as gz:
            plain = _Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for dirpath, dirnames, filenames in os.walk(rootfs):
                    dirnames.sort()
                    for name in sorted(dirnames) + sorted(filenames):
                        path = Path(dirpath) / name
                        tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False, filter=reset)
    return f"sha256:{plain.sha.hexdigest()}", f"sha256:{compressed.sha.hexdigest()}", compressed.size


def _blob(tar: tarfile.TarFile, data: bytes, epoch: int = EPOCH) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime = len(data), epoch
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def write_archive(name: str, layer: Path, diff_id: str, layer_digest: str, layer_size: int,
                  config: ImageConfig, out: Path, epoch: int = EPOCH,
                  created_by: str = "sovereign-suite devcluster/realnode/build.py") -> str:
    """An OCI layout tar holding one image named ``name`` (e.g. ``docker.io/library/redis:8.2-alpine``), every
    time in it ``epoch``. Returns the manifest digest."""
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    cfg = json.dumps({
        "architecture": "amd64", "os": "linux", "created": created, "config": config.as_oci(),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": created_by}],
    }, sort_keys=True).encode()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        cfg_digest, cfg_size = _blob(tar, cfg, epoch)
        info = tar.gettarinfo(str(layer), arcname=f"blobs/sha256/{layer_digest.split(':')[1]}")
        info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = epoch, 0, 0, "", "", 0o644
        with open(layer, "rb") as f:
            tar.addfile(info, f)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                        "size": layer_size}],
        }, sort_keys=True).encode()
        man_digest, man_size = _blob(tar, manifest, epoch)
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
        }]}, sort_keys=True).encode()
        for fname, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)):
            info = tarfile.TarInfo(fname)
            info.size, info.mtime = len(data), epoch
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return man_digest
