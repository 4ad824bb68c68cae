"""Outlier (cosmic-ray) detection against the median of a dithered stack.

ALGORITHMS.md §7; parameter defaults follow the seeds (DESIGN.md): ``snr="4.0 3.0"``,
``scale="0.5 0.4"``, ``maskpt=0.7``, ``grow=1``, ``nlow=nhigh=0``, ``backg=0``.

The pieces, in the order a step calls them (resampling and blotting are done
by :mod:`romancore.algorithms.drizzle`, not here):

1. ``weight_threshold(wht, maskpt)``: ``maskpt`` × the 3σ / 5-iteration
   sigma-clipped mean (median centre, population std) of the finite, non-zero
   weights of one resampled group.
2. ``median_of_resampled(planes, ...)``: NaN- and weight-aware median of the
   resampled groups with ``nlow``/``nhigh`` rejection, computed in row tiles
   so that memory stays bounded; a generator of planes is spilled to
   memory-mapped temporary files one plane at a time.
3. ``flag_resampled_crs(sci, err, blot, ...)``: with ``Δ = |sci − blot − backg|``
   and ``deriv`` the largest absolute difference of the blotted median to its
   4-neighbours, ``m1 = Δ > scale1·deriv + snr1·err`` is dilated by a
   (2·grow+1)² box and AND'ed with ``m2 = Δ > scale2·deriv + snr2·err``.
4. ``outlier_dq(mask)``: the DQ bits (DO_NOT_USE | OUTLIER) to OR into ``dq``.

Without resampling (all inputs on one pixel grid), ``detect_outliers_same_grid``
takes the median of the inputs themselves and flags ``|sci − median − backg| >
snr1·err`` (the reference's ``flag_crs``).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from romancore import dq as dqflags
from romancore._ext import blot as _blot
from romancore._ext import outlier_stats as _k
from romancore.errors import ParameterError

log = logging.getLogger(__name__)

#: DQ bits set on every pixel found to be an outlier.
OUTLIER_DQ = np.uint32(dqflags.pixel.DO_NOT_USE | dqflags.pixel.OUTLIER)

DEFAULT_SNR = "4.0 3.0"
DEFAULT_SCALE = "0.5 0.4"
DEFAULT_MASKPT = 0.7
DEFAULT_TILE_BYTES = 64 * 2**20

_PAIR_SPLIT = re.compile(r"[\s,]+")


# --------------------------------------------------------------------------- parameters

def parse_pair(value, name: str) -> tuple[float, float]:
    """Parse a two-value parameter such as ``snr="4.0 3.0"`` or ``scale=(0.5, 0.4)``.

    Strings may separate the values by blanks and/or one comma.  Both values
    must be finite and non-negative.

    Raises
    ------
    ParameterError
        Naming the parameter, the value and the rule.
    """
    if isinstance(value, str):
        parts = [p for p in _PAIR_SPLIT.split(value.strip()) if p]
    elif isinstance(value, (list, tuple, np.ndarray)):
        parts = list(value)
    else:
        raise ParameterError(
            f"{name}={value!r}: expected two numbers as a string like \"4.0 3.0\" or a pair"
        )
    if len(parts) != 2:
        raise ParameterError(f"{name}={value!r}: expected exactly two numbers, got {len(parts)}")
    out = []
    for p in parts:
        if isinstance(p, (bool, np.bool_)):
            raise ParameterError(f"{name}={value!r}: {p!r} is not a number")
        try:
            f = float(p)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}={value!r}: {p!r} is not a number") from None
        if not math.isfinite(f) or f < 0:
            raise ParameterError(f"{name}={value!r}: values must be finite and >= 0")
        out.append(f)
    return out[0], out[1]


def _check_maskpt(maskpt) -> float:
    try:
        m = float(maskpt)
    except (TypeError, ValueError):
        raise ParameterError(f"maskpt={maskpt!r}: must be a number in [0, 1]") from None
    if not (0.0 <= m <= 1.0):
        raise ParameterError(f"maskpt={maskpt!r}: must be in [0, 1]")
    return m


def _check_nonneg_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r}: must be an integer >= 0")
    if value < 0:
        raise ParameterError(f"{name}={value!r}: must be >= 0")
    return int(value)


def _check_finite(value, name: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value!r}: must be a finite number") from None
    if not math.isfinite(f):
        raise ParameterError(f"{name}={value!r}: must be a finite number")
    return f


def _as_2d_float32(arr, name: str, shape=None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 2:
        raise ParameterError(f"{name} must be a 2-D array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ParameterError(f"{name} must hold numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ParameterError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
    return np.ascontiguousarray(a, dtype=np.float32)


# --------------------------------------------------------------------------- weights

def sigma_clipped_mean(values, *, sigma: float = 3.0, maxiters: int = 5) -> float:
    """Mean of ``values`` after iterative symmetric sigma clipping.

    Each iteration keeps ``median − sigma·std ≤ v ≤ median + sigma·std`` (std
    with ddof 0, both from the values kept so far) and stops early when
    nothing more is clipped.  Returns NaN for an empty input.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    for _ in range(int(maxiters)):
        if v.size == 0:
            break
        centre = np.median(v)
        std = v.std()
        keep = (v >= centre - sigma * std) & (v <= centre + sigma * std)
        if keep.all():
            break
        v = v[keep]
    return float(v.mean()) if v.size else math.nan


_NBIN = 65536
_LOW = np.arange(_NBIN, dtype=np.int64)


def _keys_to_values(keys: np.ndarray) -> np.ndarray:
    """float64 values of order-preserving float32 keys (inverse of ``_k.value_key``)."""
    keys = np.asarray(keys, dtype=np.uint32)
    u = np.where(keys >> 31 == 1, keys ^ np.uint32(0x80000000), ~keys).astype(np.uint32)
    return u.view(np.float32).astype(np.float64)


def _key_lo(lo: float) -> int:
    """Key of the smallest float32 ``f`` with ``f >= lo`` (compared in float64)."""
    if lo == -math.inf:
        return 0
    with np.errstate(over="ignore"):
        f = np.float32(lo)
    if float(f) < lo:
        f = np.nextafter(f, np.float32(np.inf))
    return _k.value_key(f)


def _key_hi(hi: float) -> int:
    """Key of the largest float32 ``f`` with ``f <= hi`` (compared in float64)."""
    if hi == math.inf:
        return 0xFFFFFFFF
    with np.errstate(over="ignore"):
        f = np.float32(hi)
    if float(f) > hi:
        f = np.nextafter(f, np.float32(-np.inf))
    return _k.value_key(f)


class _KeyStats:
    """Exact statistics of the finite (non-zero) values of a float32 image in key windows.

    A window is a closed range ``[klo, khi]`` of order-preserving keys (``_key_lo``,
    ``_key_hi`` turn a value window into one).  One pass of ``_k.key_histograms``
    gives per upper-16-bit bin the count and the integer sums of the lower bits and
    their squares; inside a bin the value is ``x0 + k·ulp``, so bins fully inside a
    window contribute their moments exactly.  The bins a window edge or a wanted rank
    falls in are resolved by their full lower-bit histograms (one light pass of
    ``_k.low_histograms`` for all bins not seen yet).
    """

    def __init__(self, values: np.ndarray, skip_zero: bool):
        self.values = values
        self.skip_zero = skip_zero
        count, ksum, ksq = _k.key_histograms(values, skip_zero)
        self.count = count
        self.ksum = ksum.astype(np.float64)
        self.ksq = ksq.astype(np.float64)
        self.n = int(count.sum())
        starts = np.arange(_NBIN, dtype=np.uint32) << np.uint32(16)
        used = count > 0
        x0 = np.zeros(_NBIN)
        ulp = np.zeros(_NBIN)
        x0[used] = _keys_to_values(starts[used])
        ulp[used] = _keys_to_values(starts[used] | np.uint32(1)) - x0[used]
        self.x0, self.ulp = x0, ulp
        self.low: dict[int, np.ndarray] = {}
        self.passes = 1

    def _fetch(self, bins) -> None:
        need = sorted({int(b) for b in bins} - set(self.low))
        if not need:
            return
        slots = np.full(_NBIN, -1, dtype=np.int32)
        slots[need] = np.arange(len(need), dtype=np.int32)
        hists = _k.low_histograms(self.values, self.skip_zero, slots)
        for i, b in enumerate(need):
            self.low[b] = hists[i]
        self.passes += 1

    def _edge(self, b: int, klo: int, khi: int) -> np.ndarray:
        """Lower-bit histogram of bin ``b`` restricted to the key window."""
        h = self.low[b]
        lo = klo - (b << 16) if (klo >> 16) == b else 0
        hi = khi - (b << 16) if (khi >> 16) == b else _NBIN - 1
        if lo == 0 and hi == _NBIN - 1:
            return h
        out = np.zeros_like(h)
        out[lo:hi + 1] = h[lo:hi + 1]
        return out

    def _window_counts(self, klo: int, khi: int) -> np.ndarray:
        bl, bh = klo >> 16, khi >> 16
        self._fetch([b for b in (bl, bh) if self.count[b]])
        c = np.zeros(_NBIN, dtype=np.int64)
        c[bl:bh + 1] = self.count[bl:bh + 1]
        for b in {bl, bh}:
            if c[b]:
                c[b] = int(self._edge(b, klo, khi).sum())
        return c

    def count_in(self, klo: int, khi: int) -> int:
        if klo > khi:
            return 0
        return int(self._window_counts(klo, khi).sum())

    def rank_value(self, klo: int, khi: int, ranks) -> list[float]:
        """Values of the given 0-based ranks among the values in the window (float64)."""
        cum = np.cumsum(self._window_counts(klo, khi))
        bins = [int(np.searchsorted(cum, r, side="right")) for r in ranks]
        self._fetch(bins)
        out = []
        for r, b in zip(ranks, bins, strict=True):
            below = int(cum[b - 1]) if b > 0 else 0
            j = int(np.searchsorted(np.cumsum(self._edge(b, klo, khi)), r - below, side="right"))
            out.append(_k.key_to_value((b << 16) | j))
        return out

    def median(self, klo: int, khi: int, n: int) -> float:
        a, b = self.rank_value(klo, khi, [(n - 1) // 2, n // 2])
        return a if n % 2 else 0.5 * (a + b)

    def moments(self, klo: int, khi: int, shift: float) -> tuple[int, float, float]:
        """``(n, Σ(x − shift), Σ(x − shift)²)`` over the values in the window."""
        bl, bh = klo >> 16, khi >> 16
        self._fetch([b for b in (bl, bh) if self.count[b]])
        n = np.zeros(_NBIN)
        k1 = np.zeros(_NBIN)
        k2 = np.zeros(_NBIN)
        n[bl:bh + 1] = self.count[bl:bh + 1]
        k1[bl:bh + 1] = self.ksum[bl:bh + 1]
        k2[bl:bh + 1] = self.ksq[bl:bh + 1]
        for b in {bl, bh}:
            if self.count[b]:
                h = self._edge(b, klo, khi)
                n[b] = h.sum()
                k1[b] = float((h * _LOW).sum())
                k2[b] = float((h * _LOW * _LOW).sum())
        used = n > 0
        d0 = self.x0[used] - shift
        u = self.ulp[used]
        nu, k1u, k2u = n[used], k1[used], k2[used]
        s1 = float(np.sum(nu * d0 + u * k1u))
        s2 = float(np.sum(nu * d0 * d0 + 2.0 * d0 * u * k1u + u * u * k2u))
        return int(nu.sum()), s1, s2


def _clipped_mean_float32(values: np.ndarray, sigma: float, maxiters: int,
                          skip_zero: bool) -> tuple[float, int]:
    """:func:`sigma_clipped_mean` of the finite (non-zero) values of a float32 2-D array.

    Every clipping keeps the values inside ``[median − sigma·std, median + sigma·std]``
    of the values kept so far, so the kept set is always the selected values inside
    one window (the intersection of the windows so far); its exact median, count and
    moments come from key histograms (:class:`_KeyStats`: one full pass, then about
    one light pass per iteration), without copying the values.  Returns the mean
    and the number of selected values before clipping.
    """
    st = _KeyStats(values, skip_zero)
    if st.n == 0:
        return math.nan, 0
    lo, hi = -math.inf, math.inf
    klo, khi, n = 0, 0xFFFFFFFF, st.n
    final = shift = None
    for _ in range(int(maxiters)):
        centre = st.median(klo, khi, n)
        shift = centre
        m, s1, s2 = st.moments(klo, khi, shift)
        mean1 = s1 / m
        std = math.sqrt(max(s2 / m - mean1 * mean1, 0.0))
        lo = max(lo, centre - sigma * std)
        hi = min(hi, centre + sigma * std)
        nklo, nkhi = max(klo, _key_lo(lo)), min(khi, _key_hi(hi))
        n_new = st.count_in(nklo, nkhi)
        if n_new == n:  # nothing clipped: the kept set is unchanged
            final = shift + mean1
            break
        klo, khi, n = nklo, nkhi, n_new
        if n == 0:
            return math.nan, st.n
    if final is None:  # clipped in every iteration: the mean of the last window
        m, s1, _ = st.moments(klo, khi, shift)
        final = shift + s1 / m
    log.debug("sigma-clipped mean of %d values: %d passes over the image", st.n, st.passes)
    return float(final), st.n


def weight_threshold(weight, maskpt: float = DEFAULT_MASKPT) -> float:
    """Weight below which a resampled pixel is left out of the median.

    ``maskpt`` × the sigma-clipped (3σ, 5 iterations) mean of the finite,
    non-zero weights.  Returns 0.0 (nothing is left out) when there is no
    such weight.  float32 weights (the drizzle's) are reduced in place by the
    ``outlier_stats`` window kernels (exact median, the same kept sets; the
    mean agrees with :func:`sigma_clipped_mean` to rounding); other dtypes go
    through :func:`sigma_clipped_mean`.
    """
    m = _check_maskpt(maskpt)
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ParameterError(f"weight must be a 2-D array, got shape {w.shape}")
    if w.dtype == np.float32:
        mean, count = _clipped_mean_float32(np.ascontiguousarray(w), 3.0, 5, True)
    else:
        good = w[np.isfinite(w) & (w != 0)]
        count = good.size
        mean = sigma_clipped_mean(good, sigma=3.0, maxiters=5) if count else math.nan
    if count == 0:
        log.warning("weight map has no finite non-zero value; no pixel is masked by maskpt")
        return 0.0
    return m * mean


# --------------------------------------------------------------------------- median

def _split_item(item, k: int):
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ParameterError(f"planes[{k}] must be an array or a (data, weight) pair")
        data, weight = item
    else:
        data, weight = item, None
    return data, weight


def _tile_rows(nplanes: int, nx: int, with_weight: bool, tile_rows, max_tile_bytes) -> int:
    if tile_rows is not None:
        if isinstance(tile_rows, bool) or not isinstance(tile_rows, (int, np.integer)) \
                or tile_rows < 1:
            raise ParameterError(f"tile_rows={tile_rows!r}: must be an integer >= 1")
        return int(tile_rows)
    per_row = nplanes * nx * 4 * (2 if with_weight else 1)
    return max(1, int(max_tile_bytes) // max(per_row, 1))


def median_of_resampled(
    planes: Iterable,
    *,
    maskpt: float = DEFAULT_MASKPT,
    nlow: int = 0,
    nhigh: int = 0,
    thresholds: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    tile_rows: int | None = None,
    max_tile_bytes: int = DEFAULT_TILE_BYTES,
    spill_dir: str | Path | None = None,
) -> np.ndarray:
    """Pixel-wise median of resampled images, computed in row tiles.

    Parameters
    ----------
    planes : iterable
        One item per resampled exposure group, all of the same 2-D shape on the
        same output grid.  An item is a data array (NaN = no data) or a
        ``(data, weight)`` pair.  A list or tuple is read tile by tile in place
        (``np.memmap`` arrays or anything sliceable by rows work); any other
        iterable (e.g. a generator that resamples one group at a time) is
        consumed once and each plane spilled to a float32 memmap in
        ``spill_dir`` (default: a temporary directory, removed afterwards),
        with its weight threshold already applied.
    maskpt : float
        In [0, 1]. Values whose weight is below ``weight_threshold(weight, maskpt)``
        of their plane are ignored (planes without weight are not thresholded).
    nlow, nhigh : int
        Number of lowest / highest valid values of each pixel dropped before
        the median.  A pixel with no more than ``nlow + nhigh`` valid values
        gets NaN.
    thresholds : sequence of float, optional
        Precomputed weight thresholds, one per plane (overrides ``maskpt``).
    offsets : sequence of float, optional
        A constant subtracted from each plane before the median (e.g. the sky
        levels of unsubtracted inputs).
    tile_rows : int, optional
        Rows per tile; by default chosen so that a tile of all planes (and
        weights) takes about ``max_tile_bytes``.
    spill_dir : path, optional
        Where generator planes are spilled.

    Returns
    -------
    numpy.ndarray
        float32 median, NaN where no value survives.
    """
    maskpt = _check_maskpt(maskpt)
    nlow = _check_nonneg_int(nlow, "nlow")
    nhigh = _check_nonneg_int(nhigh, "nhigh")
    if isinstance(planes, (list, tuple)):
        return _median_of_sequence(planes, maskpt, nlow, nhigh, thresholds, offsets,
                                   tile_rows, max_tile_bytes)
    if isinstance(planes, np.ndarray):
        raise ParameterError(
            "planes must be a list/tuple or an iterable of 2-D planes, not one array; "
            "use list(stack) for a 3-D stack"
        )
    return _median_of_stream(planes, maskpt, nlow, nhigh, thresholds, offsets, tile_rows,
                             max_tile_bytes, spill_dir)


def _check_per_plane(values, n: int, name: str):
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size != n:
        raise ParameterError(f"{name} has {arr.size} values for {n} planes")
    if name == "offsets" and not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name}={values!r}: all values must be finite")
    if name == "thresholds" and np.any(np.isnan(arr)):
        raise ParameterError(f"{name}={values!r}: values must not be NaN")
    return arr


def _median_of_sequence(planes, maskpt, nlow, nhigh, thresholds, offsets, tile_rows,
                        max_tile_bytes):
    n = len(planes)
    if n == 0:
        raise ParameterError("planes is empty: the median needs at least one image")
    if nlow + nhigh >= n:
        raise ParameterError(
            f"nlow={nlow} + nhigh={nhigh} must be smaller than the number of planes ({n})"
        )
    datas, weights = [], []
    for k, item in enumerate(planes):
        d, w = _split_item(item, k)
        if getattr(d, "ndim", None) != 2:
            d = np.asarray(d)
        if d.ndim != 2:
            raise ParameterError(f"planes[{k}] must be a 2-D array, got shape {d.shape}")
        datas.append(d)
        weights.append(w)
    shape = datas[0].shape
    for k, (d, w) in enumerate(zip(datas, weights, strict=True)):
        if d.shape != shape:
            raise ParameterError(f"planes[{k}] has shape {d.shape}, expected {shape}")
        if w is not None and np.shape(w) != shape:
            raise ParameterError(f"weight of planes[{k}] has shape {np.shape(w)}, expected {shape}")
    have_w = [w is not None for w in weights]
    with_weight = any(have_w)
    thr = _check_per_plane(thresholds, n, "thresholds")
    if with_weight and thr is None:
        thr = np.array([weight_threshold(w, maskpt) if w is not None else -np.inf
                        for w in weights])
    off = _check_per_plane(offsets, n, "offsets")
    ny, nx = shape
    rows = _tile_rows(n, nx, with_weight, tile_rows, max_tile_bytes)
    out = np.empty(shape, dtype=np.float32)
    dstack = np.empty((n, min(rows, ny), nx), dtype=np.float32)
    wstack = np.empty_like(dstack) if with_weight else None
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        h = y1 - y0
        dt = dstack[:, :h] if h == dstack.shape[1] else np.empty((n, h, nx), np.float32)
        wt = None
        if with_weight:
            wt = wstack[:, :h] if h == wstack.shape[1] else np.empty((n, h, nx), np.float32)
        for k in range(n):
            dt[k] = datas[k][y0:y1]
            if off is not None:
                dt[k] -= off[k]
            if with_weight:
                # A plane without weight always passes (threshold −inf).
                wt[k] = weights[k][y0:y1] if have_w[k] else 1.0
        out[y0:y1] = _k.median_stack(np.ascontiguousarray(dt),
                                     None if wt is None else np.ascontiguousarray(wt),
                                     thr, nlow, nhigh)
    return out


def _median_of_stream(planes, maskpt, nlow, nhigh, thresholds, offsets, tile_rows,
                      max_tile_bytes, spill_dir):
    own_dir = spill_dir is None
    workdir = Path(tempfile.mkdtemp(prefix="romancore_median_")) if own_dir else Path(spill_dir)
    if not own_dir:
        workdir.mkdir(parents=True, exist_ok=True)
    thr_given = None if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    off_given = None if offsets is None else np.asarray(offsets, dtype=np.float64).ravel()
    spilled = []
    try:
        shape = None
        for k, item in enumerate(planes):
            d, w = _split_item(item, k)
            d = np.asarray(d)
            if d.ndim != 2:
                raise ParameterError(f"planes[{k}] must be a 2-D array, got shape {d.shape}")
            if shape is None:
                shape = d.shape
            elif d.shape != shape:
                raise ParameterError(f"planes[{k}] has shape {d.shape}, expected {shape}")
            mm = np.lib.format.open_memmap(workdir / f"plane_{k:04d}.npy", mode="w+",
                                           dtype=np.float32, shape=shape)
            if off_given is not None and k >= off_given.size:
                raise ParameterError(f"offsets has {off_given.size} values; more planes given")
            if w is not None or thr_given is not None:
                if w is None:
                    raise ParameterError(f"thresholds given but planes[{k}] has no weight")
                w = np.asarray(w)
                if w.shape != shape:
                    raise ParameterError(
                        f"weight of planes[{k}] has shape {w.shape}, expected {shape}")
                if thr_given is not None:
                    if k >= thr_given.size:
                        raise ParameterError(
                            f"thresholds has {thr_given.size} values; more planes given")
                    t = thr_given[k]
                    cmp = t  # a float64 scalar: compared in float64
                else:
                    t = weight_threshold(w, maskpt)
                    # a Python float meets float32 weights as a float32
                    cmp = float(np.float32(t)) if w.dtype == np.float32 else t
                if w.dtype == np.float32:
                    _k.threshold_copy(np.ascontiguousarray(d, dtype=np.float32),
                                      np.ascontiguousarray(w), cmp, mm)
                else:
                    mm[...] = d
                    mm[~(w >= cmp)] = np.nan
            else:
                mm[...] = d
            if off_given is not None:
                mm -= off_given[k]  # NaN (masked) values stay NaN
            mm.flush()
            spilled.append(mm)
            del d, w
        if not spilled:
            raise ParameterError("planes is empty: the median needs at least one image")
        for name, given in (("offsets", off_given), ("thresholds", thr_given)):
            if given is not None and given.size != len(spilled):
                raise ParameterError(f"{name} has {given.size} values for {len(spilled)} planes")
        return _median_of_sequence(spilled, maskpt, nlow, nhigh, None, None, tile_rows,
                                   max_tile_bytes)
    finally:
        del spilled
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            for f in workdir.glob("plane_*.npy"):
                f.unlink(missing_ok=True)


def median_from_loader(
    loader: Callable[[int, int], object],
    shape: tuple[int, int],
    nplanes: int,
    *,
    thresholds: Sequence[float] | None = None,
    nlow: int = 0,
    nhigh: int = 0,
    tile_rows: int | None = None,
    max_tile_bytes: int = DEFAULT_TILE_BYTES,
) -> np.ndarray:
    """Median of ``nplanes`` images of ``shape`` served by ``loader(y0, y1)``.

    ``loader(y0, y1)`` returns the rows ``y0:y1`` of every plane as an array
    ``(nplanes, y1 − y0, nx)``, or a pair ``(data, weight)`` of such arrays;
    with weights, ``thresholds`` (one per plane, see :func:`weight_threshold`)
    are required.  Same median rules as :func:`median_of_resampled`.
    """
    nlow = _check_nonneg_int(nlow, "nlow")
    nhigh = _check_nonneg_int(nhigh, "nhigh")
    nplanes = _check_nonneg_int(nplanes, "nplanes")
    if nplanes == 0:
        raise ParameterError("nplanes=0: the median needs at least one image")
    if nlow + nhigh >= nplanes:
        raise ParameterError(
            f"nlow={nlow} + nhigh={nhigh} must be smaller than the number of planes ({nplanes})"
        )
    if len(shape) != 2:
        raise ParameterError(f"shape={shape!r}: must be (ny, nx)")
    ny, nx = (int(s) for s in shape)
    thr = _check_per_plane(thresholds, nplanes, "thresholds")
    rows = _tile_rows(nplanes, nx, thr is not None, tile_rows, max_tile_bytes)
    out = np.empty((ny, nx), dtype=np.float32)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        got = loader(y0, y1)
        d, w = got if isinstance(got, tuple) else (got, None)
        d = np.ascontiguousarray(d, dtype=np.float32)
        expect = (nplanes, y1 - y0, nx)
        if d.shape != expect:
            raise ParameterError(f"loader({y0}, {y1}) returned shape {d.shape}, expected {expect}")
        if w is not None:
            if thr is None:
                raise ParameterError("loader returns weights but no thresholds were given")
            w = np.ascontiguousarray(w, dtype=np.float32)
            if w.shape != expect:
                raise ParameterError(
                    f"loader({y0}, {y1}) returned weight shape {w.shape}, expected {expect}")
        out[y0:y1] = _k.median_stack(d, w, thr if w is not None else None, nlow, nhigh)
    return out


# --------------------------------------------------------------------------- flagging

def derivative_image(image) -> np.ndarray:
    """Largest absolute difference of each pixel to its 4 neighbours (float32).

    Neighbours outside the image or NaN are skipped (0 when none is left);
    NaN pixels stay NaN.
    """
    return _k.abs_derivative(_as_2d_float32(image, "image"))


# --------------------------------------------------------------------------- blotting

#: Grid pixels this close to a NaN of the median are sampled bilinearly instead.
_NAN_GUARD = 3


def resampling_blur_variance(kernel: str, pixfrac: float, pixel_scale_ratio: float) -> float:
    """Per-axis variance (output pixels²) by which drizzling smooths a scene.

    Averaged over the sub-pixel phases of the input pixels on the output grid:
    ``square``/``turbo`` spread each input pixel over its footprint (``pixfrac /
    pixel_scale_ratio`` output pixels wide, variance ``f²/12``) and average it over
    the output pixel (``1/12``); ``point`` only moves it to the nearest output pixel
    centre (``1/12``); ``gaussian`` weights by a Gaussian of σ = ``f/2.3548``;
    the Lanczos kernels interpolate (0).
    """
    from romancore.algorithms.drizzle import KERNELS

    if kernel not in KERNELS:
        raise ParameterError(f"kernel={kernel!r}: must be one of {', '.join(KERNELS)}")
    pixfrac = _check_finite(pixfrac, "pixfrac")
    psr = _check_finite(pixel_scale_ratio, "pixel_scale_ratio")
    if pixfrac <= 0 or psr <= 0:
        raise ParameterError(
            f"pixfrac={pixfrac!r}, pixel_scale_ratio={psr!r}: both must be positive")
    f = pixfrac / psr
    if kernel in ("square", "turbo"):
        return (f * f + 1.0) / 12.0
    if kernel == "point":
        return 1.0 / 12.0
    if kernel == "gaussian":
        return (f / 2.3548) ** 2
    return 0.0


def _blot_threads(num_threads) -> int:
    if num_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        num_threads = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ParameterError(f"num_threads={num_threads!r}: must be a positive integer or None")
    return int(num_threads)


def _finite_median(image: np.ndarray) -> float:
    """Exact median of the finite values of a float32 image (NaN when there is none)."""
    st = _KeyStats(image, False)
    if st.n == 0:
        return math.nan
    return float(st.median(0, 0xFFFFFFFF, st.n))


class PreparedMedian:
    """A median image made ready for :func:`blot_median`, to blot it onto many inputs.

    Holds the float32 median, its cubic B-spline coefficients (float64, the shape of
    the median) after filling non-finite values with the median of the finite ones
    and sharpening by ``blur_variance``, and the mask of grid pixels within 3 pixels
    of a non-finite value.  Building it costs about one pass of the blot; keep it
    while blotting the same median onto several inputs.
    """

    def __init__(self, median, blur_variance: float = 0.0, *, num_threads: int | None = None):
        med = _as_2d_float32(median, "median")
        v = _check_finite(blur_variance, "blur_variance")
        if not 0.0 <= v <= 0.5:
            raise ParameterError(
                f"blur_variance={blur_variance!r}: must be in [0, 0.5] (median pixels²)")
        nth = _blot_threads(num_threads)
        near = _blot.near_nonfinite(med, _NAN_GUARD, nth)
        fill = 0.0
        if near.any():
            fill = _finite_median(med)
            if not math.isfinite(fill):
                fill = 0.0  # no finite value at all: every blot is NaN anyway
        coef = _blot.sharpen_fill(med, fill, 0.5 * v, nth)
        _blot.spline_prefilter(coef, nth)
        self.median = med
        self.blur_variance = v
        self.fill = fill
        self.coefficients = coef
        self.near_nan = near

    @property
    def shape(self) -> tuple[int, int]:
        return self.median.shape


def blot_median(median, pixmap, *, blur_variance: float | None = None,
                num_threads: int | None = None) -> np.ndarray:
    """The median sampled at an input image's pixel centres, for :func:`flag_resampled_crs`.

    The reference blot (bilinear interpolation of the median) smooths the image a
    second time, after the drizzle that made the median: for an undersampled PSF
    (FWHM ≲ 2 pixels) each smoothing adds a variance comparable to the PSF's own
    (1/6 px² per axis for the bilinear blot, ``resampling_blur_variance`` for the
    drizzle), so the blotted star peaks fall well below the science peaks and
    ``|sci − blot|`` exceeds ``scale·deriv`` in the cores.  Here the median is

    1. sharpened by the drizzle's smoothing to first order,
       ``m − (blur_variance/2)·∇²m`` (``blur_variance`` in median pixels², per axis;
       5-point Laplacian with the edge values repeated),
    2. sampled with cubic B-spline interpolation (no smoothing at low frequencies;
       mirror extension at the median's edges).

    Non-finite median values are replaced by the median of the finite ones for the
    spline; positions within 3 median pixels of one (``rint`` of the position), and
    positions on the median's last row/column, use the bilinear blot; positions the
    bilinear blot leaves NaN (outside the median or on its NaN) stay NaN.

    Parameters
    ----------
    median : 2-D array or PreparedMedian
        The median image (NaN = no data), or a :class:`PreparedMedian` of it (to blot
        one median onto several inputs without preparing it again).
    pixmap : float array [ny, nx, 2]
        Position (X, Y) in the median's frame of every input pixel (NaN = unmapped).
    blur_variance : float or None
        Per-axis smoothing variance of the median, in [0, 0.5] median pixels²
        (None: 0, or the prepared median's; a prepared median must have been made
        with the same value).
    num_threads : int or None
        Threads (None: ``OMP_NUM_THREADS`` if set, else the number of CPUs).  The
        result does not depend on it.

    Returns
    -------
    numpy.ndarray
        float32 [ny, nx].
    """
    nth = _blot_threads(num_threads)
    if isinstance(median, PreparedMedian):
        if blur_variance is not None and _check_finite(blur_variance, "blur_variance") \
                != median.blur_variance:
            raise ParameterError(
                f"blur_variance={blur_variance!r}: the prepared median was sharpened by "
                f"{median.blur_variance!r}")
        prepared = median
    else:
        prepared = PreparedMedian(median, 0.0 if blur_variance is None else blur_variance,
                                  num_threads=nth)
    pm = np.asarray(pixmap)
    if pm.ndim != 3 or pm.shape[2] != 2:
        raise ParameterError(f"pixmap must have shape (ny, nx, 2), got {pm.shape}")
    if pm.dtype.kind != "f":
        raise ParameterError(f"pixmap must be floating point, got dtype {pm.dtype}")
    pm = np.ascontiguousarray(pm, dtype=np.float64)
    return _blot.spline_blot(prepared.median, prepared.coefficients, prepared.near_nan, pm, nth)


def flag_resampled_crs(
    sci,
    err,
    blot,
    *,
    snr=DEFAULT_SNR,
    scale=DEFAULT_SCALE,
    backg: float = 0.0,
    grow: int = 1,
) -> np.ndarray:
    """Outlier mask of one input image against its blotted median.

    Parameters
    ----------
    sci, err : 2-D arrays
        Science data and its 1σ error in the same units (NaN err counts as 0).
    blot : 2-D array
        The sky-subtracted median blotted onto the pixels of ``sci`` (NaN = no data).
    snr, scale : str or pair
        ``"snr1 snr2"`` and ``"scale1 scale2"``: thresholds of the primary and
        of the neighbour pass.
    backg : float
        Background level of ``sci`` not present in ``blot`` (the sky level of
        an unsubtracted input).
    grow : int
        Half-width of the box by which primary detections are grown (1 → 3×3).

    Returns
    -------
    numpy.ndarray of bool
        True where the pixel is an outlier.
    """
    snr1, snr2 = parse_pair(snr, "snr")
    scale1, scale2 = parse_pair(scale, "scale")
    backg = _check_finite(backg, "backg")
    grow = _check_nonneg_int(grow, "grow")
    s = _as_2d_float32(sci, "sci")
    e = _as_2d_float32(err, "err", s.shape)
    b = _as_2d_float32(blot, "blot", s.shape)
    deriv = _k.abs_derivative(b)
    return _k.cr_mask(s, e, b, deriv, backg, snr1, snr2, scale1, scale2, grow).view(bool)


def flag_crs(sci, err, median, *, snr=DEFAULT_SNR, backg: float = 0.0) -> np.ndarray:
    """Outlier mask ``|sci − median − backg| > snr1·err`` (same pixel grid, no derivative).

    Only the first value of ``snr`` is used, as in the reference.
    """
    snr1, _ = parse_pair(snr, "snr")
    backg = _check_finite(backg, "backg")
    s = _as_2d_float32(sci, "sci")
    e = _as_2d_float32(err, "err", s.shape)
    m = _as_2d_float32(median, "median", s.shape)
    return _k.abs_diff_mask(s, e, m, backg, snr1).view(bool)


def outlier_dq(mask) -> np.ndarray:
    """uint32 DQ bits (DO_NOT_USE | OUTLIER where ``mask``) to OR into an image's dq."""
    m = np.asarray(mask, dtype=bool)
    return np.where(m, OUTLIER_DQ, np.uint32(0)).astype(np.uint32)


def detect_outliers_same_grid(
    data: Sequence,
    err: Sequence,
    weights: Sequence | None = None,
    *,
    maskpt: float = DEFAULT_MASKPT,
    snr=DEFAULT_SNR,
    nlow: int = 0,
    nhigh: int = 0,
    backg: float | Sequence[float] = 0.0,
    tile_rows: int | None = None,
) -> list[np.ndarray]:
    """The ``resample_data=False`` path: inputs already share one pixel grid.

    The median is taken over the inputs themselves (each minus its ``backg``,
    each weight map thresholded by ``maskpt`` as in the resampled path), then
    each input is flagged with :func:`flag_crs`.  ``weights`` are the inputs'
    own weight maps (e.g. ``good_dq / var_rnoise``) or None.  ``backg`` is one
    value for all inputs or one per input (their unsubtracted sky levels).

    Returns one boolean outlier mask per input.
    """
    n = len(data)
    if n < 2:
        raise ParameterError(f"outlier detection needs at least 2 images, got {n}")
    if len(err) != n:
        raise ParameterError(f"err has {len(err)} arrays for {n} data arrays")
    if weights is not None and len(weights) != n:
        raise ParameterError(f"weights has {len(weights)} arrays for {n} data arrays")
    if np.ndim(backg) == 0:
        levels = [_check_finite(backg, "backg")] * n
    else:
        levels = [_check_finite(b, "backg") for b in backg]
        if len(levels) != n:
            raise ParameterError(f"backg has {len(levels)} values for {n} images")
    parse_pair(snr, "snr")
    planes = list(data) if weights is None else list(zip(data, weights, strict=True))
    median = median_of_resampled(planes, maskpt=maskpt, nlow=nlow, nhigh=nhigh,
                                 offsets=levels, tile_rows=tile_rows)
    return [flag_crs(d, e, median, snr=snr, backg=lv) for d, e, lv in zip(data, err, levels, strict=True)]
