"""Kubernetes quantities as admission reads them."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hami_webhook.quantity import QuantityError, parse_quantity, quantity_value
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("text", "exact", "rounded"),
    [
        ("1", Fraction(1), 1),
        ("500m", Fraction(1, 2), 1),
        ("4Gi", Fraction(4 * 2**30), 4 * 2**30),
        ("1k", Fraction(1000), 1000),
        ("1e3", Fraction(1000), 1000),
        ("1.5", Fraction(3, 2), 2),
        ("-1", Fraction(-1), -1),
        (7, Fraction(7), 7),
    ],
)
def test_values(text: Any, exact: Fraction, rounded: int) -> None:
    assert parse_quantity(text) == exact
    assert quantity_value(text) == rounded


@pytest.mark.parametrize("bad", ["", "x", "1 Gi", "1Gb", "1e999", True, 1.5, None, [], "9" * 100])
def test_invalid_values_raise_quoting_the_value(bad: Any) -> None:
    with pytest.raises(QuantityError, match=r"quantity|out of range"):
        parse_quantity(bad)


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_quantity_error(text: str) -> None:
    try:
        value = parse_quantity(text)
    except QuantityError:
        return
    assert isinstance(value, Fraction)
