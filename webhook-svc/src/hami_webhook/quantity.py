"""Kubernetes resource quantities (``"1"``, ``"500m"``, ``"4Gi"``, ``"1e3"``) as exact numbers.

Only what admission needs: parse to a `Fraction` and round up to an integer the way
``resource.Quantity.Value()`` does. Anything else raises `QuantityError`, whose message quotes the
value, so the caller can tell the user which resource to fix.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<dec>[numkMGTPE])"
    r"|[eE](?P<exp>[+-]?\d+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_EXPONENT = 30  # far beyond any real quantity; keeps hostile input cheap


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity."""


def parse_quantity(value: Any) -> Fraction:
    """The exact value of a quantity string (ints are accepted too; bools and floats are not)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if not isinstance(value, str) or len(value) > 64:
        raise QuantityError(f"{value!r} is not a quantity")
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity (e.g. '1', '500m', '4Gi')")
    number = Fraction(str(match["num"]))
    if match["bin"]:
        return number * Fraction(1024) ** _BINARY[match["bin"]]
    exponent = _DECIMAL[match["dec"]] if match["dec"] else int(match["exp"] or 0)
    if abs(exponent) > _MAX_EXPONENT:
        raise QuantityError(f"{value!r} is out of range")
    return number * Fraction(10) ** exponent


def quantity_value(value: Any) -> int:
    """The quantity rounded up to an integer, like Kubernetes ``Quantity.Value()``."""
    return math.ceil(parse_quantity(value))
