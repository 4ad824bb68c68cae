"""DN/s → MJy/sr conversion of L2 arrays (ALGORITHMS.md §5.7)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["scale_to_surface_brightness", "surface_brightness_factor"]


def surface_brightness_factor(conversion) -> float:
    """The validated DN/s → MJy/sr factor C (``meta.photometry.conversion_megajanskys``)."""
    try:
        c = float(conversion)
    except (TypeError, ValueError):
        raise ParameterError(f"photometric conversion {conversion!r} is not a number") from None
    if not math.isfinite(c) or c <= 0 or c == -999999.0:
        raise ParameterError(
            f"photometric conversion {conversion!r} must be a finite positive number "
            "(run photom first: meta.photometry.conversion_megajanskys)"
        )
    return c


def scale_to_surface_brightness(conversion: float, data, err, variances=()) -> None:
    """In place: ``data *= C``, ``err *= C``, every variance ``*= C²`` (dtypes kept)."""
    c = surface_brightness_factor(conversion)
    data *= np.asarray(c, dtype=data.dtype)
    err *= np.asarray(c, dtype=err.dtype)
    for var in variances:
        if var is not None:
            var *= np.asarray(c * c, dtype=var.dtype)
