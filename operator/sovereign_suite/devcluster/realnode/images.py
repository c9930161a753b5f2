"""The images the real node runs, built without a registry (see hack/build-images.py for the stand-ins)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from ..cluster import cache_dir
from . import oci
from .configs import SANDBOX_IMAGE


def images_dir() -> Path:
    d = cache_dir() / "images"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def pause_archive(bins: Path) -> Path:
    """The sandbox image containerd's config pins: the ``pause`` program (hack/tools/pause) alone, as PID 1."""
    program = bins / "pause"
    out = images_dir() / f"pause-{_digest(program)}.oci.tar"
    if out.exists():
        return out
    with tempfile.TemporaryDirectory(prefix="pause-", dir=images_dir()) as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        shutil.copy2(program, root / "pause")
        layer = Path(tmp) / "layer.tar.gz"
        diff_id, digest, size = oci.write_layer(root, layer)
        oci.write_archive(SANDBOX_IMAGE, layer, diff_id, digest, size,
                          oci.ImageConfig(entrypoint=["/pause"], env=[], user="65535:65535"), out)
    for old in images_dir().glob("pause-*.oci.tar"):
        if old != out:
            old.unlink()
    return out
