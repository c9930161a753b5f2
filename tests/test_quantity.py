"""reconcile/quantity.py reads quantities as the official client's parse_quantity does (kubernetes==37.0.2
kubernetes/utils/quantity.py, installed with the test extras): the same values, the same refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, strategies as st
from kubernetes.utils.quantity import parse_quantity as official

from sovereign_suite.reconcile.quantity import parse_quantity

SUFFIXES = ["", "n", "u", "m", "k", "K", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "mi", "ki", "i",
            "x", "Kii"]


def _same(text):
    try:
        expected = official(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_quantity(text)
        return
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", ["500m", "2Gi", "1e3", "0.5", "100", "1Ki", "3E", "1.5M", "12", "-1Gi", "",
                                  "Gi", "1mi", "1.2.3", "abc", "1i", 7, 2.5, Decimal("1.25")])
def test_known_quantities(text):
    _same(text)


@given(st.from_regex(r"\A[-+]?[0-9]{0,4}(\.[0-9]{0,3})?([eE][-+]?[0-9])?\Z"), st.sampled_from(SUFFIXES))
def test_any_number_and_suffix_reads_as_the_official_client_reads_it(number, suffix):
    _same(number + suffix)


def test_values():
    assert parse_quantity("2Gi") == 2 * 1024 ** 3 and parse_quantity("500m") == Decimal("0.5")
