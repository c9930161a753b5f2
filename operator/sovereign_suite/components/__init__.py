"""One pure renderer per component, with its jinja2 templates beside it.

Each module exposes ``render(ctx) -> list[dict]`` and may expose ``secrets(ctx) -> list[SecretSpec]``.
``tenancy`` always renders; ``backup`` when the tenant's ``backups.enabled``; the others when
``components.<name>.enabled`` is true for the tenant.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Order matters only for readability; the apply order is decided by sovereign_suite.render.phase_of.
COMPONENT_MODULES = ("tenancy", "matrix", "jitsi", "docs", "llm", "backup")


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")
