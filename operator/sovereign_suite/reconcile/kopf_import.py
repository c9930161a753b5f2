"""Kopf, imported without the ``kubernetes`` package it would load for nothing.

kopf==1.45.2 kopf/_cogs/helpers/thirdparty.py runs ``from kubernetes.client import V1ObjectMeta, V1OwnerReference``
when Kopf is imported, so that ``kopf.adopt()`` and friends also accept the official client's model objects; the
operator hands Kopf plain dicts only, and that import alone loads the whole client (27.5 MiB of RSS,
docs/performance.md). Python's import system raises ImportError for a name whose ``sys.modules`` entry is None
(the language reference, "The module cache"), which is the case thirdparty.py is written for ("client libraries
are optional"): the entry is set only while Kopf's modules load, then removed, so that the CLI commands and the
official loader's fallback (credentials.py) still import the package when they need it. Every module of the
operator that uses Kopf imports it from here (login.py, handlers.py, runner.py).
"""

from __future__ import annotations

import sys


def _import_kopf():
    if "kopf" in sys.modules or "kubernetes" in sys.modules:  # nothing left to spare
        import kopf

        return kopf
    sys.modules["kubernetes"] = None  # type: ignore[assignment]
    try:
        import kopf
    finally:
        if sys.modules.get("kubernetes", 0) is None:
            del sys.modules["kubernetes"]
    return kopf


kopf = _import_kopf()
