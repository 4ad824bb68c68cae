"""Saturation flagging of ramps (ALGORITHMS.md section 3, seed 002 "Saturation Detection").

A resultant is SATURATED from the first one whose value reaches the pixel's
threshold onwards. Resultants at or below zero get AD_FLOOR|DO_NOT_USE. Because
a resultant averages several reads, the one just before saturation may hold
saturated reads while its mean stays below the threshold: with the dilution
factor ``D_g = mean(read_pattern[g]) / last(read_pattern[g])`` it is marked
DO_NOT_USE when ``R_g >= threshold * D_g``. A second check marks resultant 1
DO_NOT_USE when resultant 2 saturates although resultant 0 did not predict it
and resultant 1 climbed faster than the remaining head-room allows.

Pixels flagged NO_SAT_CHECK in the reference DQ, or with a NaN threshold,
get a threshold above the 16-bit A/D range (they never saturate) and the
NO_SAT_CHECK bit in ``pixeldq``.
"""

from __future__ import annotations

import logging

import numpy as np

from .._ext import saturation as _kernel
from ..dq import pixel
from ..errors import ParameterError
from .dq_init import check_array, check_ramp, check_read_pattern

log = logging.getLogger(__name__)

ATOD_LIMIT = 65535.0
"""Largest value of the 16-bit analog-to-digital converter (DN)."""

NO_SAT_CHECK_THRESHOLD = ATOD_LIMIT + 1.0
"""Threshold given to NO_SAT_CHECK / NaN-threshold pixels: above any A/D value."""


def dilution_factors(read_pattern) -> np.ndarray:
    """``mean(reads) / last(read)`` of every resultant (float64 [nres]); 1 for single reads."""
    rp = check_read_pattern(read_pattern)
    return np.array([np.mean(res) / res[-1] for res in rp], dtype=np.float64)


def flag_saturation(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    threshold: np.ndarray,
    threshold_dq: np.ndarray,
    read_pattern,
    *,
    n_pix_grow_sat: int = 0,
    backup: int = 0,
) -> bool:
    """Flag saturated resultants in place.

    Parameters
    ----------
    data : float32 [nres, ny, nx]
        Ramp in DN (after dq_init). Not modified.
    groupdq : uint8 [nres, ny, nx]
        Group DQ, updated in place (SATURATED, DO_NOT_USE, AD_FLOOR).
    pixeldq : uint32 [ny, nx]
        Pixel DQ, updated in place: ORed with ``threshold_dq``, plus NO_SAT_CHECK
        where the threshold is NaN.
    threshold : float32 [ny, nx]
        SATURATION reference ``data`` (DN).
    threshold_dq : uint32 [ny, nx]
        SATURATION reference ``dq``.
    read_pattern : list of lists of int
        ``meta.exposure.read_pattern`` (1-based read numbers), one list per resultant.
    n_pix_grow_sat : int, >= 0
        Half-width of the box by which SATURATED (and dilution DO_NOT_USE) flags
        are grown; 0 = no growth.
    backup : int, >= 0
        Number of passes copying SATURATED from resultant i+1 to a
        multi-read resultant i.

    Returns
    -------
    bool
        True when every pixel is SATURATED in every resultant (the pipeline
        then stops with a zeroed image).
    """
    check_ramp(data, groupdq, pixeldq)
    nres, ny, nx = data.shape
    rp = check_read_pattern(read_pattern, nres)
    threshold = check_array("threshold", threshold, ndim=2, shape=(ny, nx))
    threshold_dq = check_array("threshold_dq", threshold_dq, ndim=2, shape=(ny, nx))
    if not np.issubdtype(threshold_dq.dtype, np.integer):
        raise ParameterError(f"threshold_dq must be an integer array, got {threshold_dq.dtype}")
    for name, value in (("n_pix_grow_sat", n_pix_grow_sat), ("backup", backup)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ParameterError(f"{name} must be an integer >= 0, got {value!r}")
    if n_pix_grow_sat >= 32767:
        raise ParameterError(f"n_pix_grow_sat must be < 32767, got {n_pix_grow_sat}")
    thr = np.ascontiguousarray(threshold, dtype=np.float32)
    tdq = np.ascontiguousarray(threshold_dq, dtype=np.uint32)
    dil = dilution_factors(rp)
    multi = np.array([len(res) > 1 for res in rp], dtype=np.uint8)
    if nres > 2:
        mean0, last2, n1 = float(np.mean(rp[0])), float(rp[2][-1]), float(len(rp[1]))
    else:
        mean0, last2, n1 = 1.0, 1.0, 1.0
    nall = _kernel.flag_saturation(
        data, groupdq, pixeldq, thr, tdq, np.uint32(pixel.NO_SAT_CHECK),
        NO_SAT_CHECK_THRESHOLD, dil, multi, mean0, last2, n1,
        int(n_pix_grow_sat), int(backup),
    )
    all_saturated = nall == ny * nx
    if all_saturated:
        log.warning("every pixel is saturated in every resultant")
    return bool(all_saturated)


__all__ = ["ATOD_LIMIT", "NO_SAT_CHECK_THRESHOLD", "dilution_factors", "flag_saturation"]
