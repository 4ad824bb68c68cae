"""Classic and read-level linearity correction (ALGORITHMS.md section 5.3, seed 002).

The LINEARITY polynomial ``L(x) = sum_k c_k x^k`` maps raw counts (DN) to
linearised counts. Without an inverse polynomial every non-saturated
resultant becomes ``L(R)`` ("classic"). With the INVERSELINEARITY polynomial
``IL`` the correction is done read by read, which is right for resultants
that average several reads:

1. ``F = L(R_0)``, ``Z = L(R_last)`` with ``last`` the second-to-last
   unsaturated resultant (at least 1); ``c = (Z - F) / (M_last - M_0)``
   with ``M_i`` the mean read number of resultant i;
2. each read r of resultant i gets ``raw_r = IL(F + c (r - M_0))``, shifted so
   that the reads average to the observed ``R_i``; with an integral
   non-linearity table, ``raw_r += INL_channel(raw_r)``;
3. ``R_i <- mean_r L(raw_r)``.

Saturated resultants are not changed. Pixels flagged NO_LIN_CORR in the
reference DQ, or whose coefficients contain NaN or have a zero linear term,
are left uncorrected; the latter two get NO_LIN_CORR in ``pixeldq``. The
reference DQ arrays are ORed into ``pixeldq``. Finally values with
``|R| > 1e6`` are clipped to +-1e6 and marked DO_NOT_USE.
"""

from __future__ import annotations

import logging

import numpy as np

from .._ext import linearity as _kernel
from ..dq import pixel
from ..errors import ParameterError
from .dq_init import check_array, check_ramp, check_read_pattern

log = logging.getLogger(__name__)

CLIP_DN = 1.0e6
"""Corrected values beyond +-CLIP_DN are clipped and marked DO_NOT_USE."""

CHANNEL_WIDTH = 128
"""Columns per readout channel (the INL correction is per channel)."""


def _check_coeffs(name, coeffs, dq, shape):
    check_array(name, coeffs, ndim=3)
    if coeffs.shape[1:] != tuple(shape):
        raise ParameterError(
            f"{name} must have shape (ncoeffs, {shape[0]}, {shape[1]}), got {coeffs.shape}"
        )
    if coeffs.shape[0] < 1:
        raise ParameterError(f"{name} must hold at least one coefficient plane")
    if not np.issubdtype(coeffs.dtype, np.floating):
        raise ParameterError(f"{name} must be a float array, got {coeffs.dtype}")
    dq_name = f"{name.replace('coeffs', '')}dq" if name != "coeffs" else "lin_dq"
    if dq is None:
        dq = np.zeros(shape, dtype=np.uint32)
    check_array(dq_name, dq, ndim=2, shape=shape)
    if not np.issubdtype(dq.dtype, np.integer):
        raise ParameterError(f"{dq_name} must be an integer array, got {dq.dtype}")
    coeffs = np.ascontiguousarray(coeffs, dtype=np.float32)
    if coeffs.shape[0] < 2:
        # a constant-only polynomial has no linear term: every pixel gets the benign
        # identity, which needs a (zero) linear plane to be expressed
        coeffs = np.concatenate([coeffs, np.zeros_like(coeffs)], axis=0)
    return coeffs, np.ascontiguousarray(dq, dtype=np.uint32)


def _check_inl(inl_value, inl_correction, nx):
    if inl_value is None and inl_correction is None:
        return np.zeros(0, dtype=np.float64), np.zeros((1, 1), dtype=np.float64)
    if inl_value is None or inl_correction is None:
        raise ParameterError("inl_value and inl_correction must be given together")
    value = np.ascontiguousarray(inl_value, dtype=np.float64)
    corr = np.ascontiguousarray(inl_correction, dtype=np.float64)
    if value.ndim != 1 or value.size < 2:
        raise ParameterError(f"inl_value must be 1-D with >= 2 points, got shape {value.shape}")
    if not np.all(np.diff(value) > 0):
        raise ParameterError("inl_value must be strictly increasing")
    nchan = -(-nx // CHANNEL_WIDTH)
    if corr.shape != (nchan, value.size):
        raise ParameterError(
            f"inl_correction must have shape ({nchan}, {value.size}) (channel, value), got {corr.shape}"
        )
    if not (np.all(np.isfinite(value)) and np.all(np.isfinite(corr))):
        raise ParameterError("inl_value and inl_correction must be finite")
    return value, corr


def correct_linearity(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    coeffs: np.ndarray,
    lin_dq: np.ndarray | None = None,
    *,
    read_pattern=None,
    inverse_coeffs: np.ndarray | None = None,
    inverse_dq: np.ndarray | None = None,
    inl_value: np.ndarray | None = None,
    inl_correction: np.ndarray | None = None,
) -> str:
    """Correct a ramp for non-linearity in place.

    Parameters
    ----------
    data : float32 [nres, ny, nx]
        Ramp (DN), corrected in place.
    groupdq : uint8 [nres, ny, nx]
        Read (SATURATED) and updated in place (DO_NOT_USE where clipped).
    pixeldq : uint32 [ny, nx]
        Updated in place (reference DQ, NO_LIN_CORR).
    coeffs : float [ncoeffs, ny, nx]
        LINEARITY coefficients, ``coeffs[k]`` multiplies ``x**k``.
    lin_dq : uint32 [ny, nx] or None
        LINEARITY reference DQ.
    read_pattern : list of lists of int
        Required with ``inverse_coeffs`` (1-based read numbers per resultant).
    inverse_coeffs, inverse_dq : INVERSELINEARITY coefficients / DQ, same layout.
        When given (and there are >= 2 resultants) the read-level algorithm runs.
    inl_value : float [nvalue], inl_correction : float [nchannels, nvalue]
        Optional integral non-linearity table (DN), per 128-column channel
        (channel of column x is ``x // 128``); only used by the read-level path.

    Returns
    -------
    str
        ``"read_level"`` or ``"classic"``: the algorithm that ran.
    """
    check_ramp(data, groupdq, pixeldq)
    nres, ny, nx = data.shape
    c, cdq = _check_coeffs("coeffs", coeffs, lin_dq, (ny, nx))
    nolin = np.uint32(pixel.NO_LIN_CORR)
    if inverse_coeffs is None:
        if inverse_dq is not None or inl_value is not None or inl_correction is not None:
            raise ParameterError("inverse_dq / inl_* need inverse_coeffs")
        _kernel.classic(data, groupdq, pixeldq, c, cdq, nolin, CLIP_DN)
        return "classic"
    if read_pattern is None:
        raise ParameterError("read_pattern is required with inverse_coeffs")
    rp = check_read_pattern(read_pattern, nres)
    ic, icdq = _check_coeffs("inverse_coeffs", inverse_coeffs, inverse_dq, (ny, nx))
    value, corr = _check_inl(inl_value, inl_correction, nx)
    if nres < 2:
        log.info("single resultant: classic linearity correction instead of read-level")
        pixeldq |= icdq
        _kernel.classic(data, groupdq, pixeldq, c, cdq, nolin, CLIP_DN)
        return "classic"
    reads = np.array([r for res in rp for r in res], dtype=np.float64)
    starts = np.zeros(nres + 1, dtype=np.intp)
    starts[1:] = np.cumsum([len(res) for res in rp])
    _kernel.read_level(
        data, groupdq, pixeldq, c, cdq, ic, icdq, reads, starts, value, corr,
        CHANNEL_WIDTH, nolin, CLIP_DN,
    )
    return "read_level"


__all__ = ["CHANNEL_WIDTH", "CLIP_DN", "correct_linearity"]
