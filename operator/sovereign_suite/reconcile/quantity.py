"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact decimals, without the ``kubernetes`` package
(importing its ``kubernetes.utils.quantity`` loads the whole client: reconcile/apiclient.py says what that costs).

The same reading as kubernetes==37.0.2 kubernetes/utils/quantity.py ``parse_quantity`` (tests/test_quantity.py
compares the two): a number Python's ``Decimal`` reads, then at most one suffix, binary (``Ki`` ... ``Ei``,
powers of 1024) or decimal (``n``, ``u``, ``m``, ``k``, ``M`` ... ``E``, powers of 1000); the suffixes are
apimachinery's (k8s.io/apimachinery pkg/api/resource/suffix.go). ``K`` is read as ``k``, as that client does.
"""

from __future__ import annotations

from decimal import Decimal, DecimalException, InvalidOperation

_DECIMAL_POWER = {"n": -3, "u": -2, "m": -1, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_BINARY = "KMGTPE"


def parse_quantity(quantity: object) -> Decimal:
    """The quantity's value; ValueError for anything that is not a quantity."""
    if isinstance(quantity, (int, float, Decimal)):
        return Decimal(quantity)
    text = str(quantity)
    number, base, power = text, 0, 0
    if len(text) >= 2 and text[-1] == "i" and text[-2] in _DECIMAL_POWER:
        if text[-2] not in _BINARY:
            raise ValueError(f"{text} has unknown suffix")
        number, base, power = text[:-2], 1024, _DECIMAL_POWER[text[-2]]
    elif text and text[-1] in _DECIMAL_POWER:
        number, base, power = text[:-1], 1000, _DECIMAL_POWER[text[-1]]
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"Invalid number format: {number}") from None
    if not base:
        return value
    try:
        return value * (base ** Decimal(power))
    except DecimalException as exc:
        raise ValueError(f"Invalid quantity: {text}") from exc
