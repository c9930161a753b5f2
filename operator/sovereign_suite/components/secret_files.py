"""Secrets handed to a container as files instead of environment variables (issue 22, item 17).

A value in an environment variable shows wherever the process environment does: /proc/<pid>/environ, crash
reports, every child process. Where the upstream program reads a ``<NAME>_FILE`` variable (or a file path of its
own), the renderer mounts the Secret keys with one projected volume and sets the ``*_FILE`` variable to the file:
the citation of each upstream reader sits where the renderer uses this module.

The volume's mode is 0440 (owner and the pod's fsGroup): every pod that uses it runs with an ``fsGroup`` that its
container's user is in, so the file is readable by that user only, never by "others".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FILE_MODE = 0o440


@dataclass(frozen=True)
class SecretFile:
    """Secret ``secret``'s key ``key``, mounted as the file ``name`` (by convention the variable it replaces)."""

    name: str
    secret: str
    key: str


def projected_volume(volume: str, files: list[SecretFile]) -> dict[str, Any]:
    """One read-only volume holding every file (one ``secret`` source per Secret, keys in order of first use)."""
    sources: dict[str, list[dict[str, str]]] = {}
    for f in files:
        sources.setdefault(f.secret, []).append({"key": f.key, "path": f.name})
    return {
        "name": volume,
        "projected": {
            "defaultMode": FILE_MODE,
            "sources": [{"secret": {"name": name, "items": items}} for name, items in sources.items()],
        },
    }


def mount(volume: str, path: str) -> dict[str, Any]:
    return {"name": volume, "mountPath": path, "readOnly": True}


def file_env(files: list[SecretFile], path: str, suffix: str = "_FILE") -> list[dict[str, str]]:
    """``<name><suffix>=<path>/<name>`` for each file: the variables an upstream ``*_FILE`` reader looks at."""
    return [{"name": f"{f.name}{suffix}", "value": f"{path}/{f.name}"} for f in files]
