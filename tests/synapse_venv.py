"""A venv with one version of matrix-synapse (and the drivers the tests use), built once per version and reused.

Synapse (AGPL) is a test tool here, never a dependency of the operator. Each version gets its own venv under
${SOVEREIGN_SUITE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/sovereign-suite}/synapse-venv-<version> (about 30 s from
PyPI the first time): the pinned image's version (tests/components/test_synapse_config.py) and the previous
release's (api/releases.py, tests/test_synapse_upgrade_real.py). Built under a .partial name and renamed when
complete, so an interrupted install is never taken for a good one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# PostgreSQL's driver: the image has Synapse's `postgres` extra (psycopg2, built against libpq); the binary wheel
# needs neither a compiler nor libpq-dev here.
PSYCOPG2 = "psycopg2-binary==2.9.10"
# An older Synapse needs the dependency versions it was released with: its poetry.lock, as pip constraints.
CONSTRAINTS = Path(__file__).parent / "data" / "synapse-constraints"


def cache_dir() -> Path:
    """The project's cache (as in the Makefile and hack/build-tools.sh)."""
    if os.environ.get("SOVEREIGN_SUITE_CACHE"):
        return Path(os.environ["SOVEREIGN_SUITE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sovereign-suite"


def installed(python: Path, version: str) -> bool:
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import psycopg2, txredisapi, hiredis, synapse; print(synapse.__version__)"],
        capture_output=True, text=True,
    )
    return probe.returncode == 0 and probe.stdout.strip() == version


def synapse_python(version: str) -> Path:
    """The Python of a venv with matrix-synapse[redis]==``version`` and psycopg2; raises RuntimeError when pip
    cannot install it."""
    venv = cache_dir() / f"synapse-venv-{version}"
    python = venv / "bin" / "python"
    if installed(python, version):
        return python
    partial = venv.with_name(venv.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True)
    constraints = CONSTRAINTS / f"{version}.txt"
    install = subprocess.run(
        [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", f"matrix-synapse[redis]=={version}",
         PSYCOPG2, *(["-c", str(constraints)] if constraints.exists() else [])],
        capture_output=True, text=True,
    )
    if install.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"cannot install matrix-synapse=={version}:\n{install.stderr[-3000:]}")
    shutil.rmtree(venv, ignore_errors=True)
    partial.rename(venv)  # everything runs `python -m`, so the venv's scripts' old shebangs do not matter
    if not installed(python, version):
        raise RuntimeError(f"matrix-synapse=={version} installed but does not import")
    return python
