"""Regenerates tests/golden/<example>.yaml: ``python -m tests.golden_refresh`` (what ``make golden`` runs).

The golden files are the exact stdout of ``sovereign-suite render -f manifests/examples/<example>.yaml --clouds
manifests/examples/clouds.yaml`` (placeholder Secrets, no optional APIs). They are produced here by calling the
CLI's own ``main`` in-process, so the file is what a user gets, not what a test helper thinks the CLI prints.
tests/test_render.py compares the current render against them; a reviewer reads the diff of a renderer change
in these files.
"""

from __future__ import annotations

import contextlib
import io
import sys

import yaml

from sovereign_suite import cli

from .helpers import CLOUDS, EXAMPLE_FILES, ROOT

GOLDEN = ROOT / "tests" / "golden"
ADAPTERS = ROOT / "tests" / "data" / "adapters"
# goldens of test inputs beyond the examples: a suite serving LoRA adapters (docs/llm-finetuning.md)
EXTRA = {"llm-adapters": ["render", "-f", str(ADAPTERS / "suite.yaml"), "--clouds", str(ADAPTERS / "cloud.yaml"),
                          "--served-adapters", str(ADAPTERS / "adapters.yaml")]}


def cli_args(name: str) -> list[str]:
    if name in EXTRA:
        return list(EXTRA[name])
    return ["render", "-f", str(EXAMPLE_FILES[name]), "--clouds", str(CLOUDS)]


def render_text(name: str) -> str:
    """stdout of ``sovereign-suite render`` for an example; raises when the CLI reports an error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(cli_args(name))
    if code != 0:
        raise RuntimeError(f"sovereign-suite {' '.join(cli_args(name))} exited {code}: {err.getvalue().strip()}")
    return out.getvalue()


def golden_path(name: str):
    return GOLDEN / f"{name}.yaml"


def main() -> int:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in sorted([*EXAMPLE_FILES, *EXTRA]):
        text = render_text(name)
        path = golden_path(name)
        old = path.read_text(encoding="utf-8") if path.exists() else None
        path.write_text(text, encoding="utf-8")
        state = "unchanged" if old == text else ("created" if old is None else "updated")
        count = sum(1 for doc in yaml.safe_load_all(text) if doc)
        print(f"{path.relative_to(ROOT)}: {state} ({count} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
