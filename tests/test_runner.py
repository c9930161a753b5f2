"""``sovereign-suite run``'s process setup (reconcile/runner.py), in a fresh interpreter each: glibc's malloc
arenas are capped before any thread starts, unless the environment already says how many."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OPERATOR = str(Path(__file__).resolve().parent.parent / "operator")
CALL = "from sovereign_suite.reconcile.runner import limit_malloc_arenas; print(limit_malloc_arenas())"


def run(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", CALL], env={**env, "PYTHONPATH": OPERATOR}, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_arenas_are_capped_through_glibc():
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    # this machine's Python runs on glibc (as the image's Debian base): mallopt exists and accepts the cap
    assert run(env) == "True"


def test_malloc_arena_max_in_the_environment_wins():
    assert run({**os.environ, "MALLOC_ARENA_MAX": "4"}) == "False"
