"""DN/s → MJy/sr conversion of L2 arrays (ALGORITHMS.md §5.7)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

__all__ = ["scale_to_surface_brightness"]


def scale_to_surface_brightness(conversion: float, data, err, variances=()) -> None:
    """In place: ``data *= C``, ``err *= C``, every variance ``*= C²`` (dtypes kept)."""
    try:
        c = float(conversion)
    except (TypeError, ValueError):
        raise ParameterError(f"photometric conversion {conversion!r} is not a number") from None
    if not math.isfinite(c) or c <= 0 or c == -999999.0:
        raise ParameterError(
            f"photometric conversion {conversion!r} must be a finite positive number "
            "(run photom first: meta.photometry.conversion_megajanskys)"
        )
    data *= np.asarray(c, dtype=data.dtype)
    err *= np.asarray(c, dtype=err.dtype)
    for var in variances:
        if var is not None:
            var *= np.asarray(c * c, dtype=var.dtype)
