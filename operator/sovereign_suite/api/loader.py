"""Reads suites and clouds from YAML files (the offline CLI and the tests)."""

from __future__ import annotations

from pathlib import Path

from .models import NationalCloud, SovereignSuite
from .validation import InputError, Problem, load_documents, parse_cloud, parse_suite


def load_files(paths: list[str | Path]) -> tuple[list[SovereignSuite], dict[str, NationalCloud]]:
    """Every SovereignSuite and NationalCloud in the files. Other kinds are an error: nothing is skipped silently."""
    suites: list[SovereignSuite] = []
    clouds: dict[str, NationalCloud] = {}
    problems: list[Problem] = []
    for path in paths:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
        for i, doc in enumerate(load_documents(text, str(path))):
            kind = doc.get("kind")
            try:
                if kind == "SovereignSuite":
                    suites.append(parse_suite(doc))
                elif kind == "NationalCloud":
                    cloud = parse_cloud(doc)
                    if cloud.name in clouds:
                        problems.append(Problem(f"NationalCloud/{cloud.name}", "defined twice"))
                    clouds[cloud.name] = cloud
                else:
                    problems.append(
                        Problem(f"{path}[{i}].kind", f"expected SovereignSuite or NationalCloud, got {kind!r}")
                    )
            except InputError as err:
                problems += err.problems
    if problems:
        raise InputError(problems)
    return suites, clouds
