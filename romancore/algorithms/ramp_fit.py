"""Ramp fitting with the ``ols_cas22`` algorithm and integrated jump detection.

Count rates of up-the-ramp resultants read with an arbitrary (uneven) read pattern, by
optimal-weighted least squares (Casertano et al. 2022, "Determining the best-fitting slope
and its uncertainty for unevenly sampled ramps"; weights after Fixsen et al. 2000, PASP 112,
1350), with the jump test of Sharma et al. (2023) run inside the fit.  Equations and constants:
ALGORITHMS.md §1.1-§1.6.

Jump detection has a second stage (``jump_refit``, on by default).  The Cas22 statistic
compares each resultant difference with the slope of the whole segment, which still holds
the jump; at low signal that slope absorbs a large part of it.  A segment whose Cas22
maximum stays at or below the threshold but above ``jump_refit_screen`` is tested again:
for every candidate (a step between two resultants, or inside one) the resultants on either
side are fitted with one common slope m_c (inverse read-variance combination of the two
sub-segment slopes, §1.3), the step ``J = R_after - R_before - m_c (tbar_after -
tbar_before)`` is written as a linear combination of the resultants, and ``Z = J / sqrt(var
J)`` uses the exact read + Poisson variance of that combination.  A maximum Z above the
threshold flags the pair of resultants and splits the segment as in stage 1.  Segments
stage 1 flags are handled exactly as in the reference; ``jump_refit=False`` gives the pure
Cas22 result.

The fit works in electrons (resultants and read noise times the gain) and returns DN/s.
Differences from the reference implementation, all deliberate:

* every sum is accumulated in double precision (the reference rounds partial sums to float32);
* segments are combined with weights from their read-noise variance per unit read variance,
  which equals the reference weighting whenever the read noise is positive and stays
  defined for zero read noise (the reference returns slope 0 there);
* non-finite resultants are excluded from the fit and flagged DO_NOT_USE in the returned
  group DQ;
* a gain <= 0 or NaN gives NaN results with NO_GAIN_VALUE | DO_NOT_USE (the reference
  misses gain == 0), and a negative or NaN read noise gives NaN results with DO_NOT_USE.

The kernel is ``romancore._ext.ramp_fit``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from romancore._ext import ramp_fit as _kernel
from romancore.algorithms.checks import positive_finite
from romancore.dq import group as group_flags
from romancore.errors import ParameterError

log = logging.getLogger(__name__)

__all__ = [
    "ReadPatternQuantities",
    "RampFitResult",
    "read_pattern_quantities",
    "jump_threshold",
    "fit_ramps_cas22",
    "JUMP_REFIT_SCREEN",
]

JUMP_REFIT_SCREEN = 3.0
"""Default screening level of the stage-2 jump refit: segments whose Cas22 maximum statistic
exceeds it (but not the threshold) are refitted."""


class ReadPatternQuantities(NamedTuple):
    """Per-resultant quantities of a read pattern (ALGORITHMS.md §1.1), float64 arrays."""

    t_bar: np.ndarray
    """Mean read time of each resultant (s)."""
    tau: np.ndarray
    """Variance-weighted read time (s): Var_Poisson(R_i) = f tau_i."""
    n_reads: np.ndarray
    """Number of reads averaged into each resultant."""


class RampFitResult(NamedTuple):
    """Result of :func:`fit_ramps_cas22`; images have the shape (ny, nx) of the input."""

    slope: np.ndarray
    """float32 count rate (DN/s)."""
    var_poisson: np.ndarray
    """float32 Poisson variance of the slope ((DN/s)^2)."""
    var_rnoise: np.ndarray
    """float32 read-noise variance of the slope ((DN/s)^2)."""
    err: np.ndarray
    """float32 sqrt(var_poisson + var_rnoise) (DN/s)."""
    dq: np.ndarray
    """uint32 pixel DQ: the input pixel DQ plus the flags collapsed from the group DQ."""
    groupdq: np.ndarray
    """uint8 (nres, ny, nx) C-ordered copy of the group DQ with JUMP_DET (and DO_NOT_USE on
    non-finite resultants) added."""
    jumps: np.ndarray | None
    """int32 (M, 3) rows of (resultant, y, x) of resultants newly flagged JUMP_DET, ordered by
    y, x, resultant (coordinates of the arrays passed in); None unless record_jumps."""
    dumo: np.ndarray | None = None
    """float32 (ny, nx) uniformly weighted slope of all resultants minus ``slope`` (DN/s);
    None unless return_dumo."""


def _check_read_pattern(read_pattern) -> list[list[int]]:
    if isinstance(read_pattern, (str, bytes)) or not isinstance(read_pattern, Sequence | np.ndarray):
        raise ParameterError(
            f"read_pattern must be a list of lists of 1-based read numbers, got {read_pattern!r}"
        )
    pattern: list[list[int]] = []
    last = 0
    for i, res in enumerate(read_pattern):
        if isinstance(res, (str, bytes)) or not isinstance(res, Sequence | np.ndarray) or len(res) == 0:
            raise ParameterError(
                f"read_pattern[{i}] must be a non-empty list of read numbers, got {res!r}"
            )
        reads = []
        for r in res:
            if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer)):
                raise ParameterError(f"read_pattern[{i}] holds {r!r}; read numbers must be integers")
            if r <= last:
                raise ParameterError(
                    f"read_pattern[{i}] holds read {int(r)} after read {last}; read numbers must "
                    "be >= 1 and strictly increasing through the pattern"
                )
            last = int(r)
            reads.append(last)
        pattern.append(reads)
    if not pattern:
        raise ParameterError("read_pattern is empty; it needs one list of reads per resultant")
    return pattern


def read_pattern_quantities(read_pattern, frame_time: float) -> ReadPatternQuantities:
    """Mean time, variance-weighted time and read count of each resultant.

    Parameters
    ----------
    read_pattern : list of lists of int
        1-based read numbers averaged into each resultant, strictly increasing.
    frame_time : float
        Time between reads (s); read k is at ``k * frame_time``.

    Returns
    -------
    ReadPatternQuantities
        ``t_bar_i = frame_time * mean(reads_i)``,
        ``tau_i = frame_time / N_i**2 * sum_k (2 N_i - 2 k + 1) r_ik`` (k = 1..N_i),
        ``n_reads_i = N_i``, all float64 of length nres.

    Examples
    --------
    >>> q = read_pattern_quantities([[1], [2, 3]], 2.0)
    >>> q.t_bar.tolist(), q.tau.tolist(), q.n_reads.tolist()
    ([2.0, 5.0], [2.0, 4.5], [1.0, 2.0])
    """
    pattern = _check_read_pattern(read_pattern)
    frame_time = positive_finite("frame_time", frame_time)
    nres = len(pattern)
    t_bar = np.empty(nres)
    tau = np.empty(nres)
    n_reads = np.empty(nres)
    for i, reads in enumerate(pattern):
        r = np.asarray(reads, dtype=np.float64)
        n = r.size
        k = np.arange(1, n + 1)
        t_bar[i] = frame_time * r.mean()
        tau[i] = frame_time / n**2 * np.sum((2 * n - 2 * k + 1) * r)
        n_reads[i] = n
    return ReadPatternQuantities(t_bar, tau, n_reads)


def jump_threshold(slope_e, threshold_intercept: float = 5.5, threshold_constant: float = 1 / 3):
    """Jump threshold for a segment slope in electrons/s:
    ``intercept - constant * log10(clip(slope, 1, 1e4))``."""
    return threshold_intercept - threshold_constant * np.log10(np.clip(slope_e, 1.0, 1.0e4))


def _image(name: str, value, shape: tuple[int, int], dtype) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" and not (dtype == np.uint32 and arr.dtype.kind == "b"):
        raise ParameterError(f"{name} must be a real-valued array, got dtype {arr.dtype}")
    if arr.ndim > 2:
        raise ParameterError(f"{name} must be a scalar or an image of shape {shape}, got shape {arr.shape}")
    try:
        arr = np.broadcast_to(arr, shape)
    except ValueError:
        raise ParameterError(
            f"{name} has shape {arr.shape}, which does not match the image shape {shape}"
        ) from None
    if dtype == np.uint32 and arr.dtype.kind in "iu" and arr.size and (arr.min() < 0 or arr.max() > 0xFFFFFFFF):
        raise ParameterError(f"{name} holds values outside the uint32 range")
    return arr.astype(dtype, copy=False)


def fit_ramps_cas22(
    resultants,
    groupdq,
    pixeldq,
    read_noise,
    gain,
    read_pattern,
    frame_time: float,
    *,
    use_jump_detection: bool = True,
    threshold_intercept: float = 5.5,
    threshold_constant: float = 1 / 3,
    jump_refit: bool = True,
    jump_refit_screen: float = JUMP_REFIT_SCREEN,
    nthreads: int | None = None,
    record_jumps: bool = False,
    groupdq_out: np.ndarray | None = None,
    return_dumo: bool = False,
) -> RampFitResult:
    """Fit count rates to ramps of resultants with ``ols_cas22`` and detect jumps.

    Parameters
    ----------
    resultants : ndarray (nres, ny, nx)
        Resultants in DN.  float32 arrays are used as they are, with any strides (pass
        ``data[:, 4:-4, 4:-4]`` to fit the science area without a copy); other real dtypes
        are converted to float32 (a copy of the cube).
    groupdq : ndarray (nres, ny, nx) of uint8, or None
        Group DQ; any nonzero flag excludes a resultant and splits the ramp into segments.
        Not modified.  None means all zero.
    pixeldq : ndarray (ny, nx) of uint32, or None
        Pixel DQ, copied into the output DQ.  None means all zero.
    read_noise : float or ndarray (ny, nx)
        Noise of a single read (DN).  0 is allowed; negative or NaN gives NaN results.
    gain : float or ndarray (ny, nx)
        Gain (e/DN).  <= 0 or NaN gives NaN results flagged NO_GAIN_VALUE | DO_NOT_USE.
    read_pattern : list of lists of int
        1-based read numbers of each resultant (``meta.exposure.read_pattern``);
        its length must equal nres.
    frame_time : float
        Time between reads (s) (``meta.exposure.frame_time``).
    use_jump_detection : bool
        Run the integrated jump detection (ALGORITHMS.md §1.4).
    threshold_intercept, threshold_constant : float
        Jump threshold ``intercept - constant * log10(clip(slope_e, 1, 1e4))`` on the
        segment slope in e/s; a segment jumps when its statistic exceeds it.
    jump_refit : bool
        Run the stage-2 common-slope refit (module docstring) on segments the Cas22
        statistic does not flag; False gives the pure Cas22 result.
    jump_refit_screen : float
        Segments whose Cas22 maximum statistic is at or below this level (in sigma) skip
        the refit.  ``-inf`` refits every unflagged segment of three or more resultants.
    nthreads : int or None
        OpenMP threads over rows; None or 0 uses the OpenMP default (``OMP_NUM_THREADS``).
    record_jumps : bool
        Also return the positions of the detected jumps.
    groupdq_out : ndarray (nres, ny, nx) of uint8, or None
        Writable array (any strides) that receives the output group DQ, e.g. ``groupdq``
        itself for an in-place update (no separate output cube, no copy back).  None
        allocates a new C-ordered array.
    return_dumo : bool
        Also return ``dumo``: the slope of all resultants fitted with uniform weights (each
        resultant weighted by its read count, DQ ignored) minus the optimal slope, in DN/s,
        computed in the parallel kernel.  0 everywhere when fewer than two resultants or all
        mean times coincide.

    Returns
    -------
    RampFitResult
        ``slope``, ``var_poisson``, ``var_rnoise``, ``err`` (float32, DN/s and (DN/s)^2),
        ``dq`` (uint32), ``groupdq`` (uint8, jump flags added; ``groupdq_out`` if given),
        ``jumps`` and ``dumo``.

    Notes
    -----
    Pixel DQ (ALGORITHMS.md §1.6): the input pixel DQ, plus JUMP_DET if any resultant has
    JUMP_DET, SATURATED if every resultant is SATURATED, DO_NOT_USE if every resultant is
    SATURATED or DO_NOT_USE, or the slope is not finite, or err <= 0; NO_GAIN_VALUE (and
    DO_NOT_USE) for a gain <= 0 or NaN.

    A segment needs two resultants.  A pixel without any such segment (a single-resultant
    exposure, every resultant flagged, or only isolated good resultants) gets slope 0,
    variances 0, err 0 and DO_NOT_USE: one resultant alone cannot separate the rate from the
    pixel's bias.  A jump found at the first or last resultants of a segment leaves one
    sub-segment (or none).

    Examples
    --------
    >>> import numpy as np
    >>> pattern = [[1], [2], [3]]
    >>> ramp = (100.0 + 2.0 * 3.0 * np.arange(1, 4, dtype=np.float32)).reshape(3, 1, 1)
    >>> out = fit_ramps_cas22(ramp, None, None, 10.0, 1.0, pattern, 3.0)
    >>> float(out.slope[0, 0])
    2.0
    """
    pattern = _check_read_pattern(read_pattern)
    frame_time = positive_finite("frame_time", frame_time)
    for name, value in (("threshold_intercept", threshold_intercept),
                        ("threshold_constant", threshold_constant)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value):
            raise ParameterError(f"{name} must be a finite number, got {value!r}")
    if isinstance(jump_refit_screen, bool) \
            or not isinstance(jump_refit_screen, (int, float, np.integer, np.floating)) \
            or math.isnan(jump_refit_screen):
        raise ParameterError(f"jump_refit_screen must be a number (not NaN), got {jump_refit_screen!r}")
    if nthreads is None:
        nthreads = 0
    if isinstance(nthreads, bool) or not isinstance(nthreads, (int, np.integer)) or nthreads < 0:
        raise ParameterError(f"nthreads must be None or an integer >= 0, got {nthreads!r}")

    data = resultants if isinstance(resultants, np.ndarray) else np.asarray(resultants)
    if data.ndim != 3:
        raise ParameterError(
            f"resultants must be a 3-D array (nres, ny, nx), got shape {data.shape}"
        )
    if data.dtype != np.float32:
        if data.dtype.kind not in "fiu":
            raise ParameterError(f"resultants must be real-valued, got dtype {data.dtype}")
        log.debug("converting resultants from %s to float32 (copy)", data.dtype)
        data = data.astype(np.float32)
    nres, ny, nx = data.shape
    if len(pattern) != nres:
        raise ParameterError(
            f"read_pattern has {len(pattern)} resultants but resultants has {nres} "
            f"(shape {data.shape}); they must match"
        )
    if nres < 2:
        log.warning("single-resultant ramps: no slope can be fitted; every pixel gets DO_NOT_USE")

    if groupdq is None:
        gdq = np.broadcast_to(np.uint8(0), data.shape)
    else:
        gdq = np.asarray(groupdq)
        if gdq.shape != data.shape:
            raise ParameterError(
                f"groupdq has shape {gdq.shape}, which does not match resultants {data.shape}"
            )
        if gdq.dtype != np.uint8:
            if gdq.dtype.kind not in "iu":
                raise ParameterError(f"groupdq must be an integer (uint8) array, got dtype {gdq.dtype}")
            if gdq.size and (gdq.min() < 0 or gdq.max() > 255):
                raise ParameterError("groupdq holds values outside the uint8 range 0..255")
            gdq = gdq.astype(np.uint8)
    pdq = _image("pixeldq", 0 if pixeldq is None else pixeldq, (ny, nx), np.uint32)
    rn = _image("read_noise", read_noise, (ny, nx), np.float32)
    g = _image("gain", gain, (ny, nx), np.float32)

    if groupdq_out is not None:
        if not isinstance(groupdq_out, np.ndarray) or groupdq_out.dtype != np.uint8 \
                or groupdq_out.shape != data.shape or not groupdq_out.flags.writeable:
            raise ParameterError(
                f"groupdq_out must be a writable uint8 array of shape {data.shape}, got "
                f"{type(groupdq_out).__name__} {getattr(groupdq_out, 'dtype', '')} "
                f"{getattr(groupdq_out, 'shape', '')}"
            )
    gdq_in = gdq
    if record_jumps and groupdq_out is not None and np.may_share_memory(gdq, groupdq_out):
        gdq_in = gdq.copy()  # the positions need the flags as they were before the fit

    q = read_pattern_quantities(pattern, frame_time)
    dumo_weights = None
    if return_dumo:
        n, t = q.n_reads, q.t_bar
        big_n, nt, ntt = n.sum(), (n * t).sum(), (n * t * t).sum()
        denom = big_n * ntt - nt * nt
        if nres >= 2 and denom != 0:
            dumo_weights = (big_n * n * t - nt * n) / denom
    slope, vp, vr, err, dq, gdq_out, jumps_per_row, dumo = _kernel.fit_cas22(
        data, gdq, pdq, rn, g, q.t_bar, q.tau, q.n_reads,
        use_jump=bool(use_jump_detection),
        threshold_intercept=float(threshold_intercept),
        threshold_constant=float(threshold_constant),
        jump_refit=bool(jump_refit),
        refit_screen=float(jump_refit_screen),
        nthreads=int(nthreads),
        groupdq_out=groupdq_out,
        dumo_weights=dumo_weights,
    )
    if return_dumo and dumo is None:
        dumo = np.zeros((ny, nx), dtype=np.float32)
    jumps = None
    if record_jumps:
        offsets = np.zeros(ny + 1, dtype=np.int64)
        np.cumsum(jumps_per_row, out=offsets[1:])
        jumps = _kernel.jump_positions(gdq_in, gdq_out, offsets, nthreads=int(nthreads))
    n_jump = int(jumps_per_row.sum())
    log.debug("ols_cas22: %d resultants flagged %s", n_jump, group_flags.JUMP_DET.name)
    return RampFitResult(slope, vp, vr, err, dq, gdq_out, jumps, dumo)
