"""Argument checks shared by the algorithm modules (messages name the argument, value and rule)."""

from __future__ import annotations

import math

from ..errors import ParameterError

__all__ = ["positive_finite"]


def positive_finite(name: str, value) -> float:
    """``value`` as a float; ParameterError unless it is a finite number > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(f"{name} must be finite and > 0, got {value!r}")
    return v
