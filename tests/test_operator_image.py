"""The operator image, two ways: the root Dockerfile (a container engine) and operator_image.py (Debian rootfs +
the project's wheel, no engine). Both must install the same Python packages and run the same way, so that neither
rots; and the packing must be deterministic (the same tree gives the same digest)."""

from __future__ import annotations

import json
import os
import re
import shlex
import tarfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sovereign_suite.devcluster.realnode import oci, operator_image

from .helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (continuation lines joined), per stage."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def key_values(rest: str) -> dict[str, str]:
    return dict(w.split("=", 1) for w in shlex.split(rest))


def test_dockerfile_and_built_image_run_the_same_way():
    final = dockerfile_stages()[-1]
    cfg = operator_image.config().as_oci()
    entry = [json.loads(r) for k, r in final if k == "ENTRYPOINT"]
    cmd = [json.loads(r) for k, r in final if k == "CMD"]
    assert entry == [cfg["Entrypoint"]] and cmd == [cfg["Cmd"]], (entry, cmd, cfg)
    assert [r for k, r in final if k == "USER"] == [cfg["User"]]
    exposed = sorted(f"{p}/tcp" for k, r in final if k == "EXPOSE" for p in r.split())
    assert exposed == sorted(cfg["ExposedPorts"])
    labels = {k: v for kind, r in final if kind == "LABEL" for k, v in key_values(r).items()}
    assert labels == cfg["Labels"]
    env = {k: v for kind, r in final if kind == "ENV" for k, v in key_values(r).items()}
    built = dict(e.split("=", 1) for e in cfg["Env"])
    # PATH: the environment's bin first, then the base image's PATH ($PATH in the Dockerfile)
    assert env.pop("PATH").split(":")[0] == built.pop("PATH").split(":")[0] == f"{operator_image.VENV}/bin"
    assert env == built
    # non-root, as the chart's podSecurityContext expects, with a name (Kopf looks it up at start)
    uid, gid = cfg["User"].split(":")
    run = " ".join(r for k, r in final if k == "RUN")
    assert f"echo '{operator_image.PASSWD_ENTRY}' >> /etc/passwd" in run
    assert f"echo '{operator_image.GROUP_ENTRY}' >> /etc/group" in run
    assert operator_image.PASSWD_ENTRY.split(":")[2:4] == [uid, gid] and operator_image.GROUP_ENTRY.split(":")[2] == gid
    values = (ROOT / "charts" / "sovereign-suite-operator" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values and f"runAsGroup: {gid}" in values


def test_dockerfile_and_built_image_install_the_same_packages():
    build = " ".join(r for k, r in dockerfile_stages()[0] if k == "RUN")
    script = operator_image.install_script("the.whl")
    pip = f"{operator_image.VENV}/bin/pip"
    # the lock, by hash, without resolving anything else; then the project alone; then no pip, no setuptools
    lock = f"{pip} install --compile --require-hashes --no-deps --only-binary=:all: -r "
    assert lock + "image/requirements.txt" in build and lock + "/tmp/build/requirements.txt" in script
    assert f"{pip} install --compile --no-deps ." in build and f"{pip} install --compile --no-deps /tmp/build/" in script
    assert "PIP_CONSTRAINT=image/build-constraints.txt" in build
    assert f"{pip} uninstall --yes pip setuptools" in build and f"{pip} uninstall --yes pip setuptools" in script
    assert f"python -m venv {operator_image.VENV}" in build and f"python3 -m venv {operator_image.VENV}" in script
    # the same Python minor on the same Debian release
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M).group(1)
    m = re.fullmatch(r"python:(\d+\.\d+)\.\d+-slim-(\w+)", base)
    assert m and m.groups() == (operator_image.PYTHON_MINOR, operator_image.SUITE), base
    # what the Dockerfile COPYs is what the wheel is built from
    copied = {w for k, r in dockerfile_stages()[0] if k == "COPY" for w in r.split()[:-1]}
    assert set(operator_image.SOURCES) | {"operator", "image/requirements.txt", "image/build-constraints.txt"} == copied


def lock_entries() -> dict[str, str]:
    text = operator_image.LOCK.read_text()
    entries = {}
    for block in re.split(r"\n(?=\S)", re.sub(r"^#.*\n", "", text, flags=re.M).strip()):
        m = re.fullmatch(r"([a-z0-9._-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", block)
        assert m, f"not one pinned, hashed requirement: {block!r}"
        entries[canonicalize_name(m.group(1))] = m.group(2)
    return entries


def test_lock_is_the_closure_of_pyproject_dependencies():
    """image/requirements.txt pins exactly pyproject's dependencies and what they need (hack/lock-image-
    requirements.sh regenerates it): every pin of pyproject at its version, nothing unreachable from them."""
    lock = lock_entries()
    deps = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    for req in deps:
        pinned = str(req.specifier).removeprefix("==")
        assert lock.get(canonicalize_name(req.name)) == pinned, f"{req}: lock has {lock.get(canonicalize_name(req.name))}"
    env = {"python_version": operator_image.PYTHON_MINOR, "extra": ""}
    seen, todo = set(), [canonicalize_name(r.name) for r in deps]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(canonicalize_name(req.name))
    assert set(lock) == seen, f"only in the lock: {sorted(set(lock) - seen)}; missing: {sorted(seen - set(lock))}"


def test_layer_is_the_same_for_the_same_tree(tmp_path: Path):
    """Entries sorted, times and owner names fixed, gzip's header time fixed: two trees with the same content,
    made in another order at other times, give the same layer and the same image digest."""
    digests = []
    for n, order in enumerate((("b", "a", "c/d"), ("c/d", "a", "b"))):
        root = tmp_path / f"root{n}"
        for name in order:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"content of {name}\n")
            os.utime(path, (time.time() - 1000 * n, time.time() - 1000 * n))
        layer = tmp_path / f"layer{n}.tar.gz"
        diff_id, digest, size = oci.write_layer(root, layer, epoch=1700000000)
        out = tmp_path / f"image{n}.oci.tar"
        manifest = oci.write_archive("docker.io/library/x:1", layer, diff_id, digest, size,
                                     operator_image.config(), out, epoch=1700000000)
        digests.append((diff_id, digest, manifest, out.read_bytes()))
        with tarfile.open(layer) as tar:
            members = tar.getmembers()
        assert [m.name for m in members] == ["c", "a", "b", "c/d"]  # per folder: folders, then files, by name
        assert {m.mtime for m in members} == {1700000000} and {m.uname for m in members} == {""}
    assert digests[0] == digests[1]
    assert operator_image.digest(tmp_path / "image0.oci.tar") == digests[0][2]


def test_cache_key_follows_the_sources(tmp_path: Path):
    files = operator_image.source_files()
    assert Path("pyproject.toml") in files and Path("operator/sovereign_suite/cli.py") in files
    assert not [f for f in files if "__pycache__" in f.parts]
    assert operator_image.key(files) == operator_image.key(files)
    assert operator_image.key(files[:-1]) != operator_image.key(files)
