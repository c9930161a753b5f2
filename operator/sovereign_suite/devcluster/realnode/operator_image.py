"""The operator's own image, built without a container engine, the way the stand-ins are (build.py): a Debian
root filesystem (mmdebstrap) and the project's wheel, packed as one OCI layer (oci.py).

    python -m sovereign_suite.devcluster.realnode.operator_image [--no-cache] [--out FILE]   (make operator-image)

It is the root Dockerfile's image, built another way: the same Python packages (image/requirements.txt, pinned
with hashes, then the project's wheel, --no-deps), in a virtual environment at /opt/sovereign-suite without pip or
setuptools, the same entrypoint, command, user, environment and ports (tests/test_operator_image.py checks both
files agree). Python is Debian bookworm's 3.11, the minor version of the Dockerfile's python:3.11-slim-bookworm.

Reproducible: every input is pinned (Debian packages as the mirror serves them at build time; Python packages by
hash; the project's sources as they are on disk), and every time in the image is SOURCE_DATE_EPOCH (default
oci.EPOCH): mmdebstrap clamps its files to it, bytecode is hash-checked (py_compile's choice when
SOURCE_DATE_EPOCH is set; PYTHONHASHSEED=0 for the order of frozensets in constants), tar entries are sorted with
numeric owners and that time, gzip's header carries it. Two builds from the same commit give the same manifest
digest (tests/cluster/test_real_node_operator.py builds twice and compares). deb.debian.org moves on with Debian's
point releases: builds weeks apart may differ; a snapshot.debian.org mirror (SOVEREIGN_SUITE_DEBIAN_MIRROR)
pins that too.

The archive is cached in $(CACHE)/images by a key of every input; ``--no-cache`` builds anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from ..cluster import ClusterError
from . import oci
from .build import EXCLUDES
from .images import images_dir

ROOT = Path(__file__).resolve().parents[4]
LOCK = ROOT / "image" / "requirements.txt"
BUILD_CONSTRAINTS = ROOT / "image" / "build-constraints.txt"
SUITE = "bookworm"  # python3 3.11, as the Dockerfile's python:3.11-slim-bookworm
MIRROR = os.environ.get("SOVEREIGN_SUITE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PYTHON_MINOR = "3.11"
VENV = "/opt/sovereign-suite"
PACKAGES = ("python3",)
# only while the environment is made (python3 -m venv needs ensurepip's wheels); purged before packing, with
# the packages they brought (apt marks some as installed by hand, so --autoremove alone leaves them)
BUILD_PACKAGES = ("python3-venv",)
PURGE = ("python3-venv", "python3.11-venv", "python3-pip-whl", "python3-setuptools-whl", "python3-distutils",
         "python3-lib2to3")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The image's user has a name: Kopf asks for it at start (getpass.getuser(), pwd.getpwuid of the uid: a KeyError
# without an entry, kopf/_core/engines/peering.py detect_own_id, kopf 1.45.2). The Dockerfile adds the same lines.
PASSWD_ENTRY = "nonroot:x:65532:65532:nonroot:/tmp:/usr/sbin/nologin"
GROUP_ENTRY = "nonroot:x:65532:"
SOURCES = ("pyproject.toml", "README.md", "LICENSE")  # with operator/: what the Dockerfile COPYs (.dockerignore)


def version(root: Path = ROOT) -> str:
    for line in (root / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise ClusterError("pyproject.toml has no version")


def image_name() -> str:
    """The reference the chart's default image (repository sovereign-suite-operator, tag appVersion) resolves to."""
    return f"docker.io/library/sovereign-suite-operator:{version()}"


def config() -> oci.ImageConfig:
    # the Dockerfile's final stage: ENV, USER, EXPOSE, ENTRYPOINT, CMD, LABEL (tests/test_operator_image.py)
    return oci.ImageConfig(
        entrypoint=["sovereign-suite"], cmd=["run"], user="65532:65532", ports=["8080/tcp", "9090/tcp"],
        env=[f"PATH={VENV}/bin:{PATH}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp"],
        labels={"org.opencontainers.image.title": "sovereign-suite-operator",
                "org.opencontainers.image.licenses": "Apache-2.0",
                "org.opencontainers.image.description":
                    "Kubernetes operator for a multi-country sovereign digital workplace"},
    )


def epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else oci.EPOCH


def source_files(root: Path = ROOT) -> list[Path]:
    """The files the image is built from, relative to the repository: the Dockerfile's COPY set, without
    bytecode and build leftovers."""
    files = [Path(f) for f in SOURCES]
    for path in sorted((root / "operator").rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and not any(p.endswith(".egg-info") for p in rel.parts):
            files.append(rel)
    return files


def install_script(wheel: str) -> str:
    """Run in the root filesystem (chroot, sh -e): the Dockerfile's build stage, with the lock file."""
    pip = f"{VENV}/bin/pip"
    return f"""set -e
export SOURCE_DATE_EPOCH={epoch()} PYTHONHASHSEED=0 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# the build machine's CA bundle (a proxy's CA, where there is one) for every client that reads one from the
# environment; pip's requests prefers REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE to its own --cert
unset PIP_FIND_LINKS SSL_CERT_DIR
ca=/tmp/build/host-ca.pem
export PIP_CERT=$ca SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca CURL_CA_BUNDLE=$ca PIP_ROOT_USER_ACTION=ignore
python3 -m venv {VENV}
{pip} install --compile --require-hashes --no-deps --only-binary=:all: -r /tmp/build/requirements.txt
{pip} install --compile --no-deps /tmp/build/{wheel}
{pip} uninstall --yes pip setuptools
PYTHONDONTWRITEBYTECODE=1 {VENV}/bin/sovereign-suite crds >/dev/null
"""


def key(wheel_inputs: list[Path], root: Path = ROOT, name: str | None = None) -> str:
    """Changes whenever an input of the image changes."""
    h = hashlib.sha256()
    h.update(json.dumps([SUITE, MIRROR, PACKAGES, BUILD_PACKAGES, PURGE, PASSWD_ENTRY, GROUP_ENTRY,
                         name or image_name(), config().as_oci(), epoch(), install_script("W"), EXCLUDES]).encode())
    for rel in [Path("image/requirements.txt"), Path("image/build-constraints.txt"), *wheel_inputs]:
        h.update(str(rel).encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:12]


def archive_path() -> Path:
    return images_dir() / f"sovereign-suite-operator-{version()}-{key(source_files())}.oci.tar"


def digest(archive: Path) -> str:
    """The image's manifest digest, from the archive's index."""
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def _wheel(work: Path, progress, root: Path = ROOT) -> Path:
    """The project's wheel, built from a copy of its sources (the checkout stays clean)."""
    src = work / "src"
    for rel in source_files(root):
        dest = src / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest)
    out = work / "wheel"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch()),
           "PIP_CONSTRAINT": str(root / BUILD_CONSTRAINTS.relative_to(ROOT))}
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "-w", str(out), str(src)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise ClusterError(f"operator image: building the wheel failed:\n{proc.stderr[-2000:]}")
    (wheel,) = out.glob("*.whl")
    progress(f"operator image: wheel {wheel.name}")
    return wheel


def build(out: Path | None = None, progress=print, cache: bool = True, root: Path = ROOT,
          name: str | None = None) -> Path:
    """The image's OCI archive: from the cache, or built now (about two minutes).

    ``root``: another checkout of this repository (an earlier commit's sources: previous_image.py) built by this
    builder; ``name``: the reference the archive carries (default image_name()). Both need ``out``."""
    if (root != ROOT or name) and out is None:
        raise ClusterError("operator image: another root or name needs an output path (the cache is this tree's)")
    name = name or image_name()
    target = out or archive_path()
    if cache and target.exists():
        return target
    if not shutil.which("mmdebstrap"):
        raise ClusterError("mmdebstrap is needed to build the operator image (hack/install-real-node-deps.sh)")
    start = time.monotonic()
    progress(f"operator image: building {name} from Debian {SUITE} and {root / LOCK.relative_to(ROOT)}")
    with tempfile.TemporaryDirectory(prefix="build-operator-", dir=images_dir()) as tmp:
        work = Path(tmp)
        stage = work / "stage"
        stage.mkdir()
        wheel = _wheel(work, progress, root)
        shutil.copy2(wheel, stage / wheel.name)
        shutil.copy2(root / LOCK.relative_to(ROOT), stage / "requirements.txt")
        (work / "install.sh").write_text(install_script(wheel.name))
        rootfs = work / "rootfs"
        q = shlex.quote
        hooks = [
            f'--customize-hook=mkdir -p "$1/tmp/build" && cp {q(str(stage))}/* "$1/tmp/build/" && '
            'cp /etc/ssl/certs/ca-certificates.crt "$1/tmp/build/host-ca.pem" && '
            'cp -L /etc/resolv.conf "$1/etc/resolv.conf"',
            f'--customize-hook=chroot "$1" /bin/sh -e < {q(str(work / "install.sh"))}',
            f'--customize-hook=echo {q(PASSWD_ENTRY)} >> "$1/etc/passwd" && echo {q(GROUP_ENTRY)} >> "$1/etc/group"',
            # the run-time image has no ensurepip, no pip wheels: only python3 and the environment
            '--customize-hook=chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge --yes --autoremove '
            '--quiet ' + " ".join(PURGE) + ' >/dev/null',
            '--customize-hook=rm -rf "$1/tmp/build" "$1/var/cache/apt/"* "$1/var/lib/apt/lists/"* "$1/var/log/"* '
            '"$1/root/.cache" "$1/var/cache/ldconfig/aux-cache"; : > "$1/etc/resolv.conf"; '
            'find "$1/usr" -name __pycache__ -type d -prune -exec rm -rf {} +',
        ]
        cmd = ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
               "--include=" + ",".join(PACKAGES + BUILD_PACKAGES), "--aptopt=APT::Install-Recommends \"false\"",
               *[f"--dpkgopt=path-exclude={p}" for p in EXCLUDES], *hooks, SUITE, str(rootfs), MIRROR]
        log = images_dir() / "sovereign-suite-operator.build.log"
        with open(log, "w") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                  env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch())})
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
            raise ClusterError(f"operator image: mmdebstrap failed (log {log}):\n{tail}")
        layer = work / "layer.tar.gz"
        diff_id, layer_digest, size = oci.write_layer(rootfs, layer, epoch())
        shutil.rmtree(rootfs, ignore_errors=True)
        oci.write_archive(name, layer, diff_id, layer_digest, size, config(), target, epoch(),
                          created_by="sovereign-suite devcluster/realnode/operator_image.py")
    if out is None:
        for old in images_dir().glob("sovereign-suite-operator-*.oci.tar"):  # earlier inputs' archives
            if old != target:
                old.unlink()
    progress(f"operator image: built in {time.monotonic() - start:.0f} s ({target.stat().st_size >> 20} MiB, "
             f"{digest(target)})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-cache", action="store_true", help="build even when the cache has this image")
    parser.add_argument("--out", type=Path, help="write the archive here (default: the cache)")
    args = parser.parse_args(argv)
    try:
        path = build(args.out, lambda m: print(f"[image] {m}", file=sys.stderr), cache=not args.no_cache)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{image_name()}\t{digest(path)}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
