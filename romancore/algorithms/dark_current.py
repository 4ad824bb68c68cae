"""Dark-current subtraction on the count-rate image (ALGORITHMS.md section 5.4).

Since romancal moved the dark step after ramp fitting, the correction is
``rate -= dark_slope`` (DN/s) on the science area and ``dq |= dark.dq``.
NaN dark values count as 0 (no correction for those pixels, as the seed
documents). Error and variance arrays are not touched.

The function returns the (trimmed, NaN-cleaned) dark arrays it used, which
is what the ``dark_output`` step parameter saves.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from ..errors import ParameterError
from .dq_init import REF_BORDER, check_array

log = logging.getLogger(__name__)


class DarkUsed(NamedTuple):
    """The dark actually subtracted (science-area arrays), for ``dark_output``."""

    dark_slope: np.ndarray  # float32 [ny, nx], DN/s, NaN replaced by 0
    dq: np.ndarray  # uint32 [ny, nx]
    dark_slope_error: np.ndarray | None  # float32 [ny, nx] or None


def _science_area(name, arr, shape):
    if arr.shape == tuple(shape):
        return arr
    b = REF_BORDER
    if arr.shape == (shape[0] + 2 * b, shape[1] + 2 * b):
        return arr[b:-b, b:-b]
    raise ParameterError(
        f"{name} must have the image shape {tuple(shape)} or the detector shape "
        f"{(shape[0] + 2 * b, shape[1] + 2 * b)}, got {arr.shape}"
    )


def subtract_dark_slope(
    data: np.ndarray,
    dq: np.ndarray,
    dark_slope: np.ndarray,
    dark_dq: np.ndarray | None = None,
    *,
    dark_slope_error: np.ndarray | None = None,
) -> DarkUsed:
    """Subtract the dark rate from a rate image, in place.

    Parameters
    ----------
    data : float32 [ny, nx]
        Rate image (DN/s), science area only (4088x4088 for the WFI). Modified in place.
    dq : uint32 [ny, nx]
        Image DQ, ORed in place with ``dark_dq``.
    dark_slope : float [ny, nx] or [ny+8, nx+8]
        DARK reference ``dark_slope`` (DN/s); a detector-size array is trimmed
        by the 4-pixel reference border.
    dark_dq : uint32, same shape as dark_slope, or None
        DARK reference ``dq``.
    dark_slope_error : float, same shape as dark_slope, or None
        Only trimmed and returned (for ``dark_output``).

    Returns
    -------
    DarkUsed
        The trimmed dark rate with NaN set to 0 (float32), the trimmed DQ and error.
    """
    check_array("data", data, ndim=2, dtype=np.float32)
    check_array("dq", dq, ndim=2, dtype=np.uint32, shape=data.shape)
    check_array("dark_slope", dark_slope, ndim=2)
    slope = np.array(_science_area("dark_slope", dark_slope, data.shape), dtype=np.float32)
    bad = ~np.isfinite(slope)
    if bad.any():
        log.info("%d dark_slope values are NaN/inf; those pixels get no dark correction", int(bad.sum()))
        slope[bad] = 0.0
    if dark_dq is None:
        ddq = np.zeros(data.shape, dtype=np.uint32)
    else:
        check_array("dark_dq", dark_dq, ndim=2, shape=dark_slope.shape)
        if not np.issubdtype(dark_dq.dtype, np.integer):
            raise ParameterError(f"dark_dq must be an integer array, got {dark_dq.dtype}")
        ddq = np.array(_science_area("dark_dq", dark_dq, data.shape), dtype=np.uint32)
    err = None
    if dark_slope_error is not None:
        check_array("dark_slope_error", dark_slope_error, ndim=2, shape=dark_slope.shape)
        err = np.array(_science_area("dark_slope_error", dark_slope_error, data.shape), dtype=np.float32)
    data -= slope
    dq |= ddq
    return DarkUsed(slope, ddq, err)


__all__ = ["DarkUsed", "subtract_dark_slope"]
