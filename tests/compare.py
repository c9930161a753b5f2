"""Is a live object already as rendered? Decides whether an apply is needed, so a resync of a converged suite
sends no mutating request at all (a no-op server-side apply still costs a PATCH).

``contains(live, desired)``: every field the operator renders has the same value in the live object. Fields the
API server or controllers add (defaults, status, clusterIP...) are ignored; quantities compare by value
(``1000m`` == ``1``); lists compare element by element.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity


def _quantity(v: Any) -> Decimal | None:
    if isinstance(v, bool):
        return None
    try:
        return parse_quantity(v)
    except (ValueError, TypeError, InvalidOperation):
        return None


def _scalar_equal(live: Any, desired: Any) -> bool:
    if live == desired:
        return True
    if isinstance(desired, (str, int, float)) and isinstance(live, (str, int, float)):
        a, b = _quantity(live), _quantity(desired)
        return a is not None and a == b
    return False


def contains(live: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return not desired and live is None
        for key, want in desired.items():
            if want is None:
                continue
            if key not in live:
                if want in ({}, []):
                    continue  # the API server drops empty maps and lists
                return False
            if not contains(live[key], want):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return not desired and not live
        return all(contains(a, b) for a, b in zip(live, desired))
    return _scalar_equal(live, desired)


def first_difference(live: Any, desired: Any, path: str = "") -> str | None:
    """Where ``contains`` fails (for logs and tests)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return path or "."
        for key, want in desired.items():
            if want is None or (key not in live and want in ({}, [])):
                continue
            if key not in live:
                return f"{path}.{key}"
            diff = first_difference(live[key], want, f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return f"{path}[len]"
        for i, (a, b) in enumerate(zip(live, desired)):
            diff = first_difference(a, b, f"{path}[{i}]")
            if diff:
                return diff
        return None
    return None if _scalar_equal(live, desired) else path
