"""Dark-decay signal and the WFI18 first-resultant transient (ALGORITHMS.md section 5.2).

Both effects decay with the time since the detector was reset, so both need
the time at which every pixel is read: :func:`frame_read_times`.

Read-time model (per frame, seconds from the start of the frame read-out):
32 channels of 128 columns are clocked in parallel; a row takes
``128 + 14`` pixel clocks of 4.915263 us; after every 256 rows a
guide-window excursion makes the row time 1.5x longer once; odd channels
read their columns in reverse order. The detector read-out frame is mapped to
the science frame with a column flip for SCA numbers divisible by 3 and a
row flip otherwise. Read ``r`` (1-based) of pixel p happens at
``t(p, r) = (r - 1.5) * frame_time + t_pix(p)``.

*Dark decay*: ``R_i -= mean_{r in read_pattern[i]} A exp(-t(p, r) / tau)``
with amplitude A (DN) and time constant tau (s) of the detector from the
DARKDECAYSIGNAL reference. The read time is a row part plus a column
part, so the correction of each resultant is an outer product of two vectors.

*WFI18 transient*: the first resultant of WFI18 carries an extra signal that
decays over the first ~1000 rows. The expected first resultant is
extrapolated from a straight-line fit (in mean read time) to resultants
1..n-1 of clean pixels; the median residual of each row is fitted with a
double exponential ``a exp(-t/tau_a) + b exp(-t/tau_b)`` in read time, and
the model, averaged over the reads of resultant 0, is subtracted from
resultant 0. With fewer than 5 resultants, or when the fit fails, rows
0-999 of resultant 0 are flagged DO_NOT_USE|WFI18_TRANSIENT instead.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np

from ..dq import group
from ..errors import ParameterError
from .dq_init import check_ramp, check_read_pattern

log = logging.getLogger(__name__)

PIXEL_CLOCK = 4.915263e-6
"""Seconds per pixel clock."""
ROW_PAD_CLOCKS = 14
"""Extra clocks per channel row (line overhead)."""
CHANNEL_WIDTH = 128
GUIDE_WINDOW_PERIOD = 256
"""Rows between guide-window excursions."""
GUIDE_WINDOW_INFLATION = 1.5
"""Row-time factor of the row with a guide-window excursion."""
READ_TIME_ORIGIN = 1.5
"""Read r starts (r - READ_TIME_ORIGIN) frame times after the reference epoch."""

WFI18_MASK_ROWS = 1000
WFI18_MIN_RESULTANTS = 5


def detector_number(detector) -> int:
    """SCA number 1..18 from ``'WFI07'``, ``'wfi07'``, ``7`` ..."""
    if isinstance(detector, (int, np.integer)) and not isinstance(detector, bool):
        n = int(detector)
    elif isinstance(detector, str) and re.fullmatch(r"(?i)(wfi)?0*(\d{1,2})", detector.strip()):
        n = int(re.fullmatch(r"(?i)(wfi)?0*(\d{1,2})", detector.strip()).group(2))
    else:
        raise ParameterError(f"detector must be 'WFI01'..'WFI18' or 1..18, got {detector!r}")
    if not 1 <= n <= 18:
        raise ParameterError(f"detector must be 'WFI01'..'WFI18' or 1..18, got {detector!r}")
    return n


def frame_read_time_parts(detector, shape=(4096, 4096)) -> tuple[np.ndarray, np.ndarray]:
    """Row and column parts of the read time: ``t[y, x] = t_row[y] + t_col[x]`` (s, float64).

    The read time separates because all channels are clocked together; this
    makes maps of ``exp(-t/tau)`` outer products of two vectors.
    """
    sca = detector_number(detector)
    ny, nx = (int(s) for s in shape)
    if ny < 1 or nx < 1:
        raise ParameterError(f"shape must be (ny >= 1, nx >= 1), got {tuple(shape)}")
    row_clocks = CHANNEL_WIDTH + ROW_PAD_CLOCKS
    rows = np.arange(ny)
    t_row = (rows + (GUIDE_WINDOW_INFLATION - 1.0) * (rows // GUIDE_WINDOW_PERIOD)) * row_clocks * PIXEL_CLOCK
    col = np.arange(nx) % CHANNEL_WIDTH
    odd = (np.arange(nx) // CHANNEL_WIDTH) % 2 == 1
    t_col = np.where(odd, CHANNEL_WIDTH - 1 - col, col) * PIXEL_CLOCK
    if sca % 3 == 0:
        return t_row, np.ascontiguousarray(t_col[::-1])
    return np.ascontiguousarray(t_row[::-1]), t_col


def frame_read_times(detector, shape=(4096, 4096)) -> np.ndarray:
    """Time (s, float64 [ny, nx]) at which each pixel is read, from the start of a frame.

    ``shape`` is the detector frame including the reference border (4096x4096
    for the WFI). Smaller frames (test subarrays) are treated as the first rows
    and columns of the read-out, channel ``x // 128``. See the module docstring
    for the model.
    """
    t_row, t_col = frame_read_time_parts(detector, shape)
    return t_row[:, None] + t_col[None, :]


def _decay_map(t_row, t_col, amplitude, tau, shift=0.0):
    """float32 map ``amplitude * exp(-(t_row + t_col + shift) / tau)`` as an outer product."""
    er = (amplitude * np.exp(-(t_row + shift) / tau)).astype(np.float32)
    ec = np.exp(-t_col / tau).astype(np.float32)
    return np.multiply.outer(er, ec)


def _read_offsets(read_pattern, frame_time):
    return [(np.asarray(res, dtype=np.float64) - READ_TIME_ORIGIN) * frame_time for res in read_pattern]


def _check_time(name, value, positive=True):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or (positive and v <= 0):
        raise ParameterError(f"{name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return v


def subtract_dark_decay(
    data: np.ndarray,
    read_pattern,
    frame_time: float,
    amplitude: float,
    time_constant: float,
    detector,
) -> None:
    """Subtract the dark-decay signal from a ramp, in place.

    Parameters
    ----------
    data : float32 [nres, ny, nx]
        Ramp (DN) including the reference border; corrected in place.
    read_pattern : list of lists of int
        1-based read numbers of every resultant.
    frame_time : float
        Seconds per read (``meta.exposure.frame_time``).
    amplitude : float
        A (DN), from the DARKDECAYSIGNAL reference for this detector.
    time_constant : float
        tau (s), > 0.
    detector : str or int
        ``meta.instrument.detector`` (sets the read-out orientation).
    """
    check_ramp(data)
    rp = check_read_pattern(read_pattern, data.shape[0])
    ft = _check_time("frame_time", frame_time)
    tau = _check_time("time_constant", time_constant)
    amp = _check_time("amplitude", amplitude, positive=False)
    if amp == 0.0:
        return
    t_row, t_col = frame_read_time_parts(detector, data.shape[1:])
    ec = np.exp(-t_col / tau).astype(np.float32)
    scratch = np.empty(data.shape[1:], dtype=np.float32)
    for i, offs in enumerate(_read_offsets(rp, ft)):
        # row factor averaged over the reads in float64 (exp(+x) of early reads and
        # exp(-x) of late rows combine before rounding)
        er = np.mean(amp * np.exp(-(t_row[None, :] + offs[:, None]) / tau), axis=0)
        np.multiply.outer(er.astype(np.float32), ec, out=scratch)
        data[i] -= scratch


def double_exponential(t, a, tau_a, b, tau_b):
    """``a exp(-t/tau_a) + b exp(-t/tau_b)``."""
    return a * np.exp(-t / tau_a) + b * np.exp(-t / tau_b)


def _first_resultant_residual(data, groupdq, tbar, chunk=256):
    """Residual of resultant 0 from the straight line fitted to resultants 1..n-1,
    NaN where a pixel has any flagged resultant (computed in row chunks)."""
    nres, ny, nx = data.shape
    x = tbar[1:] - tbar[1:].mean()
    sxx = np.sum(x**2)
    out = np.empty((ny, nx), dtype=np.float32)
    bad_bits = np.uint8(group.DO_NOT_USE | group.SATURATED | group.JUMP_DET)
    for y0 in range(0, ny, chunk):
        sl = slice(y0, min(y0 + chunk, ny))
        later = data[1:, sl].astype(np.float64)
        mean = later.mean(axis=0)
        slope = np.tensordot(x, later - mean, axes=(0, 0)) / sxx
        pred = mean + slope * (tbar[0] - tbar[1:].mean())
        res = data[0, sl] - pred
        flagged = np.any(groupdq[:, sl] & bad_bits, axis=0)
        res[flagged] = np.nan
        out[sl] = res
    return out


def correct_wfi18_transient(
    data: np.ndarray,
    groupdq: np.ndarray,
    read_pattern,
    frame_time: float,
    detector="WFI18",
    *,
    mask_rows: int = WFI18_MASK_ROWS,
    min_resultants: int = WFI18_MIN_RESULTANTS,
) -> str:
    """Remove (or mask) the first-resultant transient of WFI18, in place.

    Parameters
    ----------
    data : float32 [nres, ny, nx]; groupdq : uint8 [nres, ny, nx]
        Ramp and group DQ (DO_NOT_USE|WFI18_TRANSIENT set when masking).
    read_pattern, frame_time
        As for :func:`subtract_dark_decay`.
    detector : str or int
        Must be WFI18 (the step applies to that detector only).
    mask_rows : int
        Rows 0..mask_rows-1 of resultant 0 are flagged when the fit cannot be done.
    min_resultants : int
        Fewer resultants than this -> mask instead of fitting.

    Returns
    -------
    str
        ``"corrected"`` (model subtracted from resultant 0) or ``"masked"``.
    """
    check_ramp(data, groupdq)
    nres, ny, nx = data.shape
    rp = check_read_pattern(read_pattern, nres)
    ft = _check_time("frame_time", frame_time)
    if detector_number(detector) != 18:
        raise ParameterError(f"the WFI18 transient correction applies to WFI18 only, got {detector!r}")
    if isinstance(mask_rows, bool) or not isinstance(mask_rows, (int, np.integer)) or mask_rows < 0:
        raise ParameterError(f"mask_rows must be an integer >= 0, got {mask_rows!r}")

    def mask(reason):
        log.warning("WFI18 transient: %s; flagging rows 0-%d of resultant 0", reason, mask_rows - 1)
        groupdq[0, :mask_rows] |= np.uint8(group.DO_NOT_USE | group.WFI18_TRANSIENT)
        return "masked"

    if nres < max(int(min_resultants), 3):
        return mask(f"only {nres} resultants")
    tbar = np.array([np.mean(res) for res in rp]) * ft
    resid = _first_resultant_residual(data, groupdq, tbar)
    t_row, t_col = frame_read_time_parts(detector, (ny, nx))
    offs0 = _read_offsets(rp, ft)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN
        prof = np.nanmedian(resid, axis=1)
    tprof = t_row + np.median(t_col) + offs0.mean()
    good = np.isfinite(prof)
    if good.sum() < 8:
        return mask("too few clean rows to fit")
    try:
        from scipy.optimize import curve_fit

        order = np.argsort(tprof[good])
        tt, yy = tprof[good][order], prof[good][order]
        # fit in time since the first fitted row (the same double exponential, with
        # amplitudes referred to t_ref), which keeps the amplitudes well scaled
        t_ref = float(tt[0])
        head = float(np.mean(yy[: max(len(yy) // 20, 2)]))
        span = float(tt[-1] - tt[0])
        p0 = [head * 0.7, span / 20 + 1e-3, head * 0.3, span / 4 + 1e-3]
        tmin = max(ft * 1e-4, 1e-6)
        params, cov = curve_fit(
            double_exponential, tt - t_ref, yy, p0=p0,
            bounds=([-np.inf, tmin, -np.inf, tmin], [np.inf, 100 * ft, np.inf, 100 * ft]),
            maxfev=5000,
        )
    except (RuntimeError, ValueError) as exc:
        return mask(f"fit failed ({exc})")
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(np.diag(cov)))):
        return mask("fit did not converge")
    a, tau_a, b, tau_b = (float(p) for p in params)
    log.info(
        "WFI18 transient fit (t from %.4g s): a=%.4g DN tau_a=%.4g s, b=%.4g DN tau_b=%.4g s",
        t_ref, a, tau_a, b, tau_b,
    )
    weight = np.float32(1.0 / len(offs0))
    for off in offs0:
        for amp, tau in ((a, tau_a), (b, tau_b)):
            term = _decay_map(t_row, t_col, amp, tau, shift=off - t_ref)
            term *= weight
            data[0] -= term
    return "corrected"


__all__ = [
    "CHANNEL_WIDTH",
    "PIXEL_CLOCK",
    "ROW_PAD_CLOCKS",
    "correct_wfi18_transient",
    "detector_number",
    "double_exponential",
    "frame_read_time_parts",
    "frame_read_times",
    "subtract_dark_decay",
]
