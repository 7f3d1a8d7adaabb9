"""Argument checks that name the field and what is allowed (STYLE.md 5), shared package-wide."""

from __future__ import annotations

import math
from typing import Any, get_args


def check_choice(field: str, value: Any, literal: Any) -> None:
    """Reject a value outside a ``Literal``, naming the field and the allowed values."""
    allowed = get_args(literal)
    if value not in allowed:
        raise ValueError(f"{field} must be one of {allowed}, got {value!r}")


def check_range(field: str, value: float, low: float, high: float = math.inf) -> None:
    """Reject a number outside [low, high], naming the field."""
    if not (low <= value <= high):
        raise ValueError(f"{field} must be in [{low}, {high}], got {value!r}")


def check_int(field: str, value: Any, low: int) -> None:
    """Reject a non-int (or a bool) or an int below ``low``, naming the field."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{field} must be an int >= {low}, got {value!r}")
