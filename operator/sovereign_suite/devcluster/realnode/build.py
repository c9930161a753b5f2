"""Build the stand-in images (standins.py) into OCI archives in the cache, each once per set of inputs.

    python -m sovereign_suite.devcluster.realnode.build [NAME ...]     (make real-node-images)

mmdebstrap (root mode) makes a Debian root filesystem with the recipe's packages; users are added before the
packages (so Debian's maintainer scripts keep the upstream image's ids); PyPI requirements are installed by the
root filesystem's own pip (with the host's CA bundle and resolver, removed afterwards); the recipe's files and
script follow; the tree is packed as one gzip layer (oci.py).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cluster import ClusterError
from . import oci
from .images import images_dir
from .standins import MIRROR, ON_DEMAND, RECIPES, Recipe

EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*",
            "/usr/share/lintian/*")


def archive_path(recipe: Recipe) -> Path:
    return images_dir() / f"{recipe.slug}-{recipe.key()}.oci.tar"


def _hooks(recipe: Recipe, stage: Path) -> list[str]:
    args = []
    for name, uid, gid, home in recipe.users:  # before any package: Debian's adduser calls find them
        args.append("--essential-hook=" + (
            f'grep -q "^{name}:" "$1/etc/group" || echo "{name}:x:{gid}:" >> "$1/etc/group"; '
            f'grep -q "^{name}:" "$1/etc/passwd" || echo "{name}:x:{uid}:{gid}::{home}:/usr/sbin/nologin" '
            f'>> "$1/etc/passwd"'))
    if recipe.pip:
        reqs = " ".join(shlex.quote(r) for r in recipe.pip)
        copy = constrain = ""
        if recipe.constraints:  # written beside the stage by build(), copied in for the install, removed after
            copy = f'cp {shlex.quote(str(stage.parent / "constraints.txt"))} "$1/tmp/pip-constraints.txt"; '
            constrain = " -c /tmp/pip-constraints.txt"
        args.append("--customize-hook=" + (
            'cp /etc/ssl/certs/ca-certificates.crt "$1/tmp/host-ca.pem"; cp -L /etc/resolv.conf "$1/etc/resolv.conf"; '
            f'{copy}chroot "$1" env -u PIP_FIND_LINKS PIP_CERT=/tmp/host-ca.pem SSL_CERT_FILE=/tmp/host-ca.pem '
            'REQUESTS_CA_BUNDLE=/tmp/host-ca.pem PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore '
            f'python3 -m pip install --no-cache-dir --break-system-packages --prefer-binary{constrain} {reqs}; '
            'rc=$?; rm -f "$1/tmp/host-ca.pem" "$1/tmp/pip-constraints.txt"; : > "$1/etc/resolv.conf"; exit $rc'))
    if recipe.files:
        args.append(f'--customize-hook=cp -a {shlex.quote(str(stage))}/. "$1/"')
    if recipe.script:
        (stage.parent / "script.sh").write_text(recipe.script)
        args.append(f'--customize-hook=chroot "$1" /bin/sh -e < {shlex.quote(str(stage.parent / "script.sh"))}')
    args.append('--customize-hook=rm -rf "$1/var/cache/apt/"* "$1/var/lib/apt/lists/"* "$1/var/log/"*.log '
                '"$1/root/.cache"; find "$1/usr" -name __pycache__ -type d -prune -exec rm -rf {} +')
    return args


def build(recipe: Recipe, progress=print, log: Path | None = None) -> Path:
    """The recipe's archive: from the cache, or built now (minutes)."""
    out = archive_path(recipe)
    if out.exists():
        return out
    if not shutil.which("mmdebstrap"):
        raise ClusterError("mmdebstrap is needed to build the stand-in images (hack/install-real-node-deps.sh)")
    start = time.monotonic()
    progress(f"image {recipe.name}: building from Debian {recipe.suite}" + (" and PyPI" if recipe.pip else ""))
    with tempfile.TemporaryDirectory(prefix=f"build-{recipe.slug}-", dir=images_dir()) as tmp:
        work = Path(tmp)
        stage, rootfs = work / "stage", work / "rootfs"
        stage.mkdir()
        if recipe.constraints:
            (work / "constraints.txt").write_text(recipe.constraints_text())
        for path, (content, mode) in recipe.files.items():
            dest = stage / path.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(content)
            dest.chmod(mode)
        cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
               "--include=" + ",".join(recipe.packages), "--aptopt=APT::Install-Recommends \"false\"",
               *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDES], *_hooks(recipe, stage), recipe.suite, str(rootfs), MIRROR]
        logfile = log or images_dir() / f"{recipe.slug}.build.log"
        with open(logfile, "w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-25:])
            raise ClusterError(f"image {recipe.name}: mmdebstrap failed (log {logfile}):\n{tail}")
        layer = work / "layer.tar.gz"
        diff_id, digest, size = oci.write_layer(rootfs, layer)
        shutil.rmtree(rootfs, ignore_errors=True)
        oci.write_archive(recipe.name, layer, diff_id, digest, size, recipe.config, out)
    for old in images_dir().glob(f"{recipe.slug}-*.oci.tar"):  # earlier inputs' archives
        if old != out:
            old.unlink()
    progress(f"image {recipe.name}: built in {time.monotonic() - start:.0f} s ({out.stat().st_size >> 20} MiB)")
    return out


def build_all(names: list[str] | None = None, progress=print) -> dict[str, Path]:
    unknown = sorted(set(names or []) - set(RECIPES))
    if unknown:
        raise ClusterError(f"unknown stand-in images {unknown} (known: {sorted(RECIPES)})")
    return {n: build(RECIPES[n], progress) for n in (names or list(RECIPES))}


def built() -> list[Path]:
    """Archives of every stand-in already in the cache for the current recipes (those built on demand aside:
    standins.ON_DEMAND)."""
    return [p for p in (archive_path(r) for n, r in RECIPES.items() if n not in ON_DEMAND) if p.exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(RECIPES)} (default: all)")
    args = parser.parse_args(argv)
    try:
        for name, path in build_all(args.names, lambda m: print(f"[images] {m}", file=sys.stderr)).items():
            print(f"{name}\t{path}")
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
